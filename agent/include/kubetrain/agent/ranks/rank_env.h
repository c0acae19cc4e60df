// The rank environment contract (DESIGN.md, "Rank environment"): which processes one instance runs
// and the environment variables each of them sees, computed from the InstanceLaunch alone.
//
// What each distribution gets (N instances, P = process_count_per_instance, i = instance_index):
//   none        one process per instance; global rank = i.
//   pytorch     P processes; RANK = i*P + local_rank, WORLD_SIZE = N*P, LOCAL_RANK,
//               LOCAL_WORLD_SIZE = P, NODE_RANK = GROUP_RANK = i, MASTER_ADDR = instance_hosts[0],
//               MASTER_PORT = master_port (29500 when 0), TORCHELASTIC_RESTART_COUNT = attempt.
//   mpi         the environment of `mpirun` (instance 0 only; see agent/mpi/mpirun_command.h):
//   AZ_BATCH_MASTER_NODE
//               (host0:port), AZ_BATCHAI_MPI_MASTER_NODE (host0), AZ_BATCH_HOST_LIST (hosts, comma
//               separated). OMPI_COMM_WORLD_* come from mpirun itself.
//   tensorflow  worker_count workers (instance_count when 0) and parameter_server_count ps, dealt
//               round-robin over instances: task t (workers first, then ps) runs on instance t % N.
//               TF_CONFIG = {"cluster":{"worker":[host:port...],"ps":[...]},"task":{...}}, with
//               port = master_port + t so tasks sharing a host do not collide.
// Always: AZUREML_RUN_ID, AZUREML_CR_NODE_RANK, AZUREML_PROCESS_NAME (rank_<global rank>),
// MLFLOW_RUN_ID (= job name), MLFLOW_EXPERIMENT_ID / MLFLOW_EXPERIMENT_NAME (= experiment name),
// MLFLOW_TRACKING_URI (only when RankEnvOptions names one), KUBETRAIN_JOB, KUBETRAIN_INSTANCE,
// KUBETRAIN_CHECKPOINT_DIR, KUBETRAIN_RESTART_COUNT, CUDA_VISIBLE_DEVICES (this instance's gpu_ids,
// comma separated; "" when none), OMP_NUM_THREADS (cpu_millicores / 1000 / local processes, >= 1);
// except under mpi (mpirun sets OpenMPI's), kubetrain's own KUBETRAIN_RANK, KUBETRAIN_WORLD_SIZE,
// KUBETRAIN_LOCAL_RANK and KUBETRAIN_LOCAL_WORLD_SIZE (names in kubetrain/rank/rank_info.h, which
// reads them when no framework's variables say who the rank is).
// The job's environment_variables are applied last: a user's value wins over the contract's.
//
// Thread-safety: pure functions.
#ifndef KUBETRAIN_AGENT_RANKS_RANK_ENV_H_
#define KUBETRAIN_AGENT_RANKS_RANK_ENV_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "kubetrain/v1/launch.pb.h"

namespace kubetrain::agent {

inline constexpr int kDefaultMasterPort = 29500;

// Options that do not come from the plan but from the agent itself.
struct RankEnvOptions {
  // The worker's local MLflow-compatible endpoint (e.g. "http://127.0.0.1:5001", started by
  // kubetrain-worker: agent/metrics/mlflow_endpoint.h); empty leaves MLFLOW_TRACKING_URI unset.
  std::string mlflow_tracking_uri;
};

// One process this instance runs.
struct LocalRank {
  int global_rank = 0;  // unique over the job; the "rank" of its log lines
  int local_rank = 0;   // 0 .. LocalRanks().size()-1
};

// Checks what the env computation relies on: a job name and command, instance_index within
// [0, instance count), instance_hosts empty or one per instance, non-negative process counts.
absl::Status ValidateLaunch(const v1::InstanceLaunch& launch);

// Number of instances of the job: resources.instance_count, else the number of instance_hosts,
// else 1.
int InstanceCount(const v1::InstanceLaunch& launch);

// Address of instance `index` (instance_hosts[index]; "127.0.0.1" when the plan lists none).
std::string InstanceHost(const v1::InstanceLaunch& launch, int index);

// The processes this instance runs, by local rank. For mpi these are the ranks the instance
// *hosts* (i*P .. i*P+P-1); they are started by instance 0's mpirun, not by this agent.
std::vector<LocalRank> LocalRanks(const v1::InstanceLaunch& launch);

// The environment (on top of the agent's own) of local rank `local_rank` of this instance. For mpi
// it is the environment of mpirun, the same for every local rank.
std::map<std::string, std::string> RankEnvironment(const v1::InstanceLaunch& launch, int local_rank,
                                                   const RankEnvOptions& options = {});

}  // namespace kubetrain::agent

#endif  // KUBETRAIN_AGENT_RANKS_RANK_ENV_H_
