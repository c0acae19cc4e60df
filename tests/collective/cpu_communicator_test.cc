// CPU backend: every op x dtype x reduce op on 2, 3 and 4 forked ranks over shared memory and
// over the TCP ring (uneven sizes, zero-size, several pipeline chunks), plus peer failure.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/collective/communicator.h"
#include "tests/collective/rank_harness.h"

namespace kubetrain::collective {
namespace {

using testing::CheckAllOps;
using testing::CheckOptions;
using testing::FreePort;
using ::testing::HasSubstr;
using testing::RankOutcome;
using testing::RunOptions;
using testing::RunRanks;

CommunicatorOptions Options(int rank, int n, int port, CpuTransport transport) {
  CommunicatorOptions o;
  o.rank = rank;
  o.world_size = n;
  o.local_rank = rank;
  o.master_port = port;
  o.cpu_transport = transport;
  o.timeout = absl::Seconds(20);
  o.job = "cpu-test";
  // Small slots / chunks so the checks' sizes cross many pipeline steps.
  o.cpu_shm_slot_bytes = 16 * 1024;
  o.cpu_tcp_chunk_bytes = 8 * 1024;
  return o;
}

void ExpectAllOk(const std::vector<RankOutcome>& outcomes) {
  for (size_t r = 0; r < outcomes.size(); ++r) {
    EXPECT_EQ(outcomes[r].exit_code, 0)
        << "rank " << r << " (signal " << outcomes[r].signal << "): " << outcomes[r].output;
  }
}

struct Param {
  int ranks;
  CpuTransport transport;
};
void PrintTo(const Param& p, std::ostream* os) {
  *os << p.ranks << " ranks over " << (p.transport == CpuTransport::kShm ? "shm" : "tcp");
}

class CollectiveCpuAllOpsTest : public ::testing::TestWithParam<Param> {};

TEST_P(CollectiveCpuAllOpsTest, EveryOpDtypeAndSizeMatchesTheReference) {
  const Param p = GetParam();
  const int port = FreePort();
  ExpectAllOk(RunRanks(p.ranks, [&](int rank) -> std::string {
    auto comm = CreateCommunicator(Backend::kCpu, Options(rank, p.ranks, port, p.transport));
    if (!comm.ok()) return "FAIL: " + comm.status().ToString();
    return CheckAllOps(**comm);
  }));
}

INSTANTIATE_TEST_SUITE_P(
    RanksAndTransports, CollectiveCpuAllOpsTest,
    ::testing::Values(Param{2, CpuTransport::kShm}, Param{3, CpuTransport::kShm},
                      Param{4, CpuTransport::kShm}, Param{2, CpuTransport::kTcp},
                      Param{3, CpuTransport::kTcp}, Param{4, CpuTransport::kTcp}),
    [](const ::testing::TestParamInfo<Param>& info) {
      return absl::StrCat(info.param.ranks, "Ranks",
                          info.param.transport == CpuTransport::kShm ? "Shm" : "Tcp");
    });

// Several simulated nodes on this host (cpu_node_id): shared memory inside each node, the TCP
// ring between node leaders. Node layouts include non-contiguous ranks and a single-rank node.
class CollectiveCpuHierarchicalTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CollectiveCpuHierarchicalTest, EveryOpDtypeAndSizeMatchesTheReference) {
  const std::string layout = GetParam();  // node of each rank, e.g. "aabb"
  const int n = static_cast<int>(layout.size());
  const int port = FreePort();
  ExpectAllOk(RunRanks(n, [&](int rank) -> std::string {
    CommunicatorOptions o = Options(rank, n, port, CpuTransport::kAuto);
    o.cpu_node_id = std::string("node-") + layout[rank];
    auto comm = CreateCommunicator(Backend::kCpu, o);
    if (!comm.ok()) return "FAIL: " + comm.status().ToString();
    return CheckAllOps(**comm);
  }));
}

INSTANTIATE_TEST_SUITE_P(NodeLayouts, CollectiveCpuHierarchicalTest,
                         ::testing::Values("aabb", "aba", "abbab"));

TEST(CollectiveCpuTest, LargeBuffersWithDefaultChunkSizes) {
  for (CpuTransport transport : {CpuTransport::kShm, CpuTransport::kTcp}) {
    const int port = FreePort();
    ExpectAllOk(RunRanks(3, [&](int rank) -> std::string {
      CommunicatorOptions o = Options(rank, 3, port, transport);
      o.cpu_shm_slot_bytes = CommunicatorOptions().cpu_shm_slot_bytes;
      o.cpu_tcp_chunk_bytes = CommunicatorOptions().cpu_tcp_chunk_bytes;
      auto comm = CreateCommunicator(Backend::kCpu, o);
      if (!comm.ok()) return "FAIL: " + comm.status().ToString();
      CheckOptions c;
      c.counts = {(3u << 20) + 7};  // 12 MiB of float32 + change, many slots
      c.types = {DataType::kFloat32};
      c.ops = {ReduceOp::kSum, ReduceOp::kAvg};
      return CheckAllOps(**comm, c);
    }));
  }
}

TEST(CollectiveCpuTest, WorldSizeOneIsLocal) {
  CommunicatorOptions o;
  auto comm = CreateCommunicator(Backend::kCpu, o);
  ASSERT_TRUE(comm.ok()) << comm.status();
  EXPECT_EQ(CheckAllOps(**comm), "");
}

TEST(CollectiveCpuTest, ManyOperationsInFlightCompleteInOrder) {
  const int port = FreePort();
  ExpectAllOk(RunRanks(2, [&](int rank) -> std::string {
    auto comm = CreateCommunicator(Backend::kCpu, Options(rank, 2, port, CpuTransport::kShm));
    if (!comm.ok()) return "FAIL: " + comm.status().ToString();
    std::vector<std::vector<int64_t>> bufs(64, std::vector<int64_t>(1000));
    std::vector<std::shared_ptr<Work>> works;
    for (size_t k = 0; k < bufs.size(); ++k) {
      for (auto& v : bufs[k]) v = static_cast<int64_t>(k) + rank;
      works.push_back((*comm)->AllReduce(bufs[k].data(), 1000, DataType::kInt64, ReduceOp::kSum));
    }
    // The last one done implies all earlier ones are (one stream per communicator).
    absl::Status s = works.back()->Wait(absl::Seconds(20));
    if (!s.ok()) return "FAIL: " + s.ToString();
    for (size_t k = 0; k < bufs.size(); ++k) {
      if (!works[k]->Test()) return absl::StrCat("FAIL: work ", k, " not done after the last");
      if (bufs[k][999] != 2 * static_cast<int64_t>(k) + 1) return "FAIL: wrong value";
    }
    return "";
  }));
}

TEST(CollectiveCpuTest, CreatedFromTheRankEnvironment) {
  const int port = FreePort();
  ExpectAllOk(RunRanks(2, [&](int rank) -> std::string {
    setenv("RANK", absl::StrCat(rank).c_str(), 1);
    setenv("WORLD_SIZE", "2", 1);
    setenv("LOCAL_RANK", absl::StrCat(rank).c_str(), 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    setenv("MASTER_PORT", absl::StrCat(port).c_str(), 1);
    auto comm = CreateCommunicatorFromEnv(Backend::kCpu);
    if (!comm.ok()) return "FAIL: " + comm.status().ToString();
    if ((*comm)->rank() != rank || (*comm)->world_size() != 2) return "FAIL: wrong rank/size";
    float v = static_cast<float>(rank + 1);
    absl::Status s = (*comm)->AllReduce(&v, 1, DataType::kFloat32, ReduceOp::kSum)->Wait();
    if (!s.ok() || v != 3.0f) return "FAIL: allreduce " + s.ToString();
    return "";
  }));
}

TEST(CollectiveCpuTest, MissingRankFailsTheRendezvousNamingIt) {
  CommunicatorOptions o;
  o.world_size = 3;
  o.master_port = FreePort();
  o.timeout = absl::Seconds(1);
  const absl::Time start = absl::Now();
  auto outcomes = RunRanks(2, [&](int rank) -> std::string {  // rank 2 never starts
    CommunicatorOptions mine = o;
    mine.rank = rank;
    auto comm = CreateCommunicator(Backend::kCpu, mine);
    if (comm.ok()) return "FAIL: created without rank 2";
    return comm.status().ToString();
  });
  for (const RankOutcome& out : outcomes) {
    EXPECT_EQ(out.exit_code, 0) << out.output;
    EXPECT_THAT(out.output, HasSubstr("rank 2"));
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(8));
}

TEST(CollectiveCpuTest, BadArgumentsFailWithoutBreakingTheCommunicator) {
  CommunicatorOptions o;
  auto comm = CreateCommunicator(Backend::kCpu, o);
  ASSERT_TRUE(comm.ok());
  EXPECT_EQ((*comm)->Broadcast(nullptr, 0, DataType::kFloat32, 3)->Wait().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      (*comm)->AllReduce(nullptr, nullptr, 4, DataType::kFloat32, ReduceOp::kSum)->Wait().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*comm)->health().ok());
  o.rank = 2;
  o.world_size = 2;
  EXPECT_EQ(CreateCommunicator(Backend::kCpu, o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- peer failure -----------------------------------------------------------------------------

// Survivors loop on 8 MiB allreduces until one fails and report "<unix micros>|<status>".
std::string LoopUntilFailure(int rank, int n, int port, CpuTransport transport,
                             absl::Duration timeout, bool hang_instead, const std::string& layout) {
  CommunicatorOptions o = Options(rank, n, port, transport);
  if (!layout.empty()) o.cpu_node_id = std::string("node-") + layout[rank];
  o.cpu_shm_slot_bytes = CommunicatorOptions().cpu_shm_slot_bytes;
  o.timeout = timeout;
  auto comm = CreateCommunicator(Backend::kCpu, o);
  if (!comm.ok()) return "FAIL: " + comm.status().ToString();
  // Three operations in flight per step (two 4 MiB allreduces and a barrier).
  std::vector<float> a(1 << 20, 1.0f), b(1 << 20, 2.0f);
  for (int i = 0; i < 100000; ++i) {
    if (hang_instead && rank == 1 && i == 3) {
      sleep(600);  // alive, but never joins the next collective
    }
    std::vector<std::shared_ptr<Work>> pending = {
        (*comm)->AllReduce(a.data(), a.size(), DataType::kFloat32, ReduceOp::kAvg),
        (*comm)->AllReduce(b.data(), b.size(), DataType::kFloat32, ReduceOp::kMax),
        (*comm)->Barrier()};
    for (size_t w = 0; w < pending.size(); ++w) {
      absl::Status s = pending[w]->Wait();
      if (s.ok()) continue;
      // Every operation still pending behind the failed one fails too ...
      for (size_t later = w + 1; later < pending.size(); ++later) {
        if (pending[later]->Wait(absl::Seconds(5)).ok()) {
          return absl::StrCat("FAIL: pending operation ", later, " succeeded after ", s.ToString());
        }
      }
      // ... and later calls fail at once with the same sticky status.
      absl::Status again = (*comm)->Barrier()->Wait(absl::Seconds(1));
      return absl::StrCat(absl::ToUnixMicros(absl::Now()), "|", s.ToString(), "|",
                          again.ToString());
    }
  }
  return "FAIL: never failed";
}

struct FailureParam {
  CpuTransport transport;
  bool hang;           // peer alive but stuck (timeout) instead of killed
  std::string layout;  // simulated nodes ("" = one node); the victim is always rank 1
};
void PrintTo(const FailureParam& p, std::ostream* os) {
  *os << (p.transport == CpuTransport::kShm ? "shm"
          : p.layout.empty()                ? "tcp"
                                            : "shm+tcp")
      << (p.hang ? ", stuck" : ", killed") << " " << p.layout;
}

class CollectiveCpuPeerFailureTest : public ::testing::TestWithParam<FailureParam> {};

TEST_P(CollectiveCpuPeerFailureTest, SurvivorsFailNamingThePeerWithinTheTimeout) {
  const FailureParam p = GetParam();
  const int port = FreePort();
  const absl::Duration timeout = absl::Seconds(3);
  absl::Time killed_at = absl::InfinitePast();
  RunOptions run;
  run.timeout = absl::Seconds(60);
  if (!p.hang) {
    run.kill_rank = 1;
    run.kill_after = absl::Milliseconds(1500);  // well into the allreduce loop
    run.killed_at = &killed_at;
  } else {
    run.kill_rank = 1;  // clean up the sleeper once the others are done
    run.kill_after = absl::Seconds(9);
  }
  const absl::Time start = absl::Now();
  const int n = p.layout.empty() ? 3 : static_cast<int>(p.layout.size());
  std::vector<RankOutcome> outcomes = RunRanks(
      n,
      [&](int rank) {
        return LoopUntilFailure(rank, n, port, p.transport, timeout, p.hang, p.layout);
      },
      run);
  EXPECT_EQ(outcomes[1].signal, SIGKILL);
  for (int r = 0; r < n; ++r) {
    if (r == 1) continue;
    const RankOutcome& o = outcomes[r];
    ASSERT_EQ(o.exit_code, 0) << "rank " << r << ": " << o.output;
    std::vector<std::string> parts = absl::StrSplit(o.output, '|');
    ASSERT_EQ(parts.size(), 3u) << o.output;
    int64_t failed_us = 0;
    ASSERT_TRUE(absl::SimpleAtoi(parts[0], &failed_us));
    const absl::Time failed_at = absl::FromUnixMicros(failed_us);
    EXPECT_THAT(parts[1], HasSubstr("rank 1")) << "rank " << r;
    EXPECT_THAT(parts[2], HasSubstr("broken")) << "rank " << r;
    if (!p.hang) {
      // Dead peer: noticed well within the timeout.
      EXPECT_LT(failed_at - killed_at, timeout + absl::Seconds(1)) << parts[1];
    } else {
      // Stuck peer: the deadline fires; allow rank 0 the time for its neighbour to give up.
      EXPECT_LT(failed_at - start, absl::Seconds(10)) << parts[1];
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Transports, CollectiveCpuPeerFailureTest,
                         ::testing::Values(FailureParam{CpuTransport::kShm, false, ""},
                                           FailureParam{CpuTransport::kTcp, false, ""},
                                           FailureParam{CpuTransport::kAuto, false, "abab"},
                                           FailureParam{CpuTransport::kShm, true, ""},
                                           FailureParam{CpuTransport::kTcp, true, ""}),
                         [](const ::testing::TestParamInfo<FailureParam>& info) {
                           const char* t = info.param.transport == CpuTransport::kShm ? "Shm"
                                           : info.param.transport == CpuTransport::kTcp
                                               ? "Tcp"
                                               : "Hierarchical";
                           return absl::StrCat(t, info.param.hang ? "StuckPeer" : "KilledPeer");
                         });

}  // namespace
}  // namespace kubetrain::collective
