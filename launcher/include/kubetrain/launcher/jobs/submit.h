// Submitting a job: the checks that must pass before anything is created, the job record, and the
// supervisor process that runs it.
//
// Thread-safety: as the Workspace passed in.
#ifndef KUBETRAIN_LAUNCHER_JOBS_SUBMIT_H_
#define KUBETRAIN_LAUNCHER_JOBS_SUBMIT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kubetrain/storage/workspace.h"
#include "kubetrain/v1/compute.pb.h"
#include "kubetrain/v1/instance_type.pb.h"
#include "kubetrain/v1/job_record.pb.h"

namespace kubetrain::jobs {

struct SubmitOptions {
  std::string workspace_path;  // the embedded workspace's directory
  // argv that starts the supervisor; the job name is appended. Typically
  // {"/path/kubetrain", "--workspace", DIR, "job", "supervise"}.
  std::vector<std::string> supervisor_argv;
};

// Fails (FailedPrecondition, nothing created) when the gang can never fit on `target`: the message
// names the instance type, what it asks for and the largest node it could have used.
absl::Status CheckCanEverFit(const v1::JobSpec& spec, const v1::ComputeTarget& target,
                             const v1::InstanceType& type);

// Creates the job record (Queued; a generated name when the spec has none; AlreadyExists for a
// taken name) and its folder, and starts the supervisor detached from this process (its own
// session; output in <job_dir>/supervisor.log). Returns the stored record.
absl::StatusOr<v1::JobRecord> SubmitJob(storage::Workspace& workspace, v1::JobSpec spec,
                                        const SubmitOptions& options);

}  // namespace kubetrain::jobs

#endif  // KUBETRAIN_LAUNCHER_JOBS_SUBMIT_H_
