// NCCL backend tests. They build wherever CUDA + NCCL headers exist and run where a GPU does;
// without one every test skips with the reason. NCCL refuses two ranks on one GPU, so a
// single-GPU machine runs world size 1 plus a multi-stream check (two communicators, each with
// its own CUDA stream, reducing concurrently); the 2-rank test needs two GPUs.
#include <cuda_runtime.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kubetrain/collective/communicator.h"
#include "tests/collective/rank_harness.h"

namespace kubetrain::collective {
namespace {

// Device count, probed in a child process so this process does not initialise CUDA before a
// test forks rank processes.
int ProbeGpus(std::string* why) {
  int fds[2];
  if (pipe(fds) != 0) return 0;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    std::string msg = e == cudaSuccess
                          ? absl::StrCat(n, "|no CUDA device visible")
                          : absl::StrCat(0, "|cudaGetDeviceCount: ", cudaGetErrorString(e));
    (void)!write(fds[1], msg.data(), msg.size());
    _exit(0);
  }
  close(fds[1]);
  char buf[512] = {0};
  ssize_t got = read(fds[0], buf, sizeof(buf) - 1);
  close(fds[0]);
  waitpid(pid, nullptr, 0);
  std::string s(buf, got > 0 ? got : 0);
  size_t bar = s.find('|');
  if (bar == std::string::npos) {
    *why = "GPU probe failed";
    return 0;
  }
  *why = s.substr(bar + 1);
  return std::atoi(s.substr(0, bar).c_str());
}

testing::MemoryOps DeviceMemory() {
  testing::MemoryOps m;
  m.alloc = [](size_t n) {
    void* p = nullptr;
    cudaMalloc(&p, std::max<size_t>(n, 1));
    return p;
  };
  m.free = [](void* p) { cudaFree(p); };
  m.to_device = [](void* d, const void* h, size_t n) {
    if (n) cudaMemcpy(d, h, n, cudaMemcpyHostToDevice);
  };
  m.to_host = [](void* h, const void* d, size_t n) {
    if (n) cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost);
  };
  return m;
}

#define REQUIRE_GPUS(n)                                               \
  do {                                                                \
    std::string why;                                                  \
    const int gpus = ProbeGpus(&why);                                 \
    if (gpus < (n)) {                                                 \
      GTEST_SKIP() << "needs " << (n) << " GPU(s), found " << gpus    \
                   << (gpus == 0 ? " (" + why + ")" : std::string()); \
    }                                                                 \
  } while (0)

TEST(CollectiveNcclTest, WorldSizeOneEveryOpAndDtype) {
  REQUIRE_GPUS(1);
  auto comm = CreateCommunicator(Backend::kNccl, CommunicatorOptions());
  ASSERT_TRUE(comm.ok()) << comm.status();
  EXPECT_EQ((*comm)->memory_kind(), MemoryKind::kDevice);
  testing::CheckOptions o;
  o.memory = DeviceMemory();
  EXPECT_EQ(testing::CheckAllOps(**comm, o), "");
}

TEST(CollectiveNcclTest, TwoCommunicatorsOnTheirOwnStreamsRunConcurrently) {
  REQUIRE_GPUS(1);
  CommunicatorOptions a, b;
  auto ca = CreateCommunicator(Backend::kNccl, a);
  auto cb = CreateCommunicator(Backend::kNccl, b);
  ASSERT_TRUE(ca.ok()) << ca.status();
  ASSERT_TRUE(cb.ok()) << cb.status();
  const size_t n = 16 << 20;
  std::vector<float> host(n, 1.5f);
  float *x = nullptr, *y = nullptr;
  ASSERT_EQ(cudaMalloc(&x, n * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&y, n * 4), cudaSuccess);
  cudaMemcpy(x, host.data(), n * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(y, host.data(), n * 4, cudaMemcpyHostToDevice);
  std::vector<std::shared_ptr<Work>> works;
  for (int i = 0; i < 8; ++i) {
    works.push_back((*ca)->AllReduce(x, n, DataType::kFloat32, ReduceOp::kSum));
    works.push_back((*cb)->AllReduce(y, n, DataType::kFloat32, ReduceOp::kMax));
  }
  for (auto& w : works) EXPECT_TRUE(w->Wait(absl::Seconds(30)).ok());
  std::vector<float> out(n);
  cudaMemcpy(out.data(), x, n * 4, cudaMemcpyDeviceToHost);
  EXPECT_EQ(out[n - 1], 1.5f);
  cudaMemcpy(out.data(), y, n * 4, cudaMemcpyDeviceToHost);
  EXPECT_EQ(out[0], 1.5f);
  cudaFree(x);
  cudaFree(y);
}

TEST(CollectiveNcclTest, TwoRanksOnTwoGpus) {
  REQUIRE_GPUS(2);
  const int port = testing::FreePort();
  auto outcomes = testing::RunRanks(2, [&](int rank) -> std::string {
    CommunicatorOptions o;
    o.rank = rank;
    o.world_size = 2;
    o.local_rank = rank;
    o.master_port = port;
    auto comm = CreateCommunicator(Backend::kNccl, o);
    if (!comm.ok()) return "FAIL: " + comm.status().ToString();
    testing::CheckOptions c;
    c.memory = DeviceMemory();
    return testing::CheckAllOps(**comm, c);
  });
  for (auto& o : outcomes) EXPECT_EQ(o.exit_code, 0) << o.output;
}

TEST(CollectiveNcclTest, MissingPeerTimesOutInsteadOfHanging) {
  REQUIRE_GPUS(1);
  // World size 2 but the second rank never starts: init must fail within the timeout.
  CommunicatorOptions o;
  o.world_size = 2;
  o.master_port = testing::FreePort();
  o.timeout = absl::Seconds(3);
  const absl::Time start = absl::Now();
  auto comm = CreateCommunicator(Backend::kNccl, o);
  EXPECT_FALSE(comm.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

}  // namespace
}  // namespace kubetrain::collective
