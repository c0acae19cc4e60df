// The CUDA engine (engine.h): the same MLP as CpuMlp on one GPU per rank. The matrix products go
// through cuBLAS (row-major tensors seen by cuBLAS as their column-major transposes), the rest
// through the small kernels below, and the gradients — one contiguous device buffer in the flat
// layout of mlp.h — are averaged by one NCCL all-reduce per step through kubetrain::collective.
// Every kernel sums in a fixed order (one thread per output element), so a rank's step is
// deterministic for a given cuBLAS version and GPU model.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine.h"

namespace native_mlp {
namespace {

namespace coll = kubetrain::collective;

absl::Status Cuda(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(e)));
}
absl::Status Blas(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": cuBLAS status ", static_cast<int>(s)));
}
#define NM_RETURN_IF_ERROR(expr) \
  do {                           \
    absl::Status _s = (expr);    \
    if (!_s.ok()) return _s;     \
  } while (0)

constexpr int kThreads = 256;
int Blocks(int64_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }

// pre[i][h] += b1[h]; act = max(pre, 0).
__global__ void BiasRelu(float* pre, float* act, const float* b1, int64_t rows, int hidden) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= rows * hidden) return;
  const float v = pre[k] + b1[k % hidden];
  pre[k] = v;
  act[k] = v > 0.0f ? v : 0.0f;
}

// One thread per row: softmax of logits + b2, the row's loss and hit, and its gradient
// dz = (p - onehot) / rows written over the logits.
__global__ void SoftmaxXent(float* z, const float* b2, const int32_t* y, int64_t rows, int classes,
                            float* row_loss, int32_t* row_hit) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= rows) return;
  float* zi = z + i * classes;
  float m = 0.0f;
  int best = 0;
  for (int c = 0; c < classes; ++c) {
    zi[c] += b2[c];
    if (c == 0 || zi[c] > m) m = zi[c], best = c;
  }
  float sum = 0.0f;
  for (int c = 0; c < classes; ++c) {
    zi[c] = expf(zi[c] - m);
    sum += zi[c];
  }
  const float inv_rows = 1.0f / static_cast<float>(rows);
  for (int c = 0; c < classes; ++c) {
    const float p = zi[c] / sum;
    if (c == y[i]) row_loss[i] = -logf(fmaxf(p, 1e-30f));
    zi[c] = (p - (c == y[i] ? 1.0f : 0.0f)) * inv_rows;
  }
  row_hit[i] = best == y[i] ? 1 : 0;
}

// out[j] = sum over rows of m[i][j] (row-major rows x cols), one thread per column.
__global__ void ColumnSums(const float* m, float* out, int64_t rows, int cols) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  float s = 0.0f;
  for (int64_t i = 0; i < rows; ++i) s += m[i * cols + j];
  out[j] = s;
}

// dh *= (pre > 0).
__global__ void ReluGrad(float* dh, const float* pre, int64_t n) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k < n && pre[k] <= 0.0f) dh[k] = 0.0f;
}

__global__ void SgdMomentum(float* p, float* v, const float* g, int64_t n, float lr, float mu) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= n) return;
  v[k] = mu * v[k] + g[k];
  p[k] -= lr * v[k];
}

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t count = 0;
  ~DeviceBuffer() {
    if (ptr != nullptr) cudaFree(ptr);
  }
  absl::Status Reserve(size_t n) {
    if (n <= count) return absl::OkStatus();
    if (ptr != nullptr) cudaFree(ptr);
    ptr = nullptr;
    count = 0;
    NM_RETURN_IF_ERROR(Cuda(cudaMalloc(&ptr, n * sizeof(T)), "cudaMalloc"));
    count = n;
    return absl::OkStatus();
  }
};

class CudaEngine : public Engine {
 public:
  CudaEngine(const EngineOptions& options, coll::Communicator* comm)
      : options_(options), comm_(comm) {}
  ~CudaEngine() override {
    if (blas_ != nullptr) cublasDestroy(blas_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  absl::Status Init() {
    if (options_.cuda_device < 0) {
      int devices = 0;
      NM_RETURN_IF_ERROR(Cuda(cudaGetDeviceCount(&devices), "cudaGetDeviceCount"));
      if (devices <= 0) return absl::FailedPreconditionError("--device cuda: no CUDA device");
      options_.cuda_device = options_.local_rank % devices;
    }
    NM_RETURN_IF_ERROR(Cuda(cudaSetDevice(options_.cuda_device), "cudaSetDevice"));
    NM_RETURN_IF_ERROR(
        Cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate"));
    NM_RETURN_IF_ERROR(Blas(cublasCreate(&blas_), "cublasCreate"));
    NM_RETURN_IF_ERROR(Blas(cublasSetStream(blas_, stream_), "cublasSetStream"));
    const size_t n = options_.shape.size();
    NM_RETURN_IF_ERROR(params_.Reserve(n));
    NM_RETURN_IF_ERROR(velocity_.Reserve(n));
    NM_RETURN_IF_ERROR(grad_.Reserve(n));
    NM_RETURN_IF_ERROR(stats_.Reserve(3));
    return absl::OkStatus();
  }

  std::string Describe() const override {
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, options_.cuda_device);
    return absl::StrCat("cuda engine on GPU ", options_.cuda_device, " (", prop.name, "), ",
                        options_.shape.size(), " parameters, cuBLAS, gradients averaged by ",
                        comm_->world_size(), " rank(s) through one NCCL all-reduce per step");
  }

  absl::Status SetState(const std::vector<float>& params,
                        const std::vector<float>& velocity) override {
    const size_t n = options_.shape.size();
    if (params.size() != n || velocity.size() != n) {
      return absl::InvalidArgumentError("state does not match the model size");
    }
    NM_RETURN_IF_ERROR(Cuda(cudaMemcpy(params_.ptr, params.data(), n * 4, cudaMemcpyHostToDevice),
                            "cudaMemcpy params"));
    return Cuda(cudaMemcpy(velocity_.ptr, velocity.data(), n * 4, cudaMemcpyHostToDevice),
                "cudaMemcpy velocity");
  }

  absl::Status GetState(std::vector<float>* params, std::vector<float>* velocity) override {
    const size_t n = options_.shape.size();
    params->resize(n);
    velocity->resize(n);
    NM_RETURN_IF_ERROR(Cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"));
    NM_RETURN_IF_ERROR(Cuda(cudaMemcpy(params->data(), params_.ptr, n * 4, cudaMemcpyDeviceToHost),
                            "cudaMemcpy params"));
    return Cuda(cudaMemcpy(velocity->data(), velocity_.ptr, n * 4, cudaMemcpyDeviceToHost),
                "cudaMemcpy velocity");
  }

  absl::StatusOr<GlobalResult> Step(const float* x, const int32_t* y, int64_t count) override {
    double local[2];
    NM_RETURN_IF_ERROR(Forward(x, y, count, local));
    NM_RETURN_IF_ERROR(Backward(count));
    // The gradient is complete on this rank's stream: average it over the ranks (NCCL).
    NM_RETURN_IF_ERROR(Cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"));
    NM_RETURN_IF_ERROR(comm_
                           ->AllReduce(grad_.ptr, options_.shape.size(), coll::DataType::kFloat32,
                                       coll::ReduceOp::kAvg)
                           ->Wait());
    const int64_t n = static_cast<int64_t>(options_.shape.size());
    SgdMomentum<<<Blocks(n), kThreads, 0, stream_>>>(params_.ptr, velocity_.ptr, grad_.ptr, n,
                                                     options_.lr, options_.momentum);
    NM_RETURN_IF_ERROR(Cuda(cudaGetLastError(), "SgdMomentum"));
    return Combine(local, count);
  }

  absl::StatusOr<GlobalResult> Evaluate(const float* x, const int32_t* y, int64_t count) override {
    double local[2];
    NM_RETURN_IF_ERROR(Forward(x, y, count, local));
    return Combine(local, count);
  }

 private:
  // Forward pass of `count` rows; local[0] = mean loss, local[1] = correct predictions.
  absl::Status Forward(const float* x, const int32_t* y, int64_t count, double* local) {
    const MlpShape& s = options_.shape;
    NM_RETURN_IF_ERROR(x_.Reserve(count * s.dims));
    NM_RETURN_IF_ERROR(y_.Reserve(count));
    NM_RETURN_IF_ERROR(pre_.Reserve(count * s.hidden));
    NM_RETURN_IF_ERROR(act_.Reserve(count * s.hidden));
    NM_RETURN_IF_ERROR(z_.Reserve(count * s.classes));
    NM_RETURN_IF_ERROR(row_loss_.Reserve(count));
    NM_RETURN_IF_ERROR(row_hit_.Reserve(count));
    NM_RETURN_IF_ERROR(
        Cuda(cudaMemcpyAsync(x_.ptr, x, count * s.dims * 4, cudaMemcpyHostToDevice, stream_),
             "cudaMemcpy x"));
    NM_RETURN_IF_ERROR(Cuda(cudaMemcpyAsync(y_.ptr, y, count * 4, cudaMemcpyHostToDevice, stream_),
                            "cudaMemcpy y"));
    const float one = 1.0f, zero = 0.0f;
    const float* p = params_.ptr;
    // pre (count x hidden) = x · w1ᵀ
    NM_RETURN_IF_ERROR(
        Blas(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, s.hidden, count, s.dims, &one,
                         p + s.w1_offset(), s.dims, x_.ptr, s.dims, &zero, pre_.ptr, s.hidden),
             "sgemm w1"));
    BiasRelu<<<Blocks(count * s.hidden), kThreads, 0, stream_>>>(
        pre_.ptr, act_.ptr, p + s.b1_offset(), count, s.hidden);
    // z (count x classes) = act · w2ᵀ
    NM_RETURN_IF_ERROR(
        Blas(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, s.classes, count, s.hidden, &one,
                         p + s.w2_offset(), s.hidden, act_.ptr, s.hidden, &zero, z_.ptr, s.classes),
             "sgemm w2"));
    SoftmaxXent<<<Blocks(count), kThreads, 0, stream_>>>(z_.ptr, p + s.b2_offset(), y_.ptr, count,
                                                         s.classes, row_loss_.ptr, row_hit_.ptr);
    NM_RETURN_IF_ERROR(Cuda(cudaGetLastError(), "forward kernels"));
    std::vector<float> loss(count);
    std::vector<int32_t> hit(count);
    NM_RETURN_IF_ERROR(Cuda(
        cudaMemcpyAsync(loss.data(), row_loss_.ptr, count * 4, cudaMemcpyDeviceToHost, stream_),
        "cudaMemcpy loss"));
    NM_RETURN_IF_ERROR(
        Cuda(cudaMemcpyAsync(hit.data(), row_hit_.ptr, count * 4, cudaMemcpyDeviceToHost, stream_),
             "cudaMemcpy hit"));
    NM_RETURN_IF_ERROR(Cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"));
    double sum = 0, correct = 0;
    for (int64_t i = 0; i < count; ++i) sum += loss[i], correct += hit[i];
    local[0] = sum / static_cast<double>(count > 0 ? count : 1);
    local[1] = correct;
    return absl::OkStatus();
  }

  // Backward pass of the last Forward (z holds dz): the mean-over-batch gradient into grad_.
  absl::Status Backward(int64_t count) {
    const MlpShape& s = options_.shape;
    const float one = 1.0f, zero = 0.0f;
    const float* p = params_.ptr;
    float* g = grad_.ptr;
    NM_RETURN_IF_ERROR(dh_.Reserve(count * s.hidden));
    // gw2 (classes x hidden) = dzᵀ · act
    NM_RETURN_IF_ERROR(
        Blas(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_T, s.hidden, s.classes, count, &one,
                         act_.ptr, s.hidden, z_.ptr, s.classes, &zero, g + s.w2_offset(), s.hidden),
             "sgemm gw2"));
    ColumnSums<<<Blocks(s.classes), kThreads, 0, stream_>>>(z_.ptr, g + s.b2_offset(), count,
                                                            s.classes);
    // dh (count x hidden) = dz · w2, then the ReLU mask
    NM_RETURN_IF_ERROR(
        Blas(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, s.hidden, count, s.classes, &one,
                         p + s.w2_offset(), s.hidden, z_.ptr, s.classes, &zero, dh_.ptr, s.hidden),
             "sgemm dh"));
    ReluGrad<<<Blocks(count * s.hidden), kThreads, 0, stream_>>>(dh_.ptr, pre_.ptr,
                                                                 count * s.hidden);
    // gw1 (hidden x dims) = dhᵀ · x
    NM_RETURN_IF_ERROR(
        Blas(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_T, s.dims, s.hidden, count, &one, x_.ptr,
                         s.dims, dh_.ptr, s.hidden, &zero, g + s.w1_offset(), s.dims),
             "sgemm gw1"));
    ColumnSums<<<Blocks(s.hidden), kThreads, 0, stream_>>>(dh_.ptr, g + s.b1_offset(), count,
                                                           s.hidden);
    return Cuda(cudaGetLastError(), "backward kernels");
  }

  // {loss, correct, samples} summed over ranks through the NCCL communicator (device memory).
  absl::StatusOr<GlobalResult> Combine(const double* local, int64_t count) {
    double v[3] = {local[0], local[1], static_cast<double>(count)};
    NM_RETURN_IF_ERROR(
        Cuda(cudaMemcpy(stats_.ptr, v, sizeof(v), cudaMemcpyHostToDevice), "cudaMemcpy stats"));
    NM_RETURN_IF_ERROR(
        comm_->AllReduce(stats_.ptr, 3, coll::DataType::kFloat64, coll::ReduceOp::kSum)->Wait());
    NM_RETURN_IF_ERROR(
        Cuda(cudaMemcpy(v, stats_.ptr, sizeof(v), cudaMemcpyDeviceToHost), "cudaMemcpy stats"));
    GlobalResult r;
    r.loss = v[0] / comm_->world_size();
    r.samples = static_cast<int64_t>(v[2]);
    r.accuracy = r.samples > 0 ? v[1] / v[2] : 0.0;
    return r;
  }

  EngineOptions options_;
  coll::Communicator* comm_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  DeviceBuffer<float> params_, velocity_, grad_, x_, pre_, act_, z_, dh_, row_loss_;
  DeviceBuffer<int32_t> y_, row_hit_;
  DeviceBuffer<double> stats_;
};

}  // namespace

bool CudaEngineCompiled() { return true; }

absl::StatusOr<std::unique_ptr<Engine>> MakeCudaEngine(const EngineOptions& options,
                                                       coll::Communicator* comm) {
  if (comm->memory_kind() != coll::MemoryKind::kDevice) {
    return absl::InvalidArgumentError(
        absl::StrCat("--device cuda needs the nccl collective backend, not ",
                     std::string(coll::BackendName(comm->backend()))));
  }
  auto engine = std::make_unique<CudaEngine>(options, comm);
  NM_RETURN_IF_ERROR(engine->Init());
  return std::unique_ptr<Engine>(std::move(engine));
}

}  // namespace native_mlp
