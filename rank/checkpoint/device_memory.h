// Device memory for checkpoints: copies out of CUDA device memory into (pinned) host staging.
// One implementation per build: device_memory_cuda.cc with CUDA, device_memory_none.cc without.
//
// Thread-safety: as the CUDA runtime (calls may come from any thread).
#ifndef KUBETRAIN_RANK_CHECKPOINT_DEVICE_MEMORY_H_
#define KUBETRAIN_RANK_CHECKPOINT_DEVICE_MEMORY_H_

#include <cstddef>

#include "absl/status/status.h"

namespace kubetrain::checkpoint_internal {

// Copies `size` bytes of CUDA device memory at `src` to host memory at `dst` and waits for the
// copy. FailedPrecondition in a build without CUDA; CUDA errors name the call and the error.
absl::Status CopyFromDevice(void* dst, const void* src, size_t size);

// Page-locks host memory (cudaHostRegister) so that device copies into it run at full DMA speed.
// FailedPrecondition without CUDA.
absl::Status PinHost(void* data, size_t size);
void UnpinHost(void* data);

}  // namespace kubetrain::checkpoint_internal

#endif  // KUBETRAIN_RANK_CHECKPOINT_DEVICE_MEMORY_H_
