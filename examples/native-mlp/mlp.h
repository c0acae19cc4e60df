// A one-hidden-layer MLP classifier (dims -> hidden ReLU -> classes, softmax cross-entropy) on the
// CPU, with its parameters in one contiguous float buffer so a checkpoint is a single tensor.
//
// Layout of the flat buffer (the same for parameters, gradients and the momentum):
//   w1 [hidden x dims] | b1 [hidden] | w2 [classes x hidden] | b2 [classes]
// Everything is plain float32 arithmetic in a fixed loop order, so a given input always gives the
// same bits (the example relies on this for bit-identical resumes).
//
// Thread-safety: none; one Mlp per rank, used from the training thread.
#ifndef KUBETRAIN_EXAMPLES_NATIVE_MLP_MLP_H_
#define KUBETRAIN_EXAMPLES_NATIVE_MLP_MLP_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace native_mlp {

struct MlpShape {
  int dims = 16;
  int hidden = 64;
  int classes = 4;

  size_t w1() const { return static_cast<size_t>(hidden) * dims; }
  size_t b1() const { return static_cast<size_t>(hidden); }
  size_t w2() const { return static_cast<size_t>(classes) * hidden; }
  size_t b2() const { return static_cast<size_t>(classes); }
  size_t size() const { return w1() + b1() + w2() + b2(); }
  // Offsets of each tensor in the flat buffer.
  size_t w1_offset() const { return 0; }
  size_t b1_offset() const { return w1(); }
  size_t w2_offset() const { return w1() + b1(); }
  size_t b2_offset() const { return w1() + b1() + w2(); }
};

// He-style initialisation from the seed (identical on every rank).
std::vector<float> InitParams(const MlpShape& shape, uint64_t seed);

// What one batch gave: mean loss and the number of correct argmax predictions.
struct BatchResult {
  float loss = 0;
  int64_t correct = 0;
};

class CpuMlp {
 public:
  explicit CpuMlp(const MlpShape& shape) : shape_(shape) {}

  // Forward + backward on `count` rows of `x` (row-major, dims wide) with labels `y`: writes the
  // mean-over-batch gradient into `grad` (size shape.size()) and calls `on_ready(tensor)` as each
  // tensor's gradient is complete, in backward order: 3 (b2), 2 (w2), 1 (b1), 0 (w1).
  template <typename OnReady>
  BatchResult TrainStep(const float* params, const float* x, const int32_t* y, int64_t count,
                        float* grad, OnReady on_ready);

  // Forward only (loss and correct predictions over `count` rows).
  BatchResult Evaluate(const float* params, const float* x, const int32_t* y, int64_t count);

 private:
  BatchResult Forward(const float* params, const float* x, const int32_t* y, int64_t count);
  void BackwardOutput(const float* params, const float* x, int64_t count, float* grad);
  void BackwardHidden(const float* params, const float* x, int64_t count, float* grad);

  MlpShape shape_;
  std::vector<float> pre_;           // count x hidden, before ReLU
  std::vector<float> act_;           // count x hidden, after ReLU
  std::vector<float> dlogit_;        // count x classes: softmax probabilities, then their gradient
  const int32_t* labels_ = nullptr;  // the labels of the last Forward
};

template <typename OnReady>
BatchResult CpuMlp::TrainStep(const float* params, const float* x, const int32_t* y, int64_t count,
                              float* grad, OnReady on_ready) {
  BatchResult r = Forward(params, x, y, count);
  BackwardOutput(params, x, count, grad);
  on_ready(3);
  on_ready(2);
  BackwardHidden(params, x, count, grad);
  on_ready(1);
  on_ready(0);
  return r;
}

// SGD with momentum, in place: v = momentum * v + g; p -= lr * v.
void SgdMomentumUpdate(float* params, float* velocity, const float* grad, size_t n, float lr,
                       float momentum);

}  // namespace native_mlp

#endif  // KUBETRAIN_EXAMPLES_NATIVE_MLP_MLP_H_
