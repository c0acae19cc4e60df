// Hierarchical transport of the CPU backend, for jobs whose ranks span several nodes with more
// than one rank on some node: shared memory inside each node (shm_transport.h) and a TCP ring
// between one leader per node (tcp_transport.h, the node's lowest rank).
//
//   AllReduce:     node all-reduce (shm) -> leaders' ring all-reduce -> node broadcast (shm)
//   Broadcast:     node broadcast on the root's node -> leaders' ring broadcast -> node broadcast
//   AllGather:     node all-gather -> leaders' ring all-gather of whole node blocks -> broadcast
//   ReduceScatter: the AllReduce above on a copy, then each rank keeps its block
//   Barrier:       node barrier -> leaders' barrier -> node barrier
//
// A failure on either level aborts both, so every rank of every node fails with the reason.
#ifndef KUBETRAIN_COLLECTIVE_SRC_CPU_HIERARCHICAL_TRANSPORT_H_
#define KUBETRAIN_COLLECTIVE_SRC_CPU_HIERARCHICAL_TRANSPORT_H_

#include <memory>
#include <vector>

#include "transport.h"

namespace kubetrain::collective_internal {

struct Topology {
  int rank = 0;  // this rank (communicator numbering)
  int world_size = 1;
  std::vector<std::vector<int>> node_ranks;  // node index -> its ranks, ascending
  std::vector<int> node_of;                  // rank -> node index
  std::vector<int> local_index;              // rank -> index within its node
};

// `intra` connects the ranks of this node (member index = local index); `inter` connects the
// node leaders (member index = node index) and is null on non-leaders.
std::unique_ptr<CpuTransportImpl> CreateHierarchicalTransport(
    Topology topology, std::unique_ptr<CpuTransportImpl> intra,
    std::unique_ptr<CpuTransportImpl> inter);

}  // namespace kubetrain::collective_internal

#endif  // KUBETRAIN_COLLECTIVE_SRC_CPU_HIERARCHICAL_TRANSPORT_H_
