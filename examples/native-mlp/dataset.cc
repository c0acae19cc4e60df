#include "dataset.h"

#include <algorithm>
#include <cmath>

namespace native_mlp {
namespace {

constexpr int kTeacherHidden = 32;
constexpr uint64_t kTeacherStream = 0x7ea0;
constexpr uint64_t kTrainStream = 0x1000;
constexpr uint64_t kTestStream = 0x2000;

double Uniform01(uint64_t bits) {  // (0, 1]: never 0, so log() below is finite
  return (static_cast<double>(bits >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

}  // namespace

uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

float Normal(uint64_t seed, uint64_t stream, uint64_t index) {
  const uint64_t base = Mix64(Mix64(seed) ^ Mix64(stream + 0x51ed270b)) ^ (index * 2);
  const double u1 = Uniform01(Mix64(base));
  const double u2 = Uniform01(Mix64(base ^ 1));
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

Shard MakeShard(const DatasetOptions& o, int rank, int world_size, bool test) {
  // The teacher: W1 (kTeacherHidden x dims), W2 (classes x kTeacherHidden), the same on every rank.
  std::vector<float> w1(static_cast<size_t>(kTeacherHidden) * o.dims);
  std::vector<float> w2(static_cast<size_t>(o.classes) * kTeacherHidden);
  // Scaled so tanh stays mostly linear: smooth class boundaries an MLP can learn well.
  const float w1_scale = 1.0f / std::sqrt(static_cast<float>(o.dims));
  for (size_t i = 0; i < w1.size(); ++i) w1[i] = w1_scale * Normal(o.seed, kTeacherStream, i);
  for (size_t i = 0; i < w2.size(); ++i) w2[i] = Normal(o.seed, kTeacherStream + 1, i);

  const int64_t total = test ? o.test_samples : o.train_samples;
  const uint64_t stream = test ? kTestStream : kTrainStream;
  Shard s;
  for (int64_t i = rank; i < total; i += world_size) ++s.count;
  s.features.resize(static_cast<size_t>(s.count) * o.dims);
  s.labels.resize(static_cast<size_t>(s.count));
  std::vector<float> hidden(kTeacherHidden);
  int64_t row = 0;
  for (int64_t i = rank; i < total; i += world_size, ++row) {
    float* x = &s.features[static_cast<size_t>(row) * o.dims];
    for (int d = 0; d < o.dims; ++d) {
      x[d] = Normal(o.seed, stream, static_cast<uint64_t>(i) * o.dims + d);
    }
    for (int h = 0; h < kTeacherHidden; ++h) {
      float a = 0;
      for (int d = 0; d < o.dims; ++d) a += w1[static_cast<size_t>(h) * o.dims + d] * x[d];
      hidden[h] = std::tanh(a);
    }
    int best = 0;
    float best_score = 0;
    for (int c = 0; c < o.classes; ++c) {
      float score = 0;
      for (int h = 0; h < kTeacherHidden; ++h) {
        score += w2[static_cast<size_t>(c) * kTeacherHidden + h] * hidden[h];
      }
      if (c == 0 || score > best_score) best = c, best_score = score;
    }
    s.labels[static_cast<size_t>(row)] = best;
  }
  return s;
}

}  // namespace native_mlp
