// The agent's structured output (`kubetrain-worker --output json`, launch.proto): every stderr line
// of a real kubetrain-worker is one v1::LogLine in protobuf's JSON mapping, and its exit code is a
// v1::AgentExit. This is what the Kubernetes backend reads back from a pod's log.
#include "kubetrain/agent/output.h"

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "kubetrain/v1/launch.pb.h"
#include "kubetrain/v1/log.pb.h"
#include "tests/agent/test_util.h"

namespace kubetrain::agent {
namespace {

using testing::TempDir;

struct WorkerRun {
  int exit_code = -1;
  std::vector<std::string> lines;
};

// Runs kubetrain-worker on a one-instance pytorch plan of two ranks running `command`.
WorkerRun RunWorker(const TempDir& dir, const std::string& command, const std::string& output) {
  std::ofstream(dir / "plan.txt") << absl::StrCat(
      "job { name: \"out\" command: \"", command,
      "\" resources { instance_count: 1 } distribution { type: TYPE_PYTORCH "
      "process_count_per_instance: 2 } } instance_hosts: \"127.0.0.1\" master_port: 29573 "
      "grace_period_ms: 1000 job_dir: \"",
      dir / "job", "\" checkpoint_dir: \"", dir / "ckpt",
      "\" placement { instances { node: \"local\" cpu_millicores: 2000 } }");
  WorkerRun run;
  FILE* p = popen(absl::StrCat(KUBETRAIN_WORKER_BIN, " --no-workspace --output ", output,
                               " --plan-text ", dir / "plan.txt", " 2>&1 >/dev/null")
                      .c_str(),
                  "r");
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) text.append(buf, n);
  int status = pclose(p);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  for (absl::string_view l : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    run.lines.emplace_back(l);
  }
  return run;
}

TEST(AgentOutputTest, JsonIsOneLogLinePerLine) {
  TempDir dir;
  WorkerRun run = RunWorker(dir, "echo hello from $RANK; echo warned >&2", "json");
  EXPECT_EQ(run.exit_code, v1::AGENT_EXIT_OK);
  std::map<int, std::vector<std::string>> by_rank;
  int agent_lines = 0;
  for (const std::string& l : run.lines) {
    v1::LogLine line;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(l, &line).ok()) << l;
    if (line.stream() == v1::LogLine::STREAM_AGENT) {
      ++agent_lines;
      EXPECT_EQ(line.rank(), -1) << l;
    } else {
      by_rank[line.rank()].push_back(line.text());
    }
    EXPECT_GT(line.timestamp_ns(), 0) << l;
  }
  EXPECT_GT(agent_lines, 0);
  EXPECT_THAT(by_rank[0], ::testing::UnorderedElementsAre("hello from 0", "warned"));
  EXPECT_THAT(by_rank[1], ::testing::UnorderedElementsAre("hello from 1", "warned"));
}

TEST(AgentOutputTest, ExitCodesAreAgentExit) {
  TempDir dir;
  WorkerRun run = RunWorker(dir, "exit $RANK", "json");
  EXPECT_EQ(run.exit_code, v1::AGENT_EXIT_RANK_FAILED);
  bool named = false;
  for (const std::string& l : run.lines) {
    v1::LogLine line;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(l, &line).ok()) << l;
    if (line.stream() == v1::LogLine::STREAM_AGENT &&
        line.text().find("rank 1") != std::string::npos) {
      named = true;
    }
  }
  EXPECT_TRUE(named) << "the agent names the failing rank";
}

TEST(AgentOutputTest, TextStaysTheDefaultAndABadFormatIsAnError) {
  TempDir dir;
  WorkerRun text = RunWorker(dir, "echo hi", "text");
  EXPECT_EQ(text.exit_code, v1::AGENT_EXIT_OK);
  EXPECT_THAT(text.lines, ::testing::Contains("[rank 0] hi"));
  WorkerRun bad = RunWorker(dir, "echo hi", "xml");
  EXPECT_EQ(bad.exit_code, v1::AGENT_EXIT_INVALID_PLAN);
  EXPECT_THAT(absl::StrJoin(bad.lines, "\n"), ::testing::HasSubstr("--output 'xml'"));
}

}  // namespace
}  // namespace kubetrain::agent
