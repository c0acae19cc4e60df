// Private interface of the CPU backend's transports. A transport runs one collective
// synchronously on the calling thread (the communicator's worker thread) and fails within
// `deadline`, naming the peer that broke. Not thread-safe: one operation at a time.
#ifndef KUBETRAIN_COLLECTIVE_SRC_CPU_TRANSPORT_H_
#define KUBETRAIN_COLLECTIVE_SRC_CPU_TRANSPORT_H_

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "kubetrain/collective/types.h"

namespace kubetrain::collective_internal {

using ::kubetrain::collective::DataType;
using ::kubetrain::collective::ReduceOp;

class CpuTransportImpl {
 public:
  virtual ~CpuTransportImpl() = default;
  virtual const char* name() const = 0;
  virtual absl::Status AllReduce(const void* send, void* recv, size_t count, DataType type,
                                 ReduceOp op, absl::Time deadline) = 0;
  virtual absl::Status Broadcast(const void* send, void* recv, size_t count, DataType type,
                                 int root, absl::Time deadline) = 0;
  virtual absl::Status AllGather(const void* send, void* recv, size_t send_count, DataType type,
                                 absl::Time deadline) = 0;
  virtual absl::Status ReduceScatter(const void* send, void* recv, size_t recv_count, DataType type,
                                     ReduceOp op, absl::Time deadline) = 0;
  virtual absl::Status Barrier(absl::Time deadline) = 0;
  // All-gather of variable, contiguous byte segments: on entry segment `index` (bytes
  // [offsets[index], offsets[index + 1]) of buf) is final on this member; on return all are.
  // `offsets` has size()+1 entries. Only the TCP ring implements it (for the hierarchical mode).
  virtual absl::Status AllGatherV(char* buf, const std::vector<size_t>& offsets,
                                  absl::Time deadline) {
    return absl::UnimplementedError("AllGatherV");
  }
  // Called once after an operation failed: tell peers (so they fail fast) and stop using the
  // links. `status` is the failure.
  virtual void Abort(const absl::Status& status) = 0;
};

}  // namespace kubetrain::collective_internal

#endif  // KUBETRAIN_COLLECTIVE_SRC_CPU_TRANSPORT_H_
