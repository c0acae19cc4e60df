// Staging job data: what the worker agent does with a job's inputs before it starts the ranks and
// with its outputs after they end. One call per input / output; the modes are Azure ML's:
//
// Inputs (StageInput makes the data visible at `target`):
//   ro_mount (and no mode)  a read-only view. Local data: `target` becomes a read-only bind mount
//                           of it (MS_BIND, then MS_REMOUNT|MS_BIND|MS_RDONLY) when the process is
//                           in its own mount namespace and may mount; otherwise `target` is a
//                           symlink to the data and a warning says the view is writable. Blob data
//                           (there is no FUSE driver here): downloaded to "<target>.cache", then
//                           viewed the same way.
//   rw_mount                a writable view. Local data: a bind mount (private namespace) or a
//                           symlink; writes reach the data. Blob data: a downloaded copy, with a
//                           warning that changes are not written back.
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

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kubetrain/storage/blob_client.h"
#include "kubetrain/storage/data_uri.h"
#include "kubetrain/storage/transfer.h"
#include "kubetrain/v1/job.pb.h"

namespace kubetrain::storage {

struct StageOptions {
  DatastoreResolver datastores;
  TransferOptions transfer;
  BlobClientOptions blob;
  // True when this process has a mount namespace of its own (bind mounts stay private to it and
  // vanish with it); read-only bind mounts are tried only then.
  bool private_mount_namespace = false;
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

// The read-only view of ro_mount: `target` shows `source` read-only. Returns a warning (empty
// when a read-only bind mount was made) or an error when neither a mount nor a symlink works.
absl::StatusOr<std::string> MakeReadOnlyView(const std::string& source, const std::string& target,
                                             bool try_mount);
// rw_mount's view: a bind mount (when `try_mount`) or a symlink; returns which ("bind mount" /
// "symlink").
absl::StatusOr<std::string> MakeWritableView(const std::string& source, const std::string& target,
                                             bool try_mount);

}  // namespace kubetrain::storage

#endif  // KUBETRAIN_STORAGE_DATA_STAGE_H_
