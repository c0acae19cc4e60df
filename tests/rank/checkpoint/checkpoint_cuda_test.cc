// kubetrain::checkpoint with CUDA device buffers (builds with CUDA): Save and SaveAsync stage
// them through pinned host memory; SaveAsync's snapshot is taken before it returns. Skips, with
// the reason, on a machine without a CUDA device.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kubetrain/rank/checkpoint.h"

namespace kubetrain::checkpoint {
namespace {

namespace fs = std::filesystem;

class CheckpointCudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int devices = 0;
    cudaError_t err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess || devices == 0) {
      GTEST_SKIP() << "needs a CUDA device: cudaGetDeviceCount says "
                   << (err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
    }
    char tmpl[] = "/tmp/kubetrain-ckpt-cuda-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override {
    if (!root_.empty()) fs::remove_all(root_);
  }
  std::string root_;
};

TEST_F(CheckpointCudaTest, DeviceBuffersRoundTripThroughSaveAndSaveAsync) {
  const size_t n = (64 << 20) + 17;
  std::vector<uint8_t> host(n), small(4096);
  for (size_t i = 0; i < n; ++i) host[i] = static_cast<uint8_t>(i * 131 + 7);
  for (size_t i = 0; i < small.size(); ++i) small[i] = static_cast<uint8_t>(i);
  void* dev = nullptr;
  ASSERT_EQ(cudaMalloc(&dev, n), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dev, host.data(), n, cudaMemcpyHostToDevice), cudaSuccess);

  CheckpointOptions o;
  o.dir = root_ + "/ckpt";
  o.rank = 0;
  o.world_size = 1;
  auto ck = Checkpointer::Create(o);
  ASSERT_TRUE(ck.ok()) << ck.status();
  NamedBuffer buffers[] = {{"weights", dev, n, Memory::kCuda},
                           {"host.state", small.data(), small.size(), Memory::kHost}};
  ASSERT_TRUE((*ck)->Save(1, buffers).ok());
  ASSERT_TRUE((*ck)->SaveAsync(2, buffers).ok());
  ASSERT_EQ(cudaMemset(dev, 0, n), cudaSuccess);  // after SaveAsync returned: not in step 2
  ASSERT_TRUE((*ck)->Wait().ok());
  for (int64_t step : {1, 2}) {
    auto loaded = (*ck)->Load(step);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    const LoadedTensor* w = loaded->Find("weights");
    ASSERT_NE(w, nullptr);
    ASSERT_EQ(w->data.size(), n);
    EXPECT_EQ(std::memcmp(w->data.data(), host.data(), n), 0) << "step " << step;
    EXPECT_EQ(std::memcmp(loaded->Find("host.state")->data.data(), small.data(), small.size()), 0);
  }
  cudaFree(dev);
}

}  // namespace
}  // namespace kubetrain::checkpoint
