// The one place the collective library reads environment variables.
//
// Rank, world size, local rank and job come from kubetrain::rank::RankInfo::FromEnvironment()
// (kubetrain/rank/rank_info.h: the pytorch variables, else OpenMPI's; neither: a single process).
// The rest:
//   MASTER_ADDR          (fallback AZ_BATCHAI_MPI_MASTER_NODE, then 127.0.0.1) -> master_addr
//   MASTER_PORT          required when WORLD_SIZE > 1             -> master_port
//   KUBETRAIN_COLLECTIVE_TIMEOUT    seconds, e.g. "30" or "2.5"   -> timeout
//   KUBETRAIN_CPU_TRANSPORT         auto | shm | tcp              -> cpu_transport
//
// Thread-safety: reads the process environment; do not call concurrently with setenv().
#ifndef KUBETRAIN_COLLECTIVE_ENV_H_
#define KUBETRAIN_COLLECTIVE_ENV_H_

#include "absl/status/statusor.h"
#include "kubetrain/collective/communicator.h"

namespace kubetrain::collective {

// Options from the environment, with CommunicatorOptions' defaults for unset variables. Fails
// with InvalidArgument naming the variable when a value does not parse or is out of range.
absl::StatusOr<CommunicatorOptions> OptionsFromEnvironment();

}  // namespace kubetrain::collective

#endif  // KUBETRAIN_COLLECTIVE_ENV_H_
