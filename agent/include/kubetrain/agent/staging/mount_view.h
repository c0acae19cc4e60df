// The agent's views of staged input data as bind mounts: ro_mount's read-only bind mount and
// rw_mount's writable one. The storage library makes these views as symlinks and does no mount(2);
// the agent plugs these in (storage::StageOptions::read_only_view / writable_view) when it has a
// mount namespace of its own (staging/data_stager.h), where the mounts stay private to the
// instance and vanish with it.
//
// Preparing the target and the symlink fallback are the storage library's
// (storage::PrepareViewTarget, storage::SymlinkView); only the mounting is here. Where mounting
// fails (no CAP_SYS_ADMIN, a seccomp filter, ...) the view is a symlink, as without a namespace.
//
// Both have the shape of a storage::ViewMaker: `source` is an existing file or folder, `target`
// the path the job sees; any view left at `target` by an earlier try (a mount, a symlink, a file,
// an empty folder) is replaced.
//
// Thread-safety: calls for different targets may run concurrently; one target, one call at a time.
#ifndef KUBETRAIN_AGENT_STAGING_MOUNT_VIEW_H_
#define KUBETRAIN_AGENT_STAGING_MOUNT_VIEW_H_

#include <string>

#include "absl/status/statusor.h"

namespace kubetrain::agent {

// A read-only bind mount of `source` at `target` (MS_BIND|MS_REC, then
// MS_REMOUNT|MS_BIND|MS_RDONLY). Returns an empty string when it was made; else `target` is a
// symlink to `source` and the returned warning says why and that the job can write through it.
// An error when neither works, or when `target` is a folder that is not empty.
absl::StatusOr<std::string> MakeReadOnlyMountView(const std::string& source,
                                                  const std::string& target);

// A writable bind mount of `source` at `target` (MS_BIND|MS_REC); writes reach `source`. Returns
// what was made: "bind mount", or "symlink" where mounting failed. An error when neither works.
absl::StatusOr<std::string> MakeWritableMountView(const std::string& source,
                                                  const std::string& target);

}  // namespace kubetrain::agent

#endif  // KUBETRAIN_AGENT_STAGING_MOUNT_VIEW_H_
