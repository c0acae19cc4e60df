// The worker agent: runs one instance of a job from its InstanceLaunch, start to end.
//
// RunAgent (what `kubetrain-worker` does):
//   1. validates the plan (agent/ranks/rank_env.h ValidateLaunch);
//   2. prepares the instance: creates job_dir, checkpoint_dir and every output path (the parent for
//      uri_file outputs), copies the `code:` snapshot (spec.code.local_path) to job_dir/code,
//      and stages the inputs (agent/staging/data_stager.h: ro_mount / download into input_paths);
//   3. substitutes ${{inputs.NAME}} / ${{outputs.NAME}} in the command from input_paths /
//      output_paths (a literal input missing from input_paths falls back to its spec value);
//   4. starts the processes under the RankSupervisor (fail fast, log capture, status):
//      - none / pytorch / tensorflow: one `/bin/bash -c COMMAND` per local rank, in job_dir/code
//        (job_dir without code), with RankEnvironment(launch, local_rank) on top of the agent's
//        env;
//      - mpi: instance 0 runs mpirun for every rank of the job (agent/mpi/mpirun_command.h). Every
//      other
//        instance starts nothing: it reports itself Running ("ranks a..b of this instance run
//        under instance 0's mpirun") and waits, reading the job's status from the workspace every
//        250 ms, until instance 0 (or the job) reaches an end; then it copies its ranks' statuses
//        from instance 0's, takes the same state and exits as if it had run them (0 / 1 / 143).
//        SIGTERM ends the wait (canceled). Without a readable workspace (--no-workspace) it
//        reports Completed and exits 0 at once. (On the local backend all ranks therefore run in
//        instance 0's cpu set; a multi-host mpirun needs a launch agent on the other hosts, which
//        the Kubernetes backend has to provide.)
//   5. uploads the outputs that need it (also when a rank failed), records each upload;
//   6. reports the outcome: agent log lines, the final InstanceStatus, and the exit code.
//
// Exit codes: v1::AgentExit (launch.proto). On a failed rank the first failing rank, its exit code
// or signal and its last lines are logged as agent lines and in InstanceStatus.message; an output
// that could not be uploaded is agent/staging/data_stager.h's.
//
// Ownership: borrows the sink and the cancel token. Thread-safety: call from the main thread (the
// ranks' PDEATHSIG is tied to the spawning thread).
#ifndef KUBETRAIN_AGENT_AGENT_H_
#define KUBETRAIN_AGENT_AGENT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kubetrain/agent/ranks/cancel.h"
#include "kubetrain/agent/ranks/rank_env.h"
#include "kubetrain/agent/ranks/rank_supervisor.h"
#include "kubetrain/agent/sink.h"
#include "kubetrain/v1/launch.pb.h"

namespace kubetrain::agent {

// The exit codes are v1::AgentExit (launch.proto), the contract with the backends.
inline constexpr int kExitOk = v1::AGENT_EXIT_OK;
inline constexpr int kExitRankFailed = v1::AGENT_EXIT_RANK_FAILED;
inline constexpr int kExitInvalidPlan = v1::AGENT_EXIT_INVALID_PLAN;
inline constexpr int kExitSetupFailed = v1::AGENT_EXIT_SETUP_FAILED;
inline constexpr int kExitOutputUploadFailed = v1::AGENT_EXIT_OUTPUT_UPLOAD_FAILED;
inline constexpr int kExitTimedOut = v1::AGENT_EXIT_TIMED_OUT;
inline constexpr int kExitCanceledBase = v1::AGENT_EXIT_CANCELED_BASE;  // + the signal

struct AgentOptions {
  RankEnvOptions env;          // e.g. the MLflow endpoint's URI, once it exists
  bool echo_to_stderr = true;  // "[rank N] line" on the agent's stderr
  absl::Duration flush_interval = absl::Milliseconds(200);  // log batches
  size_t flush_lines = 500;
  std::vector<std::string> extra_mpirun_args;  // inserted after mpirun's own flags (tests, tuning)
};

struct AgentResult {
  int exit_code = kExitOk;
  std::string message;              // one sentence: what happened
  RankSupervisorResult supervisor;  // details when processes ran
};

// Steps 2 and 3, for tests: returns the directory the command runs in.
absl::StatusOr<std::string> PrepareInstance(const v1::InstanceLaunch& launch);
absl::StatusOr<std::string> ResolveCommand(const v1::InstanceLaunch& launch);

// The processes of step 4 (empty for an mpi instance other than 0).
absl::StatusOr<std::vector<RankProcess>> BuildProcesses(const v1::InstanceLaunch& launch,
                                                        const std::string& command,
                                                        const std::string& cwd,
                                                        const AgentOptions& options);

AgentResult RunAgent(const v1::InstanceLaunch& launch, AgentSink* sink, CancelToken* cancel,
                     const AgentOptions& options = {});

}  // namespace kubetrain::agent

#endif  // KUBETRAIN_AGENT_AGENT_H_
