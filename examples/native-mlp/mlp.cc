#include "mlp.h"

#include <algorithm>
#include <cmath>

#include "dataset.h"

namespace native_mlp {

std::vector<float> InitParams(const MlpShape& s, uint64_t seed) {
  std::vector<float> p(s.size(), 0.0f);
  const float scale1 = std::sqrt(2.0f / static_cast<float>(s.dims));
  const float scale2 = std::sqrt(2.0f / static_cast<float>(s.hidden));
  for (size_t i = 0; i < s.w1(); ++i) p[s.w1_offset() + i] = scale1 * Normal(seed, 0xa1, i);
  for (size_t i = 0; i < s.w2(); ++i) p[s.w2_offset() + i] = scale2 * Normal(seed, 0xa2, i);
  return p;  // biases start at zero
}

BatchResult CpuMlp::Forward(const float* params, const float* x, const int32_t* y, int64_t count) {
  const MlpShape& s = shape_;
  pre_.resize(static_cast<size_t>(count) * s.hidden);
  act_.resize(pre_.size());
  dlogit_.resize(static_cast<size_t>(count) * s.classes);
  const float* w1 = params + s.w1_offset();
  const float* b1 = params + s.b1_offset();
  const float* w2 = params + s.w2_offset();
  const float* b2 = params + s.b2_offset();
  labels_ = y;
  BatchResult r;
  double loss = 0;
  for (int64_t i = 0; i < count; ++i) {
    const float* xi = x + i * s.dims;
    float* pre = &pre_[i * s.hidden];
    float* act = &act_[i * s.hidden];
    for (int h = 0; h < s.hidden; ++h) {
      float a = b1[h];
      const float* row = w1 + static_cast<size_t>(h) * s.dims;
      for (int d = 0; d < s.dims; ++d) a += row[d] * xi[d];
      pre[h] = a;
      act[h] = a > 0 ? a : 0;
    }
    float* logit = &dlogit_[i * s.classes];
    float max_logit = 0;
    int best = 0;
    for (int c = 0; c < s.classes; ++c) {
      float z = b2[c];
      const float* row = w2 + static_cast<size_t>(c) * s.hidden;
      for (int h = 0; h < s.hidden; ++h) z += row[h] * act[h];
      logit[c] = z;
      if (c == 0 || z > max_logit) max_logit = z, best = c;
    }
    float sum = 0;
    for (int c = 0; c < s.classes; ++c) {
      logit[c] = std::exp(logit[c] - max_logit);
      sum += logit[c];
    }
    // logit now holds softmax probabilities (the start of the gradient).
    for (int c = 0; c < s.classes; ++c) logit[c] /= sum;
    loss -= std::log(std::max(logit[y[i]], 1e-30f));
    if (best == y[i]) ++r.correct;
  }
  r.loss = static_cast<float>(loss / static_cast<double>(std::max<int64_t>(count, 1)));
  return r;
}

BatchResult CpuMlp::Evaluate(const float* params, const float* x, const int32_t* y, int64_t count) {
  return Forward(params, x, y, count);
}

void CpuMlp::BackwardOutput(const float* params, const float* x, int64_t count, float* grad) {
  (void)params;
  (void)x;
  const MlpShape& s = shape_;
  const float inv_n = 1.0f / static_cast<float>(count);
  float* gw2 = grad + s.w2_offset();
  float* gb2 = grad + s.b2_offset();
  std::fill(gw2, gw2 + s.w2(), 0.0f);
  std::fill(gb2, gb2 + s.b2(), 0.0f);
  for (int64_t i = 0; i < count; ++i) {
    float* dz = &dlogit_[i * s.classes];  // softmax - onehot, over the batch
    const float* act = &act_[i * s.hidden];
    for (int c = 0; c < s.classes; ++c) {
      float d = dz[c];
      if (c == labels_[i]) d -= 1.0f;
      d *= inv_n;
      dz[c] = d;
      gb2[c] += d;
      float* row = gw2 + static_cast<size_t>(c) * s.hidden;
      for (int h = 0; h < s.hidden; ++h) row[h] += d * act[h];
    }
  }
}

void CpuMlp::BackwardHidden(const float* params, const float* x, int64_t count, float* grad) {
  const MlpShape& s = shape_;
  const float* w2 = params + s.w2_offset();
  float* gw1 = grad + s.w1_offset();
  float* gb1 = grad + s.b1_offset();
  std::fill(gw1, gw1 + s.w1(), 0.0f);
  std::fill(gb1, gb1 + s.b1(), 0.0f);
  for (int64_t i = 0; i < count; ++i) {
    const float* dz = &dlogit_[i * s.classes];
    const float* pre = &pre_[i * s.hidden];
    const float* xi = x + i * s.dims;
    for (int h = 0; h < s.hidden; ++h) {
      if (pre[h] <= 0) continue;  // ReLU
      float d = 0;
      for (int c = 0; c < s.classes; ++c) d += dz[c] * w2[static_cast<size_t>(c) * s.hidden + h];
      gb1[h] += d;
      float* row = gw1 + static_cast<size_t>(h) * s.dims;
      for (int k = 0; k < s.dims; ++k) row[k] += d * xi[k];
    }
  }
}

void SgdMomentumUpdate(float* p, float* v, const float* g, size_t n, float lr, float momentum) {
  for (size_t i = 0; i < n; ++i) {
    v[i] = momentum * v[i] + g[i];
    p[i] -= lr * v[i];
  }
}

}  // namespace native_mlp
