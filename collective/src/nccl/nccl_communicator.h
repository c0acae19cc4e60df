// The NCCL backend (built only with CUDA). Buffers are device pointers on the communicator's
// device. See communicator.h for the shared semantics and nccl_communicator.cc for the error
// handling: non-blocking init, async error queries on every Test(), a watchdog thread that
// aborts the NCCL communicator (ncclCommAbort) when an error is reported or an operation is
// overdue, so no rank blocks inside NCCL forever. Private; users go through
// CreateCommunicator(Backend::kNccl, ...).
#ifndef KUBETRAIN_COLLECTIVE_SRC_NCCL_NCCL_COMMUNICATOR_H_
#define KUBETRAIN_COLLECTIVE_SRC_NCCL_NCCL_COMMUNICATOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "kubetrain/collective/communicator.h"

namespace kubetrain::collective_internal {

absl::StatusOr<std::unique_ptr<collective::Communicator>> CreateNcclCommunicator(
    const collective::CommunicatorOptions& options);

// Number of visible CUDA devices; 0 with a reason in *why when there is no usable GPU.
int CudaDeviceCount(std::string* why);

}  // namespace kubetrain::collective_internal

#endif  // KUBETRAIN_COLLECTIVE_SRC_NCCL_NCCL_COMMUNICATOR_H_
