// The one place the collective library reads environment variables.
//
// Variables (what torchrun / kubetrain-worker set; OpenMPI's names are the fallback so programs
// started by mpirun work too):
//   RANK                 (fallback OMPI_COMM_WORLD_RANK)          -> rank
//   WORLD_SIZE           (fallback OMPI_COMM_WORLD_SIZE)          -> world_size
//   LOCAL_RANK           (fallback OMPI_COMM_WORLD_LOCAL_RANK)    -> local_rank
//   MASTER_ADDR          (fallback AZ_BATCHAI_MPI_MASTER_NODE, then 127.0.0.1) -> master_addr
//   MASTER_PORT          required when WORLD_SIZE > 1             -> master_port
//   KUBETRAIN_JOB                                                 -> job
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
