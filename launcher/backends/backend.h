// Backend: what starts and stops the instances of one attempt of a job ("a gang") on a compute
// target. Two implementations, one file set each: backends/local (one kubetrain-worker process per
// instance on this machine) and, later, backends/kubernetes (one Pod per instance).
//
// The supervisor (launcher/jobs) owns the job's life: it places the gang, asks the backend to
// Launch it, polls the Gang until it ends or must be stopped, and records the outcome.
//
// Ownership: Launch returns a Gang the caller owns; destroying a Gang that is still running
// terminates it. Thread-safety: a Gang is used from one thread.
#ifndef KUBETRAIN_LAUNCHER_BACKENDS_BACKEND_H_
#define KUBETRAIN_LAUNCHER_BACKENDS_BACKEND_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kubetrain/v1/job_record.pb.h"

namespace kubetrain::backends {

struct LaunchRequest {
  v1::JobRecord job;           // spec and the attempt's placement
  int attempt = 0;             // 0 for the first run
  std::string workspace;       // what workers report to (a directory, or grpc://...)
  // The workspace server's token for this job (Workspace::IssueJobToken; empty for a directory).
  // A secret: the backend hands it to each agent as KUBETRAIN_WORKSPACE_TOKEN in its environment
  // (a Kubernetes Secret), never in the plan, on a command line or in a log.
  std::string workspace_token;
  std::string attempt_dir;     // <job_dir>/attempt-<N>; instance i works in instance-<i>/ below it
  std::string checkpoint_dir;  // persistent across attempts
  absl::Duration grace = absl::Seconds(3);  // SIGTERM → SIGKILL when tearing down
  int64_t memory_limit_bytes = 0;           // the instance type's memory limit; 0 = none
};

struct GangResult {
  bool succeeded = false;
  int failed_instance = -1;  // the first instance that failed, -1 when none
  int exit_code = 0;         // of that instance's agent
  int signal = 0;            // that killed it, 0 when it exited
};

class Gang {
 public:
  virtual ~Gang() = default;
  // Waits up to `timeout` (zero: just checks) for every instance to end, or for the first to fail
  // (then the others are torn down before this returns). nullopt while still running.
  virtual std::optional<GangResult> Poll(absl::Duration timeout) = 0;
  // Stops every instance: SIGTERM, then SIGKILL after the grace period; returns when all are gone.
  virtual void Terminate() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Starts every instance of the attempt. On error nothing is left running.
  virtual absl::StatusOr<std::unique_ptr<Gang>> Launch(const LaunchRequest& request) = 0;
};

}  // namespace kubetrain::backends

#endif  // KUBETRAIN_LAUNCHER_BACKENDS_BACKEND_H_
