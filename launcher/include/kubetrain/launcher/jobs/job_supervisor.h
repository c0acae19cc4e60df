// The supervisor of one job: the process that owns the job from Queued to its end.
//
//   Queued    waits (holding nothing) until the job is the first queued job of its compute target
//             and its gang fits, then takes the placement in the same workspace transaction;
//   Starting  the backend launches every instance (Kubernetes: until every pod is Running);
//   Running   polls the gang; a failed instance tears the whole gang down (fail fast), a cancel
//             request or SIGTERM stops it, limits.timeout is enforced by the agents;
//   end       records Completed / Failed (with the first failing rank, its exit code or signal and
//             its last log lines) / Canceled; with `kubetrain: {max_retries: N}` a failed attempt
//             is recorded and the gang restarts (requeued, same checkpoint directory).
//
// For the local backend `kubetrain job create` starts one supervisor process per job, detached
// from the terminal; it records its pid so that others can tell whether it still runs.
//
// Ownership: borrows the workspace and the backend. Thread-safety: one supervisor per job.
#ifndef KUBETRAIN_LAUNCHER_JOBS_JOB_SUPERVISOR_H_
#define KUBETRAIN_LAUNCHER_JOBS_JOB_SUPERVISOR_H_

#include <atomic>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "kubetrain/launcher/backends/backend.h"
#include "kubetrain/storage/workspace.h"
#include "kubetrain/v1/job_record.pb.h"

namespace kubetrain::jobs {

struct JobSupervisorOptions {
  std::string workspace_uri;                            // what the workers report to
  absl::Duration poll = absl::Milliseconds(10);         // gang poll while running
  absl::Duration queue_poll = absl::Milliseconds(200);  // placement retry while queued
  absl::Duration grace = backends::kDefaultGrace;       // SIGTERM → SIGKILL on teardown
  const std::atomic<bool>* stop = nullptr;              // set (e.g. by SIGTERM) to cancel the job
};

// Runs job `name` to its end. Returns the job's final record.
absl::StatusOr<v1::JobRecord> SuperviseJob(storage::Workspace& workspace, const std::string& name,
                                           backends::Backend& backend,
                                           const JobSupervisorOptions& options);

// Asks job `name` to stop: a queued job is Canceled at once; a starting or running one gets
// cancel_requested and its supervisor a SIGTERM, and is Canceled once every rank is gone.
// FailedPrecondition when the job has already ended.
absl::StatusOr<v1::JobRecord> CancelJob(storage::Workspace& workspace, const std::string& name);

// Whether the supervisor that holds `job`'s placement still runs (local backend: its pid).
bool SupervisorAlive(const v1::JobRecord& job);

// Milliseconds since the Unix epoch.
int64_t NowMs();

}  // namespace kubetrain::jobs

#endif  // KUBETRAIN_LAUNCHER_JOBS_JOB_SUPERVISOR_H_
