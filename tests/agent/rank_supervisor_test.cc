// RankSupervisor tests with real processes: fail fast, teardown time, no survivors, cancel, logs.
#include "kubetrain/agent/ranks/rank_supervisor.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/agent/ranks/cancel.h"
#include "kubetrain/agent/ranks/reporter.h"
#include "kubetrain/agent/sink.h"
#include "tests/agent/test_util.h"

namespace kubetrain::agent {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using Outcome = RankSupervisorResult::Outcome;
using testing::PidAlive;

RankProcess Bash(int rank, const std::string& command) {
  RankProcess p;
  p.rank = rank;
  p.local_rank = rank;
  p.spawn.argv = {"/bin/bash", "-c", command};
  p.spawn.env["MY_RANK"] = absl::StrCat(rank);
  return p;
}

// All processes in process group `pgid`, from /proc.
std::vector<pid_t> GroupMembers(pid_t pgid) {
  std::vector<pid_t> members;
  for (pid_t pid : LiveDescendants()) {
    if (getpgid(pid) == pgid) members.push_back(pid);
  }
  return members;
}

class RankSupervisorTest : public ::testing::Test {
 protected:
  RankSupervisorTest() {
    ReporterOptions ro;
    ro.job = "job1";
    ro.attempt = 0;
    ro.instance = 0;
    ro.echo_to_stderr = false;
    ro.flush_interval = absl::Milliseconds(20);
    reporter_ = std::make_unique<Reporter>(ro, &sink_);
  }

  RankSupervisorResult RunAll(std::vector<RankProcess> procs, RankSupervisorOptions options = {}) {
    RankSupervisor supervisor(std::move(options), reporter_.get(), &cancel_);
    RankSupervisorResult result = supervisor.Run(std::move(procs));
    EXPECT_TRUE(reporter_->Flush().ok());
    return result;
  }

  // The pids of the ranks, once the supervisor has reported them.
  std::map<int, pid_t> WaitForPids(size_t count) {
    for (int i = 0; i < 500; ++i) {
      std::vector<v1::InstanceStatus> statuses = sink_.statuses();
      if (!statuses.empty() && statuses.back().ranks_size() == static_cast<int>(count)) {
        std::map<int, pid_t> pids;
        for (const v1::RankStatus& r : statuses.back().ranks()) pids[r.rank()] = r.pid();
        return pids;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "ranks never reported";
    return {};
  }

  std::vector<std::string> LinesOf(int rank, v1::LogLine::Stream stream) {
    std::vector<std::string> out;
    for (const v1::LogLine& l : sink_.lines()) {
      if (l.rank() == rank && l.stream() == stream) out.push_back(l.text());
    }
    return out;
  }

  void ExpectNoSurvivors(const std::vector<pid_t>& pids) {
    for (pid_t pid : pids) EXPECT_FALSE(PidAlive(pid)) << "pid " << pid << " survived";
    EXPECT_THAT(LiveDescendants(), ::testing::IsEmpty());
  }

  MemorySink sink_;
  CancelToken cancel_;
  std::unique_ptr<Reporter> reporter_;
};

TEST_F(RankSupervisorTest, AllRanksSucceed) {
  std::vector<RankProcess> procs;
  for (int r = 0; r < 3; ++r) procs.push_back(Bash(r, "echo hello from $MY_RANK; echo warn >&2"));
  RankSupervisorResult result = RunAll(std::move(procs));
  EXPECT_EQ(result.outcome, Outcome::kSucceeded) << result.message;
  EXPECT_EQ(result.status.state(), v1::JOB_STATE_COMPLETED);
  ASSERT_EQ(result.status.ranks_size(), 3);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(result.status.ranks(r).state(), v1::JOB_STATE_COMPLETED);
    EXPECT_EQ(result.status.ranks(r).exit_code(), 0);
    EXPECT_GT(result.status.ranks(r).pid(), 0);
    EXPECT_THAT(LinesOf(r, v1::LogLine::STREAM_STDOUT),
                ::testing::ElementsAre(absl::StrCat("hello from ", r)));
    EXPECT_THAT(LinesOf(r, v1::LogLine::STREAM_STDERR), ::testing::ElementsAre("warn"));
  }
  EXPECT_THAT(LiveDescendants(), ::testing::IsEmpty());
}

TEST_F(RankSupervisorTest, NonZeroExitStopsTheOtherRanks) {
  std::vector<RankProcess> procs = {
      Bash(0, "sleep 30"),
      Bash(1, "echo line one; echo line two >&2; sleep 0.3; exit 3"),
      Bash(2, "sleep 30 & sleep 30; wait"),
  };
  auto start = absl::Now();
  RankSupervisorResult result = RunAll(std::move(procs));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(result.outcome, Outcome::kRankFailed);
  EXPECT_EQ(result.failed_rank, 1);
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.signal, 0);
  EXPECT_THAT(result.message, HasSubstr("rank 1 exited with code 3"));
  EXPECT_THAT(result.last_lines, ::testing::ElementsAre("line one", "line two"));
  EXPECT_EQ(result.status.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(result.status.ranks(1).state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(result.status.ranks(1).exit_code(), 3);
  EXPECT_EQ(result.status.ranks(0).state(), v1::JOB_STATE_CANCELED);
  EXPECT_EQ(result.status.ranks(0).signal(), SIGTERM);
  EXPECT_EQ(result.status.ranks(2).state(), v1::JOB_STATE_CANCELED);
  std::vector<pid_t> pids;
  for (const auto& r : result.status.ranks()) pids.push_back(r.pid());
  ExpectNoSurvivors(pids);
}

TEST_F(RankSupervisorTest, FailureReportKeepsTheLastTwentyLinesUpToTheEnd) {
  RankSupervisorResult result = RunAll({
      Bash(0, "sleep 30"),
      Bash(1, "for i in $(seq 1 100); do echo line $i; done; printf 'fatal: no newline'; exit 4"),
  });
  EXPECT_EQ(result.failed_rank, 1);
  EXPECT_EQ(result.exit_code, 4);
  ASSERT_EQ(result.last_lines.size(), 20u);
  EXPECT_EQ(result.last_lines.front(), "line 82");
  EXPECT_EQ(result.last_lines.back(), "fatal: no newline");
}

TEST_F(RankSupervisorTest, SigkilledRankTearsTheInstanceDownInUnderTwoSeconds) {
  std::vector<RankProcess> procs = {
      Bash(0, "sleep 30 & sleep 30 & wait"),  // a rank with children of its own
      Bash(1, "echo ready; sleep 30; echo never"),
      Bash(2, "python3 -c 'import time; time.sleep(30)'"),
  };
  std::vector<pid_t> all_pids;
  absl::Time killed_at;
  std::thread killer([&] {
    std::map<int, pid_t> pids = WaitForPids(3);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let the children start
    for (const auto& [rank, pid] : pids) {
      for (pid_t member : GroupMembers(pid)) all_pids.push_back(member);
    }
    killed_at = absl::Now();
    kill(pids[1], SIGKILL);
  });
  RankSupervisorResult result = RunAll(std::move(procs));
  const absl::Duration all_gone = absl::Now() - killed_at;
  killer.join();
  std::printf("rank SIGKILL -> all ranks gone: %.1f ms (teardown %.1f ms)\n",
              absl::ToDoubleMilliseconds(all_gone), absl::ToDoubleMilliseconds(result.teardown));
  EXPECT_LT(all_gone, absl::Seconds(2));
  EXPECT_EQ(result.outcome, Outcome::kRankFailed);
  EXPECT_EQ(result.failed_rank, 1);
  EXPECT_EQ(result.signal, SIGKILL);
  EXPECT_THAT(result.message, HasSubstr("rank 1 was killed by SIGKILL"));
  EXPECT_THAT(result.last_lines, ::testing::ElementsAre("ready"));
  EXPECT_GE(all_pids.size(), 5u);  // 3 leaders + rank 0's two sleeps
  ExpectNoSurvivors(all_pids);
  // `ps` agrees: nothing of ours is left.
  EXPECT_EQ(testing::ShellOutput(
                absl::StrCat("ps -o pid=,stat=,args= -p ", absl::StrJoin(all_pids, ","))),
            "");
}

TEST_F(RankSupervisorTest, RankIgnoringSigtermIsKilledAfterTheGracePeriod) {
  RankSupervisorOptions options;
  options.grace_period = absl::Milliseconds(300);
  std::vector<RankProcess> procs = {
      Bash(0, "trap '' TERM; echo trapped; while true; do sleep 0.05; done"),
      Bash(1, "sleep 0.3; exit 1"),
  };
  auto start = absl::Now();
  RankSupervisorResult result = RunAll(std::move(procs), options);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(result.failed_rank, 1);
  EXPECT_EQ(result.status.ranks(0).signal(), SIGKILL);
  EXPECT_GE(result.teardown, absl::Milliseconds(250));
  EXPECT_THAT(LiveDescendants(), ::testing::IsEmpty());
}

TEST_F(RankSupervisorTest, CancelStopsEveryRank) {
  std::vector<RankProcess> procs = {Bash(0, "sleep 30"), Bash(1, "sleep 30")};
  std::thread canceller([&] {
    WaitForPids(2);
    cancel_.Request(SIGTERM);
  });
  auto start = absl::Now();
  RankSupervisorResult result = RunAll(std::move(procs));
  canceller.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(result.outcome, Outcome::kCanceled);
  EXPECT_EQ(result.signal, SIGTERM);
  EXPECT_EQ(result.status.state(), v1::JOB_STATE_CANCELED);
  for (const auto& r : result.status.ranks()) {
    EXPECT_EQ(r.state(), v1::JOB_STATE_CANCELED);
    EXPECT_FALSE(PidAlive(r.pid()));
  }
}

TEST_F(RankSupervisorTest, TimeoutStopsEveryRank) {
  RankSupervisorOptions options;
  options.timeout = absl::Milliseconds(300);
  RankSupervisorResult result = RunAll({Bash(0, "sleep 30")}, options);
  EXPECT_EQ(result.outcome, Outcome::kTimedOut);
  EXPECT_THAT(result.message, HasSubstr("timed out"));
  EXPECT_THAT(LiveDescendants(), ::testing::IsEmpty());
}

TEST_F(RankSupervisorTest, ProcessThatLeftItsGroupIsKilledToo) {
  RankSupervisorResult result = RunAll({Bash(0, "setsid sleep 30 & echo $!; sleep 0.2")});
  EXPECT_EQ(result.outcome, Outcome::kSucceeded);
  std::vector<std::string> out = LinesOf(0, v1::LogLine::STREAM_STDOUT);
  ASSERT_EQ(out.size(), 1u);
  int escaped = 0;
  ASSERT_TRUE(absl::SimpleAtoi(out[0], &escaped));
  EXPECT_FALSE(PidAlive(escaped));
  EXPECT_THAT(LiveDescendants(), ::testing::IsEmpty());
}

TEST_F(RankSupervisorTest, CapturesManyLinesInOrderWithTheirRanks) {
  std::vector<RankProcess> procs = {
      Bash(0, "for i in $(seq 1 3000); do echo out-$i; done; printf 'no newline'"),
      Bash(1, "for i in $(seq 1 3000); do echo err-$i >&2; done"),
  };
  RankSupervisorResult result = RunAll(std::move(procs));
  ASSERT_EQ(result.outcome, Outcome::kSucceeded);
  std::vector<std::string> out = LinesOf(0, v1::LogLine::STREAM_STDOUT);
  std::vector<std::string> err = LinesOf(1, v1::LogLine::STREAM_STDERR);
  ASSERT_EQ(out.size(), 3001u);
  ASSERT_EQ(err.size(), 3000u);
  for (int i = 0; i < 3000; ++i) {
    ASSERT_EQ(out[i], absl::StrCat("out-", i + 1));
    ASSERT_EQ(err[i], absl::StrCat("err-", i + 1));
  }
  EXPECT_EQ(out.back(), "no newline");
  // Sequence numbers are unique and increasing; every line has a timestamp and the job fields.
  std::vector<v1::LogLine> lines = sink_.lines();
  for (size_t i = 1; i < lines.size(); ++i) {
    ASSERT_EQ(lines[i].sequence(), lines[i - 1].sequence() + 1);
  }
  for (const v1::LogLine& l : lines) {
    EXPECT_EQ(l.job(), "job1");
    EXPECT_GT(l.timestamp_ns(), 0);
  }
  // Batched: far fewer sink calls than lines.
  EXPECT_LT(sink_.append_calls(), 200);
}

TEST_F(RankSupervisorTest, AgentLinesAreRankMinusOne) {
  RunAll({Bash(0, "exit 0")});
  std::vector<std::string> agent = LinesOf(-1, v1::LogLine::STREAM_AGENT);
  EXPECT_THAT(agent, Contains(HasSubstr("rank 0 started")));
  EXPECT_THAT(agent, Contains(HasSubstr("rank 0 (pid")));
}

TEST_F(RankSupervisorTest, StartFailureNamesTheDirectory) {
  RankProcess bad = Bash(1, "true");
  bad.spawn.cwd = "/nonexistent/kubetrain";
  RankSupervisorResult result = RunAll({Bash(0, "sleep 30"), bad});
  EXPECT_EQ(result.outcome, Outcome::kStartFailed);
  EXPECT_EQ(result.failed_rank, 1);
  EXPECT_THAT(result.message, HasSubstr("/nonexistent/kubetrain"));
  EXPECT_THAT(LiveDescendants(), ::testing::IsEmpty());
}

TEST_F(RankSupervisorTest, CpuAffinityFromThePlacement) {
  RankProcess p = Bash(0, "grep Cpus_allowed_list /proc/self/status");
  p.spawn.cpu_ids = {0};
  RankSupervisorResult result = RunAll({p});
  ASSERT_EQ(result.outcome, Outcome::kSucceeded);
  EXPECT_THAT(LinesOf(0, v1::LogLine::STREAM_STDOUT),
              ::testing::ElementsAre(::testing::MatchesRegex("Cpus_allowed_list:\\s*0")));
}

TEST_F(RankSupervisorTest, EachRankHasItsOwnProcessGroup) {
  RankSupervisorResult result =
      RunAll({Bash(0, "ps -o pgid= -p $$"), Bash(1, "ps -o pgid= -p $$")});
  ASSERT_EQ(result.outcome, Outcome::kSucceeded);
  for (int r = 0; r < 2; ++r) {
    std::vector<std::string> out = LinesOf(r, v1::LogLine::STREAM_STDOUT);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(std::string(absl::StripAsciiWhitespace(out[0])),
              absl::StrCat(result.status.ranks(r).pid()));
  }
}

}  // namespace
}  // namespace kubetrain::agent
