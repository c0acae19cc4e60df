// bench_fusion: 1000 gradient tensors of 4 KiB (float32) on 2 forked CPU-backend ranks, reduced
// (avg) three ways per step: 1000 separate AllReduce calls each waited before the next,
// 1000 separate AllReduce calls issued back to back then all waited, and the GradientBucketer
// (default options: first bucket 1 MiB, then 25 MiB). Prints the mean step time of each and
// the ratios separate / bucketer.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "kubetrain/collective/bucketer.h"
#include "kubetrain/collective/communicator.h"

namespace kc = kubetrain::collective;

namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return 0;  // what getsockname reports for the unbound socket
  }
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

constexpr int kTensors = 1000;
constexpr size_t kFloats = 1024;  // 4 KiB
constexpr int kSteps = 20;

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / v.size();
}

int Rank(int rank, int port) {
  kc::CommunicatorOptions o;
  o.rank = rank;
  o.world_size = 2;
  o.master_port = port;
  auto comm = kc::CreateCommunicator(kc::Backend::kCpu, o);
  if (!comm.ok()) {
    std::fprintf(stderr, "rank %d: %s\n", rank, comm.status().ToString().c_str());
    return 1;
  }
  kc::Communicator& c = **comm;
  std::vector<std::vector<float>> grads(kTensors, std::vector<float>(kFloats));
  auto fill = [&] {
    for (int t = 0; t < kTensors; ++t) {
      for (float& x : grads[t]) x = static_cast<float>(rank + t);
    }
  };
  auto verify = [&]() {
    for (int t = 0; t < kTensors; ++t) {
      if (grads[t][kFloats - 1] != static_cast<float>(t) + 0.5f) return false;
    }
    return true;
  };
  std::vector<double> sync_ms, async_ms, bucket_ms;
  kc::GradientBucketer bucketer(&c);
  for (int t = 0; t < kTensors; ++t) {
    if (!bucketer.Register(grads[t].data(), kFloats, kc::DataType::kFloat32).ok()) return 1;
  }
  bool ok = true;
  for (int step = 0; step < kSteps + 2; ++step) {  // 2 warmup steps
    fill();
    (void)c.Barrier()->Wait();
    absl::Time t0 = absl::Now();
    for (int t = 0; t < kTensors; ++t) {
      if (!c.AllReduce(grads[t].data(), kFloats, kc::DataType::kFloat32, kc::ReduceOp::kAvg)
               ->Wait()
               .ok()) {
        return 1;
      }
    }
    const double a = absl::ToDoubleMilliseconds(absl::Now() - t0);
    ok = ok && verify();

    fill();
    (void)c.Barrier()->Wait();
    t0 = absl::Now();
    std::vector<std::shared_ptr<kc::Work>> works;
    works.reserve(kTensors);
    for (int t = 0; t < kTensors; ++t) {
      works.push_back(
          c.AllReduce(grads[t].data(), kFloats, kc::DataType::kFloat32, kc::ReduceOp::kAvg));
    }
    for (auto& w : works) {
      if (!w->Wait().ok()) return 1;
    }
    const double b = absl::ToDoubleMilliseconds(absl::Now() - t0);
    ok = ok && verify();

    fill();
    (void)c.Barrier()->Wait();
    t0 = absl::Now();
    for (int t = 0; t < kTensors; ++t) {
      if (!bucketer.MarkReady(t).ok()) return 1;
    }
    if (!bucketer.Wait().ok()) return 1;
    const double d = absl::ToDoubleMilliseconds(absl::Now() - t0);
    ok = ok && verify();
    if (step >= 2) {
      sync_ms.push_back(a);
      async_ms.push_back(b);
      bucket_ms.push_back(d);
    }
  }
  if (rank == 0) {
    const double s = Mean(sync_ms), as = Mean(async_ms), bk = Mean(bucket_ms);
    std::printf(
        "fusion: %d x 4 KiB float32 avg, 2 ranks (cpu backend), mean of %d steps, "
        "results %s\n",
        kTensors, kSteps, ok ? "OK" : "WRONG");
    std::printf("  1000 separate allreduces, each waited:   %8.2f ms/step\n", s);
    std::printf("  1000 separate allreduces, all in flight: %8.2f ms/step\n", as);
    std::printf("  bucketer (%d buckets: 1 MiB, then 25 MiB):   %8.2f ms/step\n",
                bucketer.num_buckets(), bk);
    std::printf(
        "fusion ratio: bucketer is %.1fx faster than separate waited allreduces, "
        "%.1fx faster than separate in-flight allreduces\n",
        s / bk, as / bk);
  }
  return ok ? 0 : 1;
}

}  // namespace

int main() {
  const int port = FreePort();
  pid_t child = fork();
  if (child == 0) _exit(Rank(1, port));
  int rc = Rank(0, port);
  int status = 0;
  waitpid(child, &status, 0);
  return rc != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}
