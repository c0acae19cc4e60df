// A deterministic synthetic classification dataset, generated from a seed and sharded by rank.
//
// Sample i (a global index) is a function of (seed, i) alone: x ~ N(0, 1)^dims from a counter-based
// generator, and its label is the argmax of a fixed random "teacher" network (dims -> 32 tanh ->
// classes) drawn from the seed. So any rank can generate exactly its own shard, any number of
// times, with identical bits, and a restarted job sees the same data as the first attempt.
//
// Sharding: rank r of world w owns the training samples with i % w == r (i < train_samples). Test
// samples come from a disjoint index range (the same teacher), sharded the same way.
//
// Thread-safety: a Dataset is immutable after construction.
#ifndef KUBETRAIN_EXAMPLES_NATIVE_MLP_DATASET_H_
#define KUBETRAIN_EXAMPLES_NATIVE_MLP_DATASET_H_

#include <cstdint>
#include <vector>

namespace native_mlp {

struct DatasetOptions {
  uint64_t seed = 1;
  int dims = 16;                 // input features
  int classes = 4;               // labels 0 .. classes-1
  int64_t train_samples = 8192;  // global training set size
  int64_t test_samples = 4096;   // global held-out set size
};

// One rank's samples: `features` is count x dims, row-major.
struct Shard {
  int64_t count = 0;
  std::vector<float> features;
  std::vector<int32_t> labels;
};

// Generates rank `rank`'s shard of the training set (test = false) or of the held-out set.
Shard MakeShard(const DatasetOptions& options, int rank, int world_size, bool test);

// splitmix64: the counter-based mixer every random draw of the example goes through.
uint64_t Mix64(uint64_t x);
// A standard normal float from (seed, stream, index), via Box-Muller on two mixed counters.
float Normal(uint64_t seed, uint64_t stream, uint64_t index);

}  // namespace native_mlp

#endif  // KUBETRAIN_EXAMPLES_NATIVE_MLP_DATASET_H_
