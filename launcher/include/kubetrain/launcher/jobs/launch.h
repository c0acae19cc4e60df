// How a job's attempt becomes a launch — written once, for the supervisor that launches it and for
// `job create --dry-run` that prints what would be launched, so the two cannot drift:
//   - MakeLaunchRequest: the backends::LaunchRequest of a job's current attempt;
//   - BackendFor: the backend of a compute target (local processes, or Kubernetes);
//   - DryRunObjects: the Kubernetes objects a job would get, rendered by the backend's own
//     Preview from the same request, created nowhere;
//   - RunSupervisor: a submitted job's supervisor (the CLI's `job supervise`), which records a
//     backend that cannot be created as the job's LaunchFailed.
//
// Thread-safety: the functions hold no state; the workspace must be safe to use from this thread.
#ifndef KUBETRAIN_LAUNCHER_JOBS_LAUNCH_H_
#define KUBETRAIN_LAUNCHER_JOBS_LAUNCH_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kubetrain/launcher/backends/backend.h"
#include "kubetrain/launcher/compute/resolve.h"
#include "kubetrain/storage/workspace.h"
#include "kubetrain/v1/job.pb.h"
#include "kubetrain/v1/job_record.pb.h"
#include "nlohmann/json.hpp"

namespace kubetrain::jobs {

// The request for `job`'s current attempt (its placement and status.attempt), placed for `type`.
backends::LaunchRequest MakeLaunchRequest(const v1::JobRecord& job, const v1::InstanceType& type,
                                          const std::string& workspace_uri,
                                          absl::Duration grace = backends::kDefaultGrace);

struct BackendOptions {
  std::string workspace_uri;  // what agents report to (a directory, or grpc://...)
  // Kubernetes: where pod logs and states go when pods do not report themselves. Borrowed.
  storage::Workspace* workspace = nullptr;
  std::string worker_binary;                     // local: path of kubetrain-worker
  std::function<void(const std::string&)> warn;  // one line each
};

// Local targets get the local backend, Kubernetes targets a connected Kubernetes backend.
absl::StatusOr<std::unique_ptr<backends::Backend>> BackendFor(const v1::ComputeTarget& target,
                                                              const BackendOptions& options);

// `job create --dry-run`: the objects of `spec` on its Kubernetes target, placed on the target's
// nodes as attached (every node empty). Secrets are placeholders; when the cluster cannot be read,
// the PVC mounts are left out with a warning. InvalidArgument for a target that is not Kubernetes.
absl::StatusOr<std::vector<nlohmann::json>> DryRunObjects(v1::JobSpec spec,
                                                          const compute::ResolvedJob& resolved,
                                                          const BackendOptions& options);

struct SupervisorRun {
  BackendOptions backend;
  const std::atomic<bool>* stop = nullptr;  // set (e.g. by SIGTERM) to cancel the job
};

// Supervises job `name` on its target's backend until it ends; returns its final record. A
// backend that cannot be created fails the job (reason LaunchFailed) and returns that record.
absl::StatusOr<v1::JobRecord> RunSupervisor(storage::Workspace& workspace, const std::string& name,
                                            const SupervisorRun& run);

}  // namespace kubetrain::jobs

#endif  // KUBETRAIN_LAUNCHER_JOBS_LAUNCH_H_
