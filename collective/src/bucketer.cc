#include "kubetrain/collective/bucketer.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "kubetrain/common/status_macros.h"

namespace kubetrain::collective {

GradientBucketer::GradientBucketer(Communicator* comm, BucketerOptions options)
    : comm_(comm), options_(options) {}

GradientBucketer::~GradientBucketer() {
  // Buffers are borrowed by in-flight work; let it finish before freeing them.
  for (Bucket& b : buckets_) {
    if (b.work) (void)b.work->Wait();
  }
}

absl::StatusOr<int> GradientBucketer::Register(void* data, size_t count, DataType type) {
  if (built_) {
    return absl::FailedPreconditionError(
        "Register after the first MarkReady; register all "
        "tensors before the first step");
  }
  if (count > 0 && data == nullptr) return absl::InvalidArgumentError("Register: null tensor");
  if (comm_->memory_kind() != MemoryKind::kHost) {
    return absl::UnimplementedError("GradientBucketer supports host-memory communicators only");
  }
  tensors_.push_back(Tensor{data, count, type, -1, 0, false});
  return static_cast<int>(tensors_.size()) - 1;
}

void GradientBucketer::Build() {
  built_ = true;
  for (int i = 0; i < static_cast<int>(tensors_.size()); ++i) {
    Tensor& t = tensors_[i];
    const size_t bytes = t.count * DataTypeSize(t.type);
    bool start_new = buckets_.empty() || buckets_.back().type != t.type;
    if (!start_new) {
      const Bucket& b = buckets_.back();
      const size_t limit =
          buckets_.size() == 1 ? options_.first_bucket_bytes : options_.bucket_bytes;
      start_new = !b.members.empty() && b.bytes + bytes > limit;
    }
    if (start_new) {
      buckets_.emplace_back();
      buckets_.back().type = t.type;
    }
    Bucket& b = buckets_.back();
    t.bucket = static_cast<int>(buckets_.size()) - 1;
    t.offset = b.bytes;
    b.bytes += bytes;
    b.members.push_back(i);
  }
  for (Bucket& b : buckets_) {
    b.fused.resize(b.bytes);
    b.pending = static_cast<int>(b.members.size());
  }
}

absl::Status GradientBucketer::MarkReady(int index) {
  if (!built_) Build();
  if (index < 0 || index >= static_cast<int>(tensors_.size())) {
    return absl::OutOfRangeError(absl::StrCat("MarkReady: no tensor ", index));
  }
  Tensor& t = tensors_[index];
  if (t.ready) {
    return absl::FailedPreconditionError(
        absl::StrCat("MarkReady: tensor ", index, " already marked ready this step"));
  }
  t.ready = true;
  Bucket& b = buckets_[t.bucket];
  if (t.count > 0) std::memcpy(b.fused.data() + t.offset, t.data, t.count * DataTypeSize(t.type));
  --b.pending;
  return LaunchReady();
}

absl::Status GradientBucketer::LaunchReady() {
  while (next_launch_ < static_cast<int>(buckets_.size()) && buckets_[next_launch_].pending == 0) {
    Bucket& b = buckets_[next_launch_];
    const size_t count = b.bytes / DataTypeSize(b.type);
    b.work = comm_->AllReduce(b.fused.data(), count, b.type, options_.op);
    ++next_launch_;
  }
  return absl::OkStatus();
}

absl::Status GradientBucketer::Wait(absl::Duration timeout) {
  if (!built_) Build();
  if (next_launch_ < static_cast<int>(buckets_.size())) {
    const Bucket& b = buckets_[next_launch_];
    for (int m : b.members) {
      if (!tensors_[m].ready) {
        return absl::FailedPreconditionError(absl::StrCat(
            "Wait: tensor ", m, " (bucket ", next_launch_, ") was never marked ready this step"));
      }
    }
  }
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  absl::Status result;
  for (Bucket& b : buckets_) {
    if (!b.work) continue;
    absl::Status s = b.work->Wait(deadline == absl::InfiniteFuture() ? absl::InfiniteDuration()
                                                                     : deadline - absl::Now());
    if (!s.ok() && result.ok()) result = s;
  }
  // On failure keep the state: the works still own the fused buffers, and a Wait that only timed
  // out can be called again.
  if (!result.ok()) return result;
  for (Tensor& t : tensors_) {
    const Bucket& b = buckets_[t.bucket];
    if (t.count > 0) std::memcpy(t.data, b.fused.data() + t.offset, t.count * DataTypeSize(t.type));
  }
  for (Tensor& t : tensors_) t.ready = false;
  for (Bucket& b : buckets_) {
    b.pending = static_cast<int>(b.members.size());
    b.work.reset();
  }
  next_launch_ = 0;
  return absl::OkStatus();
}

int GradientBucketer::num_buckets() const {
  if (built_) return static_cast<int>(buckets_.size());
  // Before the first step: compute on a copy.
  GradientBucketer copy(comm_, options_);
  copy.tensors_ = tensors_;
  copy.Build();
  return static_cast<int>(copy.buckets_.size());
}

std::vector<int> GradientBucketer::bucket_members(int b) const {
  if (!built_) {
    GradientBucketer copy(comm_, options_);
    copy.tensors_ = tensors_;
    copy.Build();
    return copy.bucket_members(b);
  }
  if (b < 0 || b >= static_cast<int>(buckets_.size())) return {};
  return buckets_[b].members;
}

}  // namespace kubetrain::collective
