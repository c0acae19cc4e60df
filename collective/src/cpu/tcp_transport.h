// TCP ring transport of the CPU backend, for ranks on different nodes (or forced with
// CpuTransport::kTcp). Rank r connects to rank r+1 and accepts from rank r-1; AllReduce is the
// ring reduce-scatter + all-gather, each step chunked and full duplex (send to the next rank
// while receiving from the previous one). When an operation fails, the rank records the reason
// in the store under "<prefix>/abort" before closing its links, so ranks that only see a
// neighbour's connection drop can report which peer failed first.
#ifndef KUBETRAIN_COLLECTIVE_SRC_CPU_TCP_TRANSPORT_H_
#define KUBETRAIN_COLLECTIVE_SRC_CPU_TCP_TRANSPORT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kubetrain/collective/store.h"
#include "transport.h"

namespace kubetrain::collective_internal {

struct TcpPeer {
  std::string address;  // ip reachable by peers
  int port = 0;
};

struct TcpTransportOptions {
  int rank = 0;
  int world_size = 1;
  size_t chunk_bytes = 256 * 1024;
  std::string key_prefix;
  int listen_fd = -1;             // already listening; the transport takes ownership
  std::vector<TcpPeer> peers;     // by member index
  std::vector<int> global_ranks;  // member index -> communicator rank, for messages (empty: same)
};

absl::StatusOr<std::unique_ptr<CpuTransportImpl>> CreateTcpTransport(
    const TcpTransportOptions& options, collective::TcpStoreClient* store, absl::Time deadline);

}  // namespace kubetrain::collective_internal

#endif  // KUBETRAIN_COLLECTIVE_SRC_CPU_TCP_TRANSPORT_H_
