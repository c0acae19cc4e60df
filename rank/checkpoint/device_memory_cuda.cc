// Device memory with the CUDA runtime.
#include <cuda_runtime_api.h>

#include "absl/strings/str_cat.h"
#include "device_memory.h"

namespace kubetrain::checkpoint_internal {
namespace {

absl::Status CudaStatus(cudaError_t err, const char* call) {
  if (err == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("checkpoint: ", call, ": ", cudaGetErrorName(err), " (",
                                          cudaGetErrorString(err), ")"));
}

}  // namespace

absl::Status CopyFromDevice(void* dst, const void* src, size_t size) {
  if (size == 0) return absl::OkStatus();
  return CudaStatus(cudaMemcpy(dst, src, size, cudaMemcpyDeviceToHost),
                    "cudaMemcpy(device to host)");
}

absl::Status PinHost(void* data, size_t size) {
  return CudaStatus(cudaHostRegister(data, size, cudaHostRegisterDefault), "cudaHostRegister");
}

void UnpinHost(void* data) { (void)cudaHostUnregister(data); }

}  // namespace kubetrain::checkpoint_internal
