// Backend: what starts and stops the instances of one attempt of a job ("a gang") on a compute
// target. Two implementations, one file set each: backends/local (one kubetrain-worker process per
// instance on this machine) and backends/kubernetes (one Pod per instance).
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
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kubetrain/v1/compute.pb.h"
#include "kubetrain/v1/instance_type.pb.h"
#include "kubetrain/v1/job_record.pb.h"

namespace kubetrain::backends {

// SIGTERM → SIGKILL when tearing an attempt down, unless the launch says otherwise.
inline constexpr absl::Duration kDefaultGrace = absl::Seconds(3);

struct LaunchRequest {
  v1::JobRecord job;      // spec and the attempt's placement
  int attempt = 0;        // 0 for the first run
  std::string workspace;  // what workers report to (a directory, or grpc://...)
  // The workspace server's token for this job (Workspace::IssueJobToken; empty for a directory).
  // A secret: the backend hands it to each agent as KUBETRAIN_WORKSPACE_TOKEN in its environment
  // (a Kubernetes Secret), never in the plan, on a command line or in a log.
  std::string workspace_token;
  std::string attempt_dir;     // <job_dir>/attempt-<N>; instance i works in instance-<i>/ below it
  std::string checkpoint_dir;  // persistent across attempts
  absl::Duration grace = kDefaultGrace;  // SIGTERM → SIGKILL when tearing down
  int64_t memory_limit_bytes = 0;        // the instance type's memory limit; 0 = none
  v1::InstanceType instance_type;        // what the placement was computed for
};

struct GangResult {
  bool succeeded = false;
  int failed_instance = -1;  // the first instance that failed, -1 when none
  int exit_code = 0;         // of that instance's agent
  int signal = 0;            // that killed it, 0 when it exited
  // Set by backends that know better than "instance i exited with code c" (Kubernetes:
  // ImagePullBackOff, OOMKilled, Evicted, StartTimeout...): the supervisor records these as they
  // are.
  std::string reason;
  std::string message;
  std::vector<std::string> last_lines;  // the failed instance's last output lines, when known
};

class Gang {
 public:
  virtual ~Gang() = default;
  // Waits up to `timeout` (zero: just checks) for every instance to end, or for the first to fail
  // (then the others are torn down before this returns). nullopt while still running.
  virtual std::optional<GangResult> Poll(absl::Duration timeout) = 0;
  // Stops every instance: SIGTERM, then SIGKILL after the grace period; returns when all are gone.
  virtual void Terminate() = 0;
  // Whether every instance has started (Kubernetes: every pod Running). The supervisor keeps the
  // job Starting until then. Backends whose Launch returns running instances keep the default.
  virtual bool Running() { return true; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Starts every instance of the attempt. On error nothing is left running.
  virtual absl::StatusOr<std::unique_ptr<Gang>> Launch(const LaunchRequest& request) = 0;
  // The target as placement should see it now: its nodes (Kubernetes: as the cluster reports them)
  // and what others hold on them besides this workspace's jobs (Kubernetes: the requests of pods
  // kubetrain did not start; everything of a node that is no longer Ready), as placements on the
  // target. The default is the stored target and nothing held.
  // Removes what an attempt of `job` left behind when its supervisor died without cleaning up
  // (Kubernetes: the attempt's objects; local instances die with their supervisor). Best effort.
  virtual void Abandon(const v1::JobRecord& job) {}
  struct Capacity {
    v1::ComputeTarget target;
    std::vector<v1::Placement> held;
  };
  virtual absl::StatusOr<Capacity> CurrentCapacity(const v1::ComputeTarget& target) {
    return Capacity{target, {}};
  }
};

}  // namespace kubetrain::backends

#endif  // KUBETRAIN_LAUNCHER_BACKENDS_BACKEND_H_
