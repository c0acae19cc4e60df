// Staging job data: what the worker agent does with a job's inputs before it starts the ranks and
// with its outputs after they end. One call per input / output; the modes are Azure ML's:
//
// Inputs (StageInput makes the data visible at `target`):
//   ro_mount (and no mode)  a read-only view, made by StageOptions::read_only_view. Local data:
//                           by default `target` is a symlink to the data and a warning says the
//                           view is writable; the worker agent, in a mount namespace of its own,
//                           makes a read-only bind mount instead (agent/staging/mount_view.h —
//                           this library does no mount(2)). Blob data (there is no FUSE driver
//                           here): downloaded to "<target>.cache", then viewed the same way.
//   rw_mount                a writable view, made by StageOptions::writable_view. Local data: a
//                           symlink (the agent: a bind mount); writes reach the data. Blob data: a
//                           downloaded copy, with a warning that changes are not written back.
//   download                a private, writable copy at `target` (blob: parallel ranged GETs,
//                           checksummed, resumable — see transfer.h; local: a copy).
//   eval_mount / eval_download are refused when the job is validated (kubetrain does not
//                           evaluate MLTable).
//   direct                  nothing staged: the URI is passed to the command as written.
// Outputs (the command writes to a local folder / file; PublishOutput runs when the ranks end,
// also when they failed, so partial results are kept):
//   rw_mount (and no mode)  local destination: written in place, nothing to publish. Blob
//                           destination: written locally, uploaded at the end (no FUSE).
//   upload                  written locally, then copied (local) or uploaded (blob).
//   direct                  the URI is passed through; nothing published.
//
// Errors name the input / output, the data path and what to do; no secret appears in them.
// Thread-safety: independent calls may run concurrently.
#ifndef KUBETRAIN_STORAGE_DATA_STAGE_H_
#define KUBETRAIN_STORAGE_DATA_STAGE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kubetrain/storage/blob_client.h"
#include "kubetrain/storage/data_uri.h"
#include "kubetrain/storage/transfer.h"
#include "kubetrain/v1/job.pb.h"

namespace kubetrain::storage {

// The two views StageInput makes of local (or downloaded) data at an input's target.
enum class ViewKind {
  kReadOnly,  // ro_mount: the job is not meant to change the data; errors say "ro_mount: "
  kWritable,  // rw_mount: the job's writes reach the data; errors say "rw_mount: "
};

// Makes `target` show `source` (a file or a folder that exists). A read-only view returns a
// warning for the user, empty when the view really is read-only; a writable view returns what it
// made ("bind mount", "symlink"). An error when no view could be made.
using ViewMaker = std::function<absl::StatusOr<std::string>(const std::string& source,
                                                            const std::string& target)>;

struct StageOptions {
  // Where azureml://datastores/NAME/... and the workspace's default datastore point.
  DatastoreResolver datastores;
  // Parallelism, chunk size, progress and cancellation of downloads, uploads and copies.
  TransferOptions transfer;
  // Retries and timeouts of the Azure Blob client.
  BlobClientOptions blob;
  // ro_mount's view (a ViewKind::kReadOnly ViewMaker). Unset: a symlink and a warning that the
  // job can write through it (PrepareViewTarget, then SymlinkView). The worker agent sets a
  // read-only bind mount here when it has a mount namespace of its own.
  ViewMaker read_only_view;
  // rw_mount's view of local data (a ViewKind::kWritable ViewMaker). Unset: a symlink. The worker
  // agent sets a bind mount here when it has a mount namespace of its own.
  ViewMaker writable_view;
};

struct StageResult {
  std::string local_path;             // what ${{inputs.NAME}} resolves to
  std::string how;                    // "read-only bind mount of ...", "downloaded 200 files ..."
  std::vector<std::string> warnings;  // e.g. the symlink fallback of ro_mount
  TransferStats stats;
};

absl::StatusOr<StageResult> StageInput(const std::string& name, const v1::JobInput& input,
                                       const std::string& target, const StageOptions& options);

struct PublishResult {
  std::string destination;  // the output's path as written (no secrets)
  TransferStats stats;
};

// Whether the output's local folder has to be published to its path at the end.
bool OutputNeedsPublish(const v1::JobOutput& output);
// Whether the input is staged (false for literals, `direct`, and nothing else).
bool InputNeedsStaging(const v1::JobInput& input);

absl::StatusOr<PublishResult> PublishOutput(const std::string& name, const v1::JobOutput& output,
                                            const std::string& local, const StageOptions& options);

// The building blocks of a view, shared by the symlink default here and the agent's bind mounts;
// both touch the filesystem only (no mount(2)).
//
// Checks that `source` exists, creates the folder `target` goes in, and clears `target` of what an
// earlier try left: a file, a symlink or an empty folder there is removed. A read-only view
// refuses a folder that is not empty (FailedPrecondition); a writable one leaves it to the view to
// fail on. Returns whether `source` is a folder (so a bind mount knows what to mount onto).
absl::StatusOr<bool> PrepareViewTarget(const std::string& source, const std::string& target,
                                       ViewKind kind);
// Makes the prepared `target` a symlink to `source`. `why` says why that is all there is (no
// mount namespace, a failed mount). Returns as a ViewMaker does: for a read-only view the warning
// that `target` is a symlink the job can write through, naming `why`; for a writable one
// "symlink".
absl::StatusOr<std::string> SymlinkView(const std::string& source, const std::string& target,
                                        ViewKind kind, absl::string_view why);

}  // namespace kubetrain::storage

#endif  // KUBETRAIN_STORAGE_DATA_STAGE_H_
