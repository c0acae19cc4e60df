// Tests of the rank-side runtime library (kubetrain/rank/runtime.h) against a real in-process
// MLflow endpoint (agent/metrics/mlflow_endpoint.h) over loopback HTTP. The library is a
// process-wide singleton: every test here shares one configuration and uses its own metric keys.
#include "kubetrain/rank/runtime.h"

#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/agent/metrics/mlflow_endpoint.h"

namespace kubetrain::runtime {
namespace {

struct Captured {
  std::mutex mu;
  std::vector<v1::MetricBatch> batches;
  std::map<std::string, int64_t> count_by_key;
  std::map<std::string, std::string> params, tags;
  std::map<int, int64_t> count_by_rank;
};

Captured& captured() {
  static Captured* c = new Captured;
  return *c;
}

agent::MlflowEndpoint& Endpoint() {
  static agent::MlflowEndpoint* endpoint = [] {
    agent::MlflowEndpointOptions options;
    options.job = "rt-job";
    options.experiment_name = "exp";
    options.source = "runtime-test";
    options.keep_history = false;
    auto* e = new agent::MlflowEndpoint(options, [](const v1::MetricBatch& b) {
      Captured& c = captured();
      std::lock_guard<std::mutex> lock(c.mu);
      for (const auto& m : b.metrics()) {
        ++c.count_by_key[m.key()];
        ++c.count_by_rank[m.rank()];
      }
      for (const auto& p : b.params()) c.params[p.key()] = p.value();
      for (const auto& t : b.tags()) c.tags[t.key()] = t.value();
      return absl::OkStatus();
    });
    EXPECT_TRUE(e->Start().ok());
    RuntimeOptions rt;
    rt.tracking_uri = e->uri();
    rt.run_id = "rt-job";
    rt.rank = 3;
    rt.ring_points = 4096;             // small, so that the tests wrap it many times
    rt.full_wait = absl::Seconds(60);  // slow (sanitizer) builds wait rather than drop
    rt.install_signal_handlers = false;
    EXPECT_TRUE(InitRuntime(rt).ok());
    return e;
  }();
  return *endpoint;
}

int64_t Count(const std::string& key) {
  Captured& c = captured();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.count_by_key[key];
}

TEST(RuntimeTest, RankInfoComesFromTheEnvironment) {
  // RANK etc. are unset in the test: a single process.
  const RankInfo& info = GetRankInfo();
  EXPECT_GE(info.rank, 0);
  EXPECT_GE(info.world_size, 1);
}

TEST(RuntimeTest, EveryPointFromSeveralThreadsArrivesWithItsRank) {
  agent::MlflowEndpoint& endpoint = Endpoint();
  constexpr int kThreads = 3, kPoints = 50000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kPoints; ++i) {
        LogMetric("threads/loss" + std::to_string(t), 1.0 / (i + 1), i);
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(Flush(absl::Seconds(60)).ok());
  ASSERT_TRUE(endpoint.Flush().ok());
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(Count("threads/loss" + std::to_string(t)), kPoints);
  }
  Captured& c = captured();
  std::lock_guard<std::mutex> lock(c.mu);
  EXPECT_EQ(c.count_by_rank.count(-1), 0u);
  EXPECT_GE(c.count_by_rank[3], kThreads * kPoints);
  EXPECT_EQ(GetRuntimeStats().dropped, 0);
}

TEST(RuntimeTest, ParamsAndTagsAreShipped) {
  agent::MlflowEndpoint& endpoint = Endpoint();
  LogParam("rt_lr", "0.125");
  SetTag("rt_tag", "x\"y\\z");  // JSON escaping
  ASSERT_TRUE(Flush(absl::Seconds(30)).ok());
  ASSERT_TRUE(endpoint.Flush().ok());
  Captured& c = captured();
  std::lock_guard<std::mutex> lock(c.mu);
  EXPECT_EQ(c.params["rt_lr"], "0.125");
  EXPECT_EQ(c.tags["rt_tag"], "x\"y\\z");
}

TEST(RuntimeTest, NonFiniteValuesAndNewKeysAfterStart) {
  agent::MlflowEndpoint& endpoint = Endpoint();
  LogMetric("nf/nan", std::numeric_limits<double>::quiet_NaN(), 0);
  LogMetric("nf/inf", std::numeric_limits<double>::infinity(), 0);
  ASSERT_TRUE(Flush(absl::Seconds(30)).ok());
  ASSERT_TRUE(endpoint.Flush().ok());
  EXPECT_EQ(Count("nf/nan"), 1);
  EXPECT_EQ(Count("nf/inf"), 1);
  EXPECT_EQ(GetRuntimeStats().failed_requests, 0);
}

}  // namespace
}  // namespace kubetrain::runtime
