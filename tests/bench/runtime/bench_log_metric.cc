// Cost of one kubetrain::runtime::LogMetric call on the training thread, against the peer a naive
// library would use: a mutex-guarded std::vector push of the same record, measured in the same run.
// The library ships for real during the measurement: an in-process MLflow endpoint
// (agent/metrics/mlflow_endpoint.h, shipping to nowhere) receives the points over loopback HTTP.
// Each call is timed in chunks of 64 calls (steady_clock around the chunk); the lines give the
// median and p99 of the per-call cost, and the ratio to the peer (target: median under 200 ns).
//
// Usage: bench_log_metric [calls]   (default 2000000)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "kubetrain/agent/metrics/mlflow_endpoint.h"
#include "kubetrain/rank/runtime.h"

namespace {

constexpr int kChunk = 64;
using Clock = std::chrono::steady_clock;

struct Record {
  std::string key;
  double value;
  int64_t step;
  int64_t timestamp_ms;
};

template <typename F>
std::vector<double> PerCallNs(int calls, F&& call) {
  std::vector<double> out;
  out.reserve(calls / kChunk);
  for (int i = 0; i + kChunk <= calls; i += kChunk) {
    auto start = Clock::now();
    for (int j = i; j < i + kChunk; ++j) call(j);
    out.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count() / kChunk);
  }
  std::sort(out.begin(), out.end());
  return out;
}

double Pct(const std::vector<double>& sorted, double p) {
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  const int calls = argc > 1 ? std::atoi(argv[1]) : 2000000;
  kubetrain::agent::MlflowEndpointOptions options;
  options.job = "bench";
  options.source = "bench";
  options.keep_history = false;
  kubetrain::agent::MlflowEndpoint endpoint(
      options, [](const kubetrain::v1::MetricBatch&) { return absl::OkStatus(); });
  if (!endpoint.Start().ok()) {
    std::fprintf(stderr, "bench_log_metric: cannot start the endpoint\n");
    return 1;
  }
  kubetrain::runtime::RuntimeOptions rt;
  rt.tracking_uri = endpoint.uri();
  rt.run_id = "bench";
  rt.install_signal_handlers = false;
  (void)kubetrain::runtime::InitRuntime(rt);

  // Warm up (thread ring, key interning).
  for (int i = 0; i < 1000; ++i) kubetrain::runtime::LogMetric("loss", i, i);

  std::vector<double> ours =
      PerCallNs(calls, [](int i) { kubetrain::runtime::LogMetric("loss", 1.0 / (i + 1), i); });
  absl::Status flushed = kubetrain::runtime::Flush(absl::Seconds(120));

  std::mutex mu;
  std::vector<Record> records;
  records.reserve(1 << 16);
  std::vector<double> peer = PerCallNs(calls, [&](int i) {
    std::lock_guard<std::mutex> lock(mu);
    if (records.size() == records.capacity()) records.clear();  // a drainer would swap it out
    records.push_back({"loss", 1.0 / (i + 1), i,
                       std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count()});
  });

  kubetrain::runtime::RuntimeStats stats = kubetrain::runtime::GetRuntimeStats();
  endpoint.Stop();
  std::printf(
      "LogMetric: %d calls, median %.1f ns, p99 %.1f ns per call; peer (mutex + vector "
      "push): median %.1f ns, p99 %.1f ns; ratio %.2f (target: median < 200 ns)\n",
      calls, Pct(ours, 0.5), Pct(ours, 0.99), Pct(peer, 0.5), Pct(peer, 0.99),
      Pct(ours, 0.5) / Pct(peer, 0.5));
  std::printf("shipped %lld of %lld points over %lld requests, %lld dropped; flush: %s\n",
              static_cast<long long>(stats.shipped), static_cast<long long>(stats.logged),
              static_cast<long long>(stats.requests), static_cast<long long>(stats.dropped),
              flushed.ok() ? "ok" : std::string(flushed.message()).c_str());
  return 0;
}
