// A rank that saves N checkpoints (default 5) of a few tensors with kubetrain::checkpoint, every
// other one asynchronously, keeping the last 2; run as a kubetrain job by checkpoint_job_test.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "kubetrain/rank/checkpoint.h"

int main(int argc, char** argv) {
  namespace w = kubetrain::checkpoint;
  const int n = argc > 1 ? std::atoi(argv[1]) : 5;
  w::CheckpointOptions options;  // dir, rank, world size and attempt from the environment
  options.keep_last = 2;
  auto ck = w::Checkpointer::Create(options);
  if (!ck.ok()) {
    std::fprintf(stderr, "save_checkpoints: %s\n", ck.status().ToString().c_str());
    return 1;
  }
  std::vector<float> weights(1 << 16), moments(1 << 15);
  for (int step = 1; step <= n; ++step) {
    for (float& v : weights) v += 0.5f * step;
    for (float& v : moments) v -= 0.25f;
    w::NamedBuffer buffers[] = {{"weights", weights.data(), weights.size() * sizeof(float)},
                                {"moments", moments.data(), moments.size() * sizeof(float)}};
    absl::Status s =
        step % 2 == 0 ? (*ck)->SaveAsync(step * 10, buffers) : (*ck)->Save(step * 10, buffers);
    if (!s.ok()) {
      std::fprintf(stderr, "save_checkpoints: step %d: %s\n", step * 10, s.ToString().c_str());
      return 1;
    }
  }
  if (absl::Status s = (*ck)->Wait(); !s.ok()) {
    std::fprintf(stderr, "save_checkpoints: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("rank %d saved %d checkpoints in %s\n", (*ck)->rank(), n, (*ck)->dir().c_str());
  return 0;
}
