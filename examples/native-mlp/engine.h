// Engine: where the model lives and how one data-parallel step runs (CPU or CUDA), behind one
// interface so the training loop, checkpoints and logging in main.cc are shared.
//
// Every method is collective: every rank calls it in the same order (each may run collectives).
// Results it returns (loss, accuracy) are already averaged over all ranks, so they are identical
// on every rank.
//
// Thread-safety: one Engine per rank, used from the training thread only.
#ifndef KUBETRAIN_EXAMPLES_NATIVE_MLP_ENGINE_H_
#define KUBETRAIN_EXAMPLES_NATIVE_MLP_ENGINE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kubetrain/collective/communicator.h"
#include "mlp.h"

namespace native_mlp {

struct EngineOptions {
  MlpShape shape;
  float lr = 0.05f;
  float momentum = 0.9f;
  size_t first_bucket_bytes = 2048;  // the bucketer's first bucket (small: starts early)
  size_t bucket_bytes = 8192;        // later buckets
  int cuda_device = -1;  // CUDA engine: the GPU ordinal; -1: local_rank % visible devices (as NCCL)
  int local_rank = 0;
};

// Global (all-rank) results of a step or an evaluation.
struct GlobalResult {
  double loss = 0;      // mean over ranks of the per-rank mean loss
  double accuracy = 0;  // correct / samples over all ranks
  int64_t samples = 0;  // samples over all ranks
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Human-readable summary for the startup line ("cpu, 2 gradient buckets").
  virtual std::string Describe() const = 0;
  // Replaces the parameters and the momentum (host buffers of shape.size() floats).
  virtual absl::Status SetState(const std::vector<float>& params,
                                const std::vector<float>& velocity) = 0;
  // Copies the parameters and the momentum to host buffers (resized as needed).
  virtual absl::Status GetState(std::vector<float>* params, std::vector<float>* velocity) = 0;
  // One SGD step on this rank's batch: forward, backward, gradient all-reduce (average), update.
  virtual absl::StatusOr<GlobalResult> Step(const float* x, const int32_t* y, int64_t count) = 0;
  // Loss and accuracy of the current parameters on this rank's rows, combined over ranks.
  virtual absl::StatusOr<GlobalResult> Evaluate(const float* x, const int32_t* y,
                                                int64_t count) = 0;
};

// The CPU engine: CpuMlp, gradients averaged through kubetrain::collective's GradientBucketer
// (one tensor per layer parameter, buckets launched while backward still runs). `comm` must be a
// host-memory communicator and outlive the engine.
absl::StatusOr<std::unique_ptr<Engine>> MakeCpuEngine(const EngineOptions& options,
                                                      kubetrain::collective::Communicator* comm);

// Whether this build has the CUDA engine (cuBLAS for the matrix products, NCCL for the gradient
// all-reduce); MakeCudaEngine fails with Unimplemented when it does not.
bool CudaEngineCompiled();
// The CUDA engine on device `device` (the rank's LOCAL_RANK modulo the visible devices). `comm`
// must be an NCCL communicator on that device and outlive the engine.
absl::StatusOr<std::unique_ptr<Engine>> MakeCudaEngine(const EngineOptions& options,
                                                       kubetrain::collective::Communicator* comm);

}  // namespace native_mlp

#endif  // KUBETRAIN_EXAMPLES_NATIVE_MLP_ENGINE_H_
