// GradientBucketer: fuses many small gradient all-reduces into a few large ones, as PyTorch DDP
// does, so communication overlaps with the rest of the backward pass.
//
//   GradientBucketer bucketer(comm);                       // 25 MiB buckets, first one 1 MiB
//   for (auto& g : grads) bucketer.Register(g.data(), g.size(), DataType::kFloat32);
//   // each step, as backward produces gradients (in registration order ideally):
//   for (int i : ready_order) KT_RETURN_IF_ERROR(bucketer.MarkReady(i));
//   KT_RETURN_IF_ERROR(bucketer.Wait());                    // grads now hold the average
//
// Buckets are built in registration order (register tensors in the order backward produces
// them, i.e. reverse of the forward order): the first bucket is filled up to
// first_bucket_bytes, later ones up to bucket_bytes; a tensor never spans buckets and a change
// of data type starts a new bucket. When every tensor of a bucket is marked ready the bucket is
// "full": its tensors are copied into one fused buffer and a single asynchronous AllReduce is
// launched at once. Buckets are launched strictly in order (bucket i+1 waits for bucket i to
// launch) so every rank issues the same collectives in the same order, even when tensors
// become ready in different orders on different ranks. Wait() completes the step: it waits for
// every bucket, copies the results back into the tensors and re-arms for the next step.
//
// Ownership: the bucketer borrows the communicator and the tensors (both must outlive it) and
// owns the fused buffers. Host-memory communicators only (the fused copy is a memcpy).
// Thread-safety: not thread-safe; call from the thread that runs backward.
#ifndef KUBETRAIN_COLLECTIVE_BUCKETER_H_
#define KUBETRAIN_COLLECTIVE_BUCKETER_H_

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kubetrain/collective/communicator.h"

namespace kubetrain::collective {

struct BucketerOptions {
  // Size cap of every bucket after the first (PyTorch DDP's bucket_cap_mb = 25).
  size_t bucket_bytes = 25u << 20;
  // Size cap of the first bucket, small so the first all-reduce starts early (DDP: 1 MiB).
  size_t first_bucket_bytes = 1u << 20;
  // Reduction applied to every gradient; kAvg gives the data-parallel mean.
  ReduceOp op = ReduceOp::kAvg;
};

class GradientBucketer {
 public:
  explicit GradientBucketer(Communicator* comm, BucketerOptions options = BucketerOptions());
  ~GradientBucketer();

  // Adds a tensor; returns its index for MarkReady. Only before the first MarkReady.
  absl::StatusOr<int> Register(void* data, size_t count, DataType type);

  // Marks tensor `index` ready for this step; launches every bucket that became full (in order).
  absl::Status MarkReady(int index);

  // Waits for all buckets of this step (each bounded by the communicator's timeout, or
  // `timeout` overall), copies the reduced values back into the tensors and re-arms. Fails with
  // FailedPrecondition if some tensor was never marked ready.
  absl::Status Wait(absl::Duration timeout = absl::InfiniteDuration());

  // Introspection for tests and logs.
  int num_buckets() const;
  // Buckets whose AllReduce has been launched in the current step.
  int buckets_launched() const { return next_launch_; }
  // Tensor indices of bucket `b`.
  std::vector<int> bucket_members(int b) const;

 private:
  struct Tensor {
    void* data;
    size_t count;
    DataType type;
    int bucket;
    size_t offset;  // byte offset in the bucket's fused buffer
    bool ready;
  };
  struct Bucket {
    DataType type;
    size_t bytes = 0;
    std::vector<int> members;
    int pending = 0;  // members not yet ready this step
    std::vector<char> fused;
    std::shared_ptr<Work> work;
  };
  void Build();
  absl::Status LaunchReady();

  Communicator* comm_;
  BucketerOptions options_;
  std::vector<Tensor> tensors_;
  std::vector<Bucket> buckets_;
  bool built_ = false;
  int next_launch_ = 0;
};

}  // namespace kubetrain::collective

#endif  // KUBETRAIN_COLLECTIVE_BUCKETER_H_
