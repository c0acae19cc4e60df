// RankSupervisor: runs an instance's rank processes to the end, fail fast, and captures their
// output.
//
// Run() spawns every process (agent/ranks/process.h: own process group, PDEATHSIG, affinity,
// pipes), then loops on poll(): it reads every stdout / stderr line into the Reporter, notices
// exits, and:
//   - when a process exits (any code), SIGKILLs what is left of its process group (a rank's
//   leftover
//     background processes die with it, as in a pod);
//   - when a process exits non-zero or is killed by a signal, and nothing failed before, it is the
//     first failure: every other process group gets SIGTERM, then SIGKILL after `grace_period`;
//   - a CancelToken request (SIGTERM / SIGINT to the agent) or the `timeout` tears down the same
//   way.
// At the end, descendants that escaped their group (the agent is a child subreaper, so orphans are
// reparented to it) are SIGKILLed and reaped: no process started by Run outlives it.
// The instance status (per process: pid, state, exit code / signal) goes to the Reporter at start,
// on every change and at the end.
//
// For mpirun (RankProcess::mpirun_tagged_output) lines tagged "[job,R]<stdout>:" are stored as
// rank R, and a failure of mpirun is attributed to the rank mpirun names.
//
// One Run at a time per process: Run makes the process a child subreaper and, at its end, kills
// and reaps every descendant still alive — a second concurrent Run's ranks included.
//
// Ownership: borrows the Reporter and CancelToken (both must outlive Run). Thread-safety: Run from
// one thread (the one that lives as long as the ranks, because of PDEATHSIG); cancel through the
// token from anywhere.
#ifndef KUBETRAIN_AGENT_RANKS_RANK_SUPERVISOR_H_
#define KUBETRAIN_AGENT_RANKS_RANK_SUPERVISOR_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "kubetrain/agent/ranks/cancel.h"
#include "kubetrain/agent/ranks/process.h"
#include "kubetrain/agent/ranks/reporter.h"
#include "kubetrain/v1/status.pb.h"

namespace kubetrain::agent {

// One process of the instance: a rank, or mpirun standing for all ranks.
struct RankProcess {
  int rank = 0;        // global rank (log lines, status); -1 for mpirun
  int local_rank = 0;  // for the status
  SpawnOptions spawn;
  bool mpirun_tagged_output = false;  // mpirun --tag-output: attribute lines to the tagged rank
  std::string
      mpi_status_dir;  // mpirun: where ranks record exit statuses (agent/mpi/mpirun_command.h)
  // mpirun: this run's private OpenMPI session and shared-memory directory (on /dev/shm), which
  // the agent removes when mpirun has ended.
  std::string mpi_session_dir;
  int mpi_world_size = 0;  // mpirun: ranks it starts (listed in the status after mpirun)
  int mpi_ranks_per_instance = 1;
};

struct RankSupervisorOptions {
  int instance = 0;                                   // InstanceStatus.index
  std::string node;                                   // InstanceStatus.node
  absl::Duration grace_period = absl::Seconds(3);     // SIGTERM → SIGKILL
  absl::Duration timeout = absl::InfiniteDuration();  // limits.timeout; tears down on expiry
  size_t tail_lines = 20;             // last lines kept per rank for the failure report
  size_t max_line_bytes = 64 * 1024;  // longer lines are split
  absl::Duration poll_interval = absl::Milliseconds(50);  // exit checks at least this often
};

struct RankSupervisorResult {
  enum class Outcome { kSucceeded, kRankFailed, kCanceled, kTimedOut, kStartFailed };
  Outcome outcome = Outcome::kSucceeded;
  // The first failure (kRankFailed); failed_rank is -1 when mpirun failed and named no rank.
  int failed_rank = -1;
  int failed_pid = -1;
  int exit_code = 0;                    // of the first failure, when it exited
  int signal = 0;                       // of the first failure, when killed; or the cancel signal
  std::vector<std::string> last_lines;  // the failing rank's last `tail_lines` lines
  std::string message;                  // one sentence for people (also InstanceStatus.message)
  v1::InstanceStatus status;            // final
  // From noticing the first failure / cancel to every process group being gone.
  absl::Duration teardown = absl::ZeroDuration();
};

class RankSupervisor {
 public:
  RankSupervisor(RankSupervisorOptions options, Reporter* reporter, CancelToken* cancel);

  RankSupervisorResult Run(std::vector<RankProcess> processes);

 private:
  RankSupervisorOptions options_;
  Reporter* reporter_;
  CancelToken* cancel_;
};

}  // namespace kubetrain::agent

#endif  // KUBETRAIN_AGENT_RANKS_RANK_SUPERVISOR_H_
