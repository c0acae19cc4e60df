// A C++ rank that logs N points (default 1,000,000) of "cpp/loss" through the kubetrain runtime
// library and exits without calling Flush: the library's exit flush must deliver every point.
// With a second argument "abort" it then crashes (std::abort): the signal flush must deliver them.
// Run as a kubetrain job by metrics_job_test.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kubetrain/rank/runtime.h"

int main(int argc, char** argv) {
  namespace rt = kubetrain::runtime;
  const long long n = argc > 1 ? std::atoll(argv[1]) : 1000000;
  const rt::RankInfo& info = rt::GetRankInfo();
  rt::LogParam("points", std::to_string(n));
  rt::SetTag("writer", "log_points");
  for (long long i = 0; i < n; ++i) rt::LogMetric("cpp/loss", 1.0 / static_cast<double>(i + 1), i);
  std::printf("rank %d of %d: logged %lld points to %s\n", info.rank, info.world_size, n,
              info.tracking_uri.c_str());
  std::fflush(stdout);
  if (argc > 2 && std::string(argv[2]) == "abort") std::abort();
  return 0;
}
