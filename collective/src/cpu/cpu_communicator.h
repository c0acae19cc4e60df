// The CPU backend's Communicator: validates calls, queues them on one worker thread (its
// "stream"), and runs each on a transport (shared memory or TCP ring, see shm_transport.h and
// tcp_transport.h). Private; users go through CreateCommunicator(Backend::kCpu, ...).
#ifndef KUBETRAIN_COLLECTIVE_SRC_CPU_CPU_COMMUNICATOR_H_
#define KUBETRAIN_COLLECTIVE_SRC_CPU_CPU_COMMUNICATOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "kubetrain/collective/communicator.h"

namespace kubetrain::collective_internal {

absl::StatusOr<std::unique_ptr<collective::Communicator>> CreateCpuCommunicator(
    const collective::CommunicatorOptions& options);

}  // namespace kubetrain::collective_internal

#endif  // KUBETRAIN_COLLECTIVE_SRC_CPU_CPU_COMMUNICATOR_H_
