#include "kubetrain/collective/bucketer.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/collective/rank_harness.h"

namespace kubetrain::collective {
namespace {

using ::testing::ElementsAre;

std::unique_ptr<Communicator> Local() {
  auto comm = CreateCommunicator(Backend::kCpu, CommunicatorOptions());
  EXPECT_TRUE(comm.ok());
  return *std::move(comm);
}

TEST(CollectiveBucketerTest, DefaultCapsAreDdpLike) {
  BucketerOptions o;
  EXPECT_EQ(o.bucket_bytes, 25u << 20);
  EXPECT_EQ(o.first_bucket_bytes, 1u << 20);
  EXPECT_EQ(o.op, ReduceOp::kAvg);
}

TEST(CollectiveBucketerTest, FillsTheFirstBucketToOneMiBThenTwentyFive) {
  auto comm = Local();
  GradientBucketer b(comm.get());
  // 4 tensors of 512 KiB, then 100 of 1 MiB.
  std::vector<std::vector<float>> t;
  for (int i = 0; i < 4; ++i) t.emplace_back(128 * 1024);
  for (int i = 0; i < 100; ++i) t.emplace_back(256 * 1024);
  for (auto& v : t) ASSERT_TRUE(b.Register(v.data(), v.size(), DataType::kFloat32).ok());
  // [0,1] = 1 MiB; [2,3] + 24 x 1 MiB = 25 MiB; then 25 MiB buckets.
  EXPECT_THAT(b.bucket_members(0), ElementsAre(0, 1));
  EXPECT_EQ(b.bucket_members(1).size(), 2u + 24u);
  EXPECT_EQ(b.bucket_members(2).size(), 25u);
  EXPECT_EQ(b.num_buckets(), 6);  // 2 | 26 | 25 | 25 | 25 | 1 tensors
}

TEST(CollectiveBucketerTest, DtypeChangeAndOversizedTensorsStartNewBuckets) {
  auto comm = Local();
  BucketerOptions o;
  o.first_bucket_bytes = 64;
  o.bucket_bytes = 128;
  GradientBucketer b(comm.get(), o);
  std::vector<float> f1(4), f2(4), big(100);
  std::vector<double> d1(2);
  ASSERT_TRUE(b.Register(f1.data(), 4, DataType::kFloat32).ok());     // 16 B
  ASSERT_TRUE(b.Register(f2.data(), 4, DataType::kFloat32).ok());     // 16 B
  ASSERT_TRUE(b.Register(d1.data(), 2, DataType::kFloat64).ok());     // new type
  ASSERT_TRUE(b.Register(big.data(), 100, DataType::kFloat32).ok());  // 400 B > cap: alone
  EXPECT_EQ(b.num_buckets(), 3);
  EXPECT_THAT(b.bucket_members(0), ElementsAre(0, 1));
  EXPECT_THAT(b.bucket_members(1), ElementsAre(2));
  EXPECT_THAT(b.bucket_members(2), ElementsAre(3));
}

TEST(CollectiveBucketerTest, LaunchesEachBucketAsSoonAsItIsFullAndInOrder) {
  auto comm = Local();
  BucketerOptions o;
  o.first_bucket_bytes = 8;
  o.bucket_bytes = 8;
  GradientBucketer b(comm.get(), o);
  std::vector<std::vector<float>> t(6, std::vector<float>(2, 1.0f));  // 8 B each: 6 buckets
  for (auto& v : t) ASSERT_TRUE(b.Register(v.data(), 2, DataType::kFloat32).ok());
  ASSERT_TRUE(b.MarkReady(0).ok());
  EXPECT_EQ(b.buckets_launched(), 1);  // overlaps with the rest of backward
  ASSERT_TRUE(b.MarkReady(2).ok());
  EXPECT_EQ(b.buckets_launched(), 1);  // bucket 2 is full but bucket 1 is not launched yet
  ASSERT_TRUE(b.MarkReady(1).ok());
  EXPECT_EQ(b.buckets_launched(), 3);
  EXPECT_EQ(b.MarkReady(1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b.Wait().code(), absl::StatusCode::kFailedPrecondition);  // 3..5 never ready
  for (int i : {3, 4, 5}) ASSERT_TRUE(b.MarkReady(i).ok());
  EXPECT_TRUE(b.Wait().ok());
  EXPECT_EQ(b.buckets_launched(), 0);  // re-armed
  EXPECT_EQ(b.Register(t[0].data(), 2, DataType::kFloat32).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(CollectiveBucketerTest, ResultsMatchSeparateAllReducesAcrossRanks) {
  for (int n : {2, 3}) {
    const int port = testing::FreePort();
    auto outcomes = testing::RunRanks(n, [&](int rank) -> std::string {
      CommunicatorOptions co;
      co.rank = rank;
      co.world_size = n;
      co.master_port = port;
      co.timeout = absl::Seconds(20);
      auto comm = CreateCommunicator(Backend::kCpu, co);
      if (!comm.ok()) return "FAIL: " + comm.status().ToString();
      BucketerOptions o;
      o.first_bucket_bytes = 16 << 10;
      o.bucket_bytes = 64 << 10;
      GradientBucketer b(comm->get(), o);
      std::vector<std::vector<float>> grads(1000);
      for (size_t i = 0; i < grads.size(); ++i) {
        grads[i].resize((i * 37) % 300 + 1);
        if (!b.Register(grads[i].data(), grads[i].size(), DataType::kFloat32).ok()) {
          return "FAIL: register";
        }
      }
      std::vector<int> order(grads.size());
      std::iota(order.begin(), order.end(), 0);
      if (rank == 1) std::reverse(order.begin(), order.end());
      if (rank == 2) std::shuffle(order.begin(), order.end(), std::mt19937(7));
      for (int step = 0; step < 2; ++step) {
        for (size_t i = 0; i < grads.size(); ++i) {
          for (size_t j = 0; j < grads[i].size(); ++j) {
            grads[i][j] = static_cast<float>((rank + 1) * (i + j + step));
          }
        }
        for (int i : order) {
          absl::Status s = b.MarkReady(i);
          if (!s.ok()) return "FAIL: " + s.ToString();
        }
        absl::Status s = b.Wait();
        if (!s.ok()) return "FAIL: " + s.ToString();
        const int rank_sum = n * (n + 1) / 2;  // exact: n * (n + 1) is even
        const float scale = static_cast<float>(rank_sum) / n;
        for (size_t i = 0; i < grads.size(); ++i) {
          for (size_t j = 0; j < grads[i].size(); ++j) {
            const float want = scale * static_cast<float>(i + j + step);
            if (std::abs(grads[i][j] - want) > 1e-3f * std::max(1.0f, want)) {
              return absl::StrCat("FAIL: step ", step, " tensor ", i, "[", j, "] = ", grads[i][j],
                                  ", want ", want);
            }
          }
        }
      }
      return absl::StrCat("buckets=", b.num_buckets());
    });
    for (auto& o : outcomes) EXPECT_EQ(o.exit_code, 0) << n << " ranks: " << o.output;
  }
}

}  // namespace
}  // namespace kubetrain::collective
