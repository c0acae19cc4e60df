// Bootstrap shared by the CPU and NCCL backends: rank 0 hosts the TCP store, every rank connects.
// Private to the collective library.
#ifndef KUBETRAIN_COLLECTIVE_SRC_RENDEZVOUS_H_
#define KUBETRAIN_COLLECTIVE_SRC_RENDEZVOUS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "kubetrain/collective/communicator.h"
#include "kubetrain/collective/store.h"

namespace kubetrain::collective_internal {

struct Rendezvous {
  std::unique_ptr<collective::TcpStoreServer> server;  // rank 0 only
  std::unique_ptr<collective::TcpStoreClient> client;  // every rank
};

// Validates rank / world size / port and connects to (rank 0: starts) the store.
absl::StatusOr<Rendezvous> StartRendezvous(const collective::CommunicatorOptions& options);

// Checks pointers and sizes common to every backend; OK or InvalidArgument.
absl::Status ValidateOptions(const collective::CommunicatorOptions& options);

}  // namespace kubetrain::collective_internal

#endif  // KUBETRAIN_COLLECTIVE_SRC_RENDEZVOUS_H_
