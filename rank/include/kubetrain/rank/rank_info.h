// Who this rank is, read from the rank environment kubetrain-worker sets (agent/ranks/rank_env.h)
// — or that torchrun or OpenMPI's mpirun set — in one place for every rank-side library:
// kubetrain::collective (the communicator), kubetrain::runtime (metrics) and
// kubetrain::checkpoint (shards).
//
//   absl::StatusOr<kubetrain::rank::RankInfo> me = kubetrain::rank::RankInfo::FromEnvironment();
//   if (!me.ok()) return me.status();  // names the variable that is missing or malformed
//
// Sources, first match wins:
//   pytorch  RANK and WORLD_SIZE (distribution: pytorch / tensorflow, torchrun), with LOCAL_RANK,
//            LOCAL_WORLD_SIZE and NODE_RANK (or GROUP_RANK / AZUREML_CR_NODE_RANK)
//   openmpi  OMPI_COMM_WORLD_RANK and OMPI_COMM_WORLD_SIZE (distribution: mpi, plain mpirun), with
//            OMPI_COMM_WORLD_LOCAL_RANK / _LOCAL_SIZE; the node rank is rank / local size (mpirun
//            fills each node's slots before the next node's)
//   kubetrain KUBETRAIN_RANK and KUBETRAIN_WORLD_SIZE (kubetrain-worker sets them for every
//            distribution but mpi: a job without distribution, tensorflow), with
//            KUBETRAIN_LOCAL_RANK / KUBETRAIN_LOCAL_WORLD_SIZE and AZUREML_CR_NODE_RANK
// None set: NotFoundError (callers that accept a standalone process use SingleProcess()).
// A variable that is set but not a number, or ranks out of range: InvalidArgumentError.
//
// Thread-safety: FromEnvironment reads the environment (getenv) and nothing else; call it before
// threads modify the environment. RankInfo is a plain value.
#ifndef KUBETRAIN_RANK_RANK_INFO_H_
#define KUBETRAIN_RANK_RANK_INFO_H_

#include <string>

#include "absl/status/statusor.h"

namespace kubetrain::rank {

// kubetrain's own rank variables (the agent writes them, FromEnvironment reads them).
inline constexpr char kRankVar[] = "KUBETRAIN_RANK";
inline constexpr char kWorldSizeVar[] = "KUBETRAIN_WORLD_SIZE";
inline constexpr char kLocalRankVar[] = "KUBETRAIN_LOCAL_RANK";
inline constexpr char kLocalWorldSizeVar[] = "KUBETRAIN_LOCAL_WORLD_SIZE";

struct RankInfo {
  enum class Source { kSingleProcess, kPyTorch, kOpenMpi, kKubetrain };

  int rank = 0;              // RANK / OMPI_COMM_WORLD_RANK
  int world_size = 1;        // WORLD_SIZE / OMPI_COMM_WORLD_SIZE
  int local_rank = 0;        // LOCAL_RANK / OMPI_COMM_WORLD_LOCAL_RANK
  int local_world_size = 1;  // LOCAL_WORLD_SIZE / OMPI_COMM_WORLD_LOCAL_SIZE
  int node_rank = 0;         // NODE_RANK / GROUP_RANK / AZUREML_CR_NODE_RANK
  Source source = Source::kSingleProcess;
  std::string job;             // KUBETRAIN_JOB (empty outside kubetrain)
  std::string run_id;          // MLFLOW_RUN_ID
  std::string tracking_uri;    // MLFLOW_TRACKING_URI
  std::string checkpoint_dir;  // KUBETRAIN_CHECKPOINT_DIR
  std::string restart_count;   // KUBETRAIN_RESTART_COUNT / TORCHELASTIC_RESTART_COUNT; "0" if unset

  // See the top of this file.
  static absl::StatusOr<RankInfo> FromEnvironment();
  // Rank 0 of 1, with the job/MLflow/checkpoint variables that are set.
  static RankInfo SingleProcess();
};

// "pytorch", "openmpi", "kubetrain" or "single process", for messages.
const char* SourceName(RankInfo::Source source);

}  // namespace kubetrain::rank

#endif  // KUBETRAIN_RANK_RANK_INFO_H_
