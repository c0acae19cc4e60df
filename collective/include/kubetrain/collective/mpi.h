// Communicators built on an MPI communicator (only in builds with KUBETRAIN_HAVE_MPI; the macro
// KUBETRAIN_COLLECTIVE_HAVE_MPI is 1 then).
//
//   MPI_Init(&argc, &argv);
//   auto comm = CreateMpiCommunicator(MPI_COMM_WORLD);          // the MPI backend
//   auto cpu  = CreateCommunicatorFromMpi(Backend::kCpu, MPI_COMM_WORLD);  // bootstrap over MPI
//
// The MPI backend duplicates `comm` (MPI_Comm_dup) and uses MPI-3 nonblocking collectives
// (MPI_Iallreduce, MPI_Ibcast, MPI_Iallgather, MPI_Ireduce_scatter_block); float16 / bfloat16
// and every op on them use user-defined MPI ops, and ReduceOp::kAvg is a sum divided on
// completion. MPI return codes become absl::Status at this boundary (MPI_ERRORS_RETURN is set on
// the duplicate). If MPI is not initialized yet, it is initialized with MPI_THREAD_SERIALIZED.
//
// Peer failure: OpenMPI's runtime (mpirun) tears the job down when a rank dies; in addition every
// Wait() is bounded by CommunicatorOptions::timeout and fails with DeadlineExceeded instead of
// blocking forever (MPI cannot cancel a collective, so the communicator is broken afterwards).
//
// Thread-safety: the backend serializes its own MPI calls on a process-wide mutex; the program
// must not call MPI concurrently from other threads unless MPI runs in MPI_THREAD_MULTIPLE.
#ifndef KUBETRAIN_COLLECTIVE_MPI_H_
#define KUBETRAIN_COLLECTIVE_MPI_H_

#include <mpi.h>

#include <memory>

#include "absl/status/statusor.h"
#include "kubetrain/collective/communicator.h"

namespace kubetrain::collective {

// The MPI backend on a duplicate of `comm`. Only `timeout` and `job` of `options` are used;
// rank and world size come from `comm`.
absl::StatusOr<std::unique_ptr<Communicator>> CreateMpiCommunicator(
    MPI_Comm comm, const CommunicatorOptions& options = CommunicatorOptions());

// Any backend, with rank / world size taken from `comm` and the rendezvous address chosen by
// rank 0 and broadcast over `comm` (so no MASTER_ADDR / MASTER_PORT is needed). `local_rank`
// comes from OMPI_COMM_WORLD_LOCAL_RANK when unset in `options` (i.e. 0).
absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicatorFromMpi(
    Backend backend, MPI_Comm comm, CommunicatorOptions options = CommunicatorOptions());

// MPI error code -> Status with MPI's error string and `what` (e.g. "MPI_Iallreduce").
absl::Status MpiStatus(int code, const char* what);

}  // namespace kubetrain::collective

#endif  // KUBETRAIN_COLLECTIVE_MPI_H_
