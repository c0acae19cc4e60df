// Builds without CUDA: the CUDA engine is not part of this binary, and saying so is its behaviour.
#include "absl/strings/str_cat.h"
#include "engine.h"

namespace native_mlp {

bool CudaEngineCompiled() { return false; }

absl::StatusOr<std::unique_ptr<Engine>> MakeCudaEngine(const EngineOptions&,
                                                       kubetrain::collective::Communicator*) {
  return absl::UnimplementedError(
      "--device cuda: this native-mlp was built without CUDA (configure with "
      "KUBETRAIN_WITH_CUDA=ON on a machine with /usr/local/cuda and NCCL); use --device cpu");
}

}  // namespace native_mlp
