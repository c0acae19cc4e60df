#include "hierarchical_transport.h"

#include <cstring>

#include "kubetrain/common/status_macros.h"

namespace kubetrain::collective_internal {
namespace {

class HierarchicalTransport : public CpuTransportImpl {
 public:
  HierarchicalTransport(Topology t, std::unique_ptr<CpuTransportImpl> intra,
                        std::unique_ptr<CpuTransportImpl> inter)
      : t_(std::move(t)),
        intra_(std::move(intra)),
        inter_(std::move(inter)),
        node_(t_.node_of[t_.rank]) {}

  const char* name() const override { return "shm+tcp"; }
  bool leader() const { return inter_ != nullptr; }

  absl::Status AllReduce(const void* send, void* recv, size_t count, DataType type, ReduceOp op,
                         absl::Time deadline) override {
    if (count == 0) return absl::OkStatus();
    const ReduceOp partial = op == ReduceOp::kAvg ? ReduceOp::kSum : op;
    KT_RETURN_IF_ERROR(intra_->AllReduce(send, recv, count, type, partial, deadline));
    if (leader()) {
      KT_RETURN_IF_ERROR(inter_->AllReduce(recv, recv, count, type, partial, deadline));
      if (op == ReduceOp::kAvg) collective::DivideHost(type, recv, count, t_.world_size);
    }
    return intra_->Broadcast(recv, recv, count, type, /*root=*/0, deadline);
  }

  absl::Status Broadcast(const void* send, void* recv, size_t count, DataType type, int root,
                         absl::Time deadline) override {
    if (count == 0) return absl::OkStatus();
    const int root_node = t_.node_of[root];
    if (node_ == root_node) {
      KT_RETURN_IF_ERROR(
          intra_->Broadcast(send, recv, count, type, t_.local_index[root], deadline));
    }
    if (leader())
      KT_RETURN_IF_ERROR(inter_->Broadcast(recv, recv, count, type, root_node, deadline));
    if (node_ != root_node) {
      KT_RETURN_IF_ERROR(intra_->Broadcast(recv, recv, count, type, /*root=*/0, deadline));
    }
    return absl::OkStatus();
  }

  absl::Status AllGather(const void* send, void* recv, size_t send_count, DataType type,
                         absl::Time deadline) override {
    if (send_count == 0) return absl::OkStatus();
    const size_t block = send_count * collective::DataTypeSize(type);
    const std::vector<int>& mine = t_.node_ranks[node_];
    node_blocks_.resize(mine.size() * block);
    KT_RETURN_IF_ERROR(intra_->AllGather(send, node_blocks_.data(), send_count, type, deadline));
    char* out = static_cast<char*>(recv);
    if (leader()) {
      // Pack by node, ring all-gather whole node segments, unpack to rank order.
      const int nodes = static_cast<int>(t_.node_ranks.size());
      std::vector<size_t> offsets(nodes + 1, 0);
      for (int k = 0; k < nodes; ++k) offsets[k + 1] = offsets[k] + t_.node_ranks[k].size() * block;
      packed_.resize(offsets[nodes]);
      std::memcpy(packed_.data() + offsets[node_], node_blocks_.data(), node_blocks_.size());
      KT_RETURN_IF_ERROR(inter_->AllGatherV(packed_.data(), offsets, deadline));
      for (int k = 0; k < nodes; ++k) {
        for (size_t i = 0; i < t_.node_ranks[k].size(); ++i) {
          std::memcpy(out + t_.node_ranks[k][i] * block, packed_.data() + offsets[k] + i * block,
                      block);
        }
      }
    }
    return intra_->Broadcast(out, out, send_count * t_.world_size, type, /*root=*/0, deadline);
  }

  absl::Status ReduceScatter(const void* send, void* recv, size_t recv_count, DataType type,
                             ReduceOp op, absl::Time deadline) override {
    if (recv_count == 0) return absl::OkStatus();
    const size_t es = collective::DataTypeSize(type);
    full_.resize(recv_count * t_.world_size * es);
    KT_RETURN_IF_ERROR(
        AllReduce(send, full_.data(), recv_count * t_.world_size, type, op, deadline));
    std::memcpy(recv, full_.data() + t_.rank * recv_count * es, recv_count * es);
    return absl::OkStatus();
  }

  absl::Status Barrier(absl::Time deadline) override {
    KT_RETURN_IF_ERROR(intra_->Barrier(deadline));
    if (leader()) KT_RETURN_IF_ERROR(inter_->Barrier(deadline));
    return intra_->Barrier(deadline);
  }

  void Abort(const absl::Status& status) override {
    intra_->Abort(status);
    if (inter_) inter_->Abort(status);
  }

 private:
  const Topology t_;
  std::unique_ptr<CpuTransportImpl> intra_, inter_;
  const int node_;
  std::vector<char> node_blocks_, packed_, full_;
};

}  // namespace

std::unique_ptr<CpuTransportImpl> CreateHierarchicalTransport(
    Topology topology, std::unique_ptr<CpuTransportImpl> intra,
    std::unique_ptr<CpuTransportImpl> inter) {
  return std::make_unique<HierarchicalTransport>(std::move(topology), std::move(intra),
                                                 std::move(inter));
}

}  // namespace kubetrain::collective_internal
