#include "kubetrain/collective/store.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/collective/rank_harness.h"

namespace kubetrain::collective {
namespace {

using ::testing::HasSubstr;

class CollectiveStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = TcpStoreServer::Start(0);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  std::unique_ptr<TcpStoreClient> Client(absl::Duration timeout = absl::Seconds(5)) {
    auto c = TcpStoreClient::Connect("127.0.0.1", server_->port(), timeout);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }
  std::unique_ptr<TcpStoreServer> server_;
};

TEST_F(CollectiveStoreTest, SetThenGet) {
  auto a = Client(), b = Client();
  ASSERT_TRUE(a->Set("k", std::string("v\0x", 3)).ok());
  auto v = b->Get("k");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, std::string("v\0x", 3));
  EXPECT_EQ(a->local_address(), "127.0.0.1");
}

TEST_F(CollectiveStoreTest, GetWithoutWaitOnMissingKeyIsNotFound) {
  auto a = Client();
  EXPECT_EQ(a->Get("missing", /*wait=*/false).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CollectiveStoreTest, GetWaitsForALaterSet) {
  auto a = Client(), b = Client();
  std::thread setter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(b->Set("late", "here").ok());
  });
  auto v = a->Get("late", /*wait=*/true, absl::Seconds(5));
  setter.join();
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "here");
}

TEST_F(CollectiveStoreTest, GetTimesOutNamingTheKey) {
  auto a = Client();
  const absl::Time start = absl::Now();
  auto v = a->Get("never", /*wait=*/true, absl::Milliseconds(200));
  EXPECT_EQ(v.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(v.status().message(), HasSubstr("'never'"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST_F(CollectiveStoreTest, AddIsAtomicAcrossClients) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      auto c = Client();
      for (int i = 0; i < 100; ++i) ASSERT_TRUE(c->Add("counter", 1).ok());
    });
  }
  for (auto& t : threads) t.join();
  auto v = Client()->Add("counter", 0);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 400);
  auto c = Client();
  ASSERT_TRUE(c->Set("text", "abc").ok());
  EXPECT_EQ(c->Add("text", 1).status().code(), absl::StatusCode::kInternal);
}

TEST_F(CollectiveStoreTest, BarrierReleasesEveryoneTogether) {
  std::atomic<int> passed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto c = Client();
      std::this_thread::sleep_for(std::chrono::milliseconds(30 * t));
      ASSERT_TRUE(c->Barrier("b1", 4).ok());
      passed.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(passed.load(), 4);
}

TEST_F(CollectiveStoreTest, BarrierTimeoutSaysHowManyArrived) {
  auto c = Client();
  absl::Status s = c->Barrier("lonely", 3, absl::Milliseconds(200));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(s.message(), HasSubstr("1 of 3 ranks arrived"));
}

TEST_F(CollectiveStoreTest, ClientsAcrossProcesses) {
  const int port = server_->port();
  auto outcomes = testing::RunRanks(3, [&](int rank) -> std::string {
    auto c = TcpStoreClient::Connect("127.0.0.1", port, absl::Seconds(5));
    if (!c.ok()) return "FAIL: " + c.status().ToString();
    if (!(*c)->Set(absl::StrCat("proc/", rank), "x").ok()) return "FAIL: set";
    for (int r = 0; r < 3; ++r) {
      if (!(*c)->Get(absl::StrCat("proc/", r)).ok()) return "FAIL: get";
    }
    return (*c)->Barrier("procs", 3).ok() ? "" : "FAIL: barrier";
  });
  for (auto& o : outcomes) EXPECT_EQ(o.exit_code, 0) << o.output;
}

TEST(CollectiveStoreConnectTest, NoServerFailsWithinTheTimeoutWithAHint) {
  const int port = testing::FreePort();
  const absl::Time start = absl::Now();
  auto c = TcpStoreClient::Connect("127.0.0.1", port, absl::Milliseconds(300));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(c.status().message(), HasSubstr("MASTER_ADDR"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST(CollectiveStoreConnectTest, ServerShutdownFailsAPendingGet) {
  auto server = TcpStoreServer::Start(0);
  ASSERT_TRUE(server.ok());
  auto c = TcpStoreClient::Connect("127.0.0.1", (*server)->port(), absl::Seconds(5));
  ASSERT_TRUE(c.ok());
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server->reset();
  });
  auto v = (*c)->Get("never", true, absl::Seconds(10));
  killer.join();
  EXPECT_FALSE(v.ok());
}

}  // namespace
}  // namespace kubetrain::collective
