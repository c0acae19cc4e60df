// Device memory in a build without CUDA: there is none.
#include "device_memory.h"

namespace kubetrain::checkpoint_internal {
namespace {

absl::Status NoCuda() {
  return absl::FailedPreconditionError(
      "checkpoint: a buffer is marked Memory::kCuda, but this kubetrain was built without CUDA; "
      "rebuild with CUDA (KUBETRAIN_WITH_CUDA=ON) or copy the tensor to host memory first");
}

}  // namespace

absl::Status CopyFromDevice(void*, const void*, size_t) { return NoCuda(); }
absl::Status PinHost(void*, size_t) { return NoCuda(); }
void UnpinHost(void*) {}

}  // namespace kubetrain::checkpoint_internal
