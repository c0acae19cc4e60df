// The Workspace contract, run against both implementations (tests/storage/backends.h): the
// embedded workspace (storage/src/embedded_workspace.cc) on real SQLite files, and the gRPC client
// of a WorkspaceServer serving one. A few cases are about the embedded files themselves.
#include "kubetrain/storage/workspace.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/storage/backends.h"

namespace kubetrain::storage {
namespace {

using testing::Backend;
using testing::BackendHarness;
using ::testing::HasSubstr;

class WorkspaceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kubetrain-ws-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/nested/ws";
    harness_ = std::make_unique<BackendHarness>(GetParam(), dir_);
  }
  void TearDown() override {
    harness_.reset();
    std::filesystem::remove_all(root_);
  }

  bool embedded() const { return GetParam() == Backend::kEmbedded; }

  std::unique_ptr<Workspace> Open() {
    auto ws = harness_->Open();
    EXPECT_TRUE(ws.ok()) << ws.status();
    return ws.ok() ? std::move(*ws) : nullptr;
  }

  // Runs body(i, workspace) for i in [0, n) at once, each with a workspace of its own: embedded,
  // in forked processes (each opening the directory); gRPC, in threads (each its own client and
  // connection). True when every body returned 0.
  bool RunConcurrently(int n, const std::function<int(int, Workspace&)>& body) {
    if (embedded()) {
      std::vector<pid_t> children;
      for (int p = 0; p < n; ++p) {
        pid_t pid = fork();
        if (pid < 0) return false;
        if (pid == 0) {
          auto ws = OpenEmbeddedWorkspace(dir_);
          if (!ws.ok()) _exit(2);
          _exit(body(p, **ws));
        }
        children.push_back(pid);
      }
      bool ok = true;
      for (pid_t pid : children) {
        int status = 0;
        ok = waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 && ok;
      }
      return ok;
    }
    std::vector<std::thread> threads;
    std::vector<int> codes(n, -1);
    for (int p = 0; p < n; ++p) {
      threads.emplace_back([&, p] {
        auto ws = harness_->Open();
        codes[p] = ws.ok() ? body(p, **ws) : 2;
      });
    }
    for (auto& t : threads) t.join();
    for (int c : codes) {
      if (c != 0) return false;
    }
    return true;
  }

  static v1::JobRecord Job(const std::string& name) {
    v1::JobRecord r;
    r.mutable_spec()->set_name(name);
    r.mutable_spec()->set_compute("local");
    r.mutable_spec()->set_experiment_name("exp");
    r.mutable_status()->set_job(name);
    r.mutable_status()->set_state(v1::JOB_STATE_QUEUED);
    return r;
  }

  static v1::LogLine Line(const std::string& job, int attempt, int instance, int rank, int64_t seq,
                          int64_t ts, const std::string& text) {
    v1::LogLine l;
    l.set_job(job);
    l.set_attempt(attempt);
    l.set_instance(instance);
    l.set_rank(rank);
    l.set_stream(rank < 0 ? v1::LogLine::STREAM_AGENT : v1::LogLine::STREAM_STDOUT);
    l.set_sequence(seq);
    l.set_timestamp_ns(ts);
    l.set_text(text);
    return l;
  }

  std::string root_;
  std::string dir_;
  std::unique_ptr<BackendHarness> harness_;
};

INSTANTIATE_TEST_SUITE_P(Backends, WorkspaceTest,
                         ::testing::Values(Backend::kEmbedded, Backend::kGrpc),
                         testing::BackendName);

TEST_P(WorkspaceTest, CreatesDirectoryWithMode0700AndWalDatabase) {
  auto ws = Open();
  ASSERT_NE(ws, nullptr);
  struct stat st;
  ASSERT_EQ(stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700);
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/workspace.db"));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/workspace.db-wal"));
}

TEST_P(WorkspaceTest, OpenFailsWhenPathIsAFile) {
  if (!embedded()) GTEST_SKIP() << "about the embedded workspace's files";
  std::string file = root_ + "/file";
  FILE* f = fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  auto ws = OpenEmbeddedWorkspace(file);
  ASSERT_FALSE(ws.ok());
  EXPECT_THAT(ws.status().message(), HasSubstr(file));
}

TEST_P(WorkspaceTest, CorruptDatabaseIsDataLossNamingThePath) {
  if (!embedded()) GTEST_SKIP() << "about the embedded workspace's files";
  std::filesystem::create_directories(dir_);
  FILE* f = fopen((dir_ + "/workspace.db").c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("this is not an sqlite database, not at all, really not.........................", f);
  fclose(f);
  auto ws = OpenEmbeddedWorkspace(dir_);
  ASSERT_FALSE(ws.ok());
  EXPECT_EQ(ws.status().code(), absl::StatusCode::kDataLoss) << ws.status();
  EXPECT_THAT(ws.status().message(), HasSubstr(dir_ + "/workspace.db"));
}

TEST_P(WorkspaceTest, StoresOnlyWhatWasPut) {
  auto ws = Open();
  ASSERT_NE(ws, nullptr);
  EXPECT_EQ(ws->GetCompute("local").status().code(), absl::StatusCode::kNotFound);
  auto list = ws->ListComputes();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
}

TEST_P(WorkspaceTest, ComputeCrudAndStoredLocalOverridesDefault) {
  auto ws = Open();
  ASSERT_NE(ws, nullptr);
  EXPECT_EQ(ws->GetCompute("gpu-cluster").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(ws->GetCompute("gpu-cluster").status().message()),
              HasSubstr("gpu-cluster"));

  v1::ComputeTarget k8s;
  k8s.set_name("gpu-cluster");
  k8s.mutable_kubernetes()->set_namespace_("ml");
  k8s.add_nodes()->set_name("n1");
  ASSERT_TRUE(ws->PutCompute(k8s).ok());
  auto got = ws->GetCompute("gpu-cluster");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->kubernetes().namespace_(), "ml");

  k8s.mutable_kubernetes()->set_namespace_("ml2");  // replace
  ASSERT_TRUE(ws->PutCompute(k8s).ok());
  EXPECT_EQ(ws->GetCompute("gpu-cluster")->kubernetes().namespace_(), "ml2");

  v1::ComputeTarget local;
  local.set_name("local");
  local.mutable_local();
  auto* n = local.add_nodes();
  n->set_name("slice-a");
  n->set_cpu_millicores(500);
  ASSERT_TRUE(ws->PutCompute(local).ok());
  EXPECT_EQ(ws->GetCompute("local")->nodes(0).name(), "slice-a");

  auto list = ws->ListComputes();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name(), "gpu-cluster");
  EXPECT_EQ((*list)[1].name(), "local");
  EXPECT_EQ((*list)[1].nodes(0).name(), "slice-a");

  v1::ComputeTarget unnamed;
  EXPECT_EQ(ws->PutCompute(unnamed).code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(WorkspaceTest, JobCrudAssignsSubmitSequenceAndRejectsDuplicates) {
  auto ws = Open();
  ASSERT_NE(ws, nullptr);
  auto a = ws->CreateJob(Job("job-a"));
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = ws->CreateJob(Job("job-b"));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_GT(a->submit_sequence(), 0);
  EXPECT_GT(b->submit_sequence(), a->submit_sequence());

  auto dup = ws->CreateJob(Job("job-a"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(dup.status().message(), HasSubstr("job-a"));

  auto got = ws->GetJob("job-b");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->submit_sequence(), b->submit_sequence());
  EXPECT_EQ(got->spec().experiment_name(), "exp");
  EXPECT_EQ(ws->GetJob("nope").status().code(), absl::StatusCode::kNotFound);

  auto list = ws->ListJobs();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].spec().name(), "job-a");
  EXPECT_EQ((*list)[1].spec().name(), "job-b");

  v1::JobRecord unnamed;
  EXPECT_EQ(ws->CreateJob(unnamed).status().code(), absl::StatusCode::kInvalidArgument);

  // The data survives reopening.
  ws.reset();
  harness_->Restart();
  ws = Open();
  ASSERT_NE(ws, nullptr);
  EXPECT_EQ(ws->ListJobs()->size(), 2u);
}

TEST_P(WorkspaceTest, UpdateJobSeesAllJobsAndWritesBack) {
  auto ws = Open();
  ASSERT_NE(ws, nullptr);
  ASSERT_TRUE(ws->CreateJob(Job("first")).ok());
  ASSERT_TRUE(ws->CreateJob(Job("second")).ok());
  auto updated =
      ws->UpdateJob("second", [](const std::vector<v1::JobRecord>& all, v1::JobRecord& job) {
        EXPECT_EQ(all.size(), 2u);
        EXPECT_EQ(all[0].spec().name(), "first");
        job.mutable_status()->set_state(v1::JOB_STATE_RUNNING);
        job.set_waiting_for("");
        return absl::OkStatus();
      });
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->status().state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(ws->GetJob("second")->status().state(), v1::JOB_STATE_RUNNING);

  // An error from the mutation writes nothing and is returned as is.
  auto failed = ws->UpdateJob("second", [](const auto&, v1::JobRecord& job) {
    job.mutable_status()->set_state(v1::JOB_STATE_FAILED);
    return absl::FailedPreconditionError("not now");
  });
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(failed.status().message(), "not now");
  EXPECT_EQ(ws->GetJob("second")->status().state(), v1::JOB_STATE_RUNNING);

  EXPECT_EQ(
      ws->UpdateJob("missing", [](const auto&, auto&) { return absl::OkStatus(); }).status().code(),
      absl::StatusCode::kNotFound);
}

// Embedded: two processes; gRPC: two clients, each with its own connection (UpdateJob is then an
// optimistic read-mutate-commit that must retry when the other got in between).
TEST_P(WorkspaceTest, UpdateJobIsAtomicAcrossProcesses) {
  {
    auto ws = Open();
    ASSERT_NE(ws, nullptr);
    ASSERT_TRUE(ws->CreateJob(Job("counter")).ok());
  }
  constexpr int kProcesses = 2;
  constexpr int kIncrements = 200;
  EXPECT_TRUE(RunConcurrently(kProcesses, [](int, Workspace& ws) {
    for (int i = 0; i < kIncrements; ++i) {
      auto r = ws.UpdateJob("counter", [](const auto&, v1::JobRecord& job) {
        job.set_supervisor_pid(job.supervisor_pid() + 1);  // the counter
        return absl::OkStatus();
      });
      if (!r.ok()) return 3;
    }
    return 0;
  }));
  auto ws = Open();
  ASSERT_NE(ws, nullptr);
  EXPECT_EQ(ws->GetJob("counter")->supervisor_pid(), kProcesses * kIncrements);
}

TEST_P(WorkspaceTest, SeveralProcessesOpenAFreshWorkspaceAtOnce) {
  constexpr int kProcesses = 4;
  EXPECT_TRUE(RunConcurrently(kProcesses, [](int p, Workspace& ws) {
    for (int i = 0; i < 20; ++i) {
      if (!ws.CreateJob(Job("p" + std::to_string(p) + "-" + std::to_string(i))).ok()) return 3;
      if (!ws.AppendLogs({Line("shared", 0, p, p, i, i, "x")}).ok()) return 4;
    }
    return 0;
  }));
  auto ws = Open();
  ASSERT_NE(ws, nullptr);
  auto jobs = ws->ListJobs();
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->size(), 80u);
  for (size_t i = 1; i < jobs->size(); ++i) {
    EXPECT_GT((*jobs)[i].submit_sequence(), (*jobs)[i - 1].submit_sequence());
  }
  EXPECT_EQ(ws->ReadLogs({.job = "shared"})->lines.size(), 80u);
}

TEST_P(WorkspaceTest, UpdateInstanceStatusReplacesOneInstance) {
  auto ws = Open();
  ASSERT_NE(ws, nullptr);
  ASSERT_TRUE(ws->CreateJob(Job("j")).ok());
  v1::InstanceStatus i1;
  i1.set_index(1);
  i1.set_state(v1::JOB_STATE_RUNNING);
  v1::InstanceStatus i0;
  i0.set_index(0);
  i0.set_state(v1::JOB_STATE_STARTING);
  ASSERT_TRUE(ws->UpdateInstanceStatus("j", i1).ok());
  ASSERT_TRUE(ws->UpdateInstanceStatus("j", i0).ok());
  i0.set_state(v1::JOB_STATE_COMPLETED);
  ASSERT_TRUE(ws->UpdateInstanceStatus("j", i0).ok());
  auto job = ws->GetJob("j");
  ASSERT_TRUE(job.ok());
  ASSERT_EQ(job->status().instances_size(), 2);
  EXPECT_EQ(job->status().instances(0).index(), 0);
  EXPECT_EQ(job->status().instances(0).state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(job->status().instances(1).state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(ws->UpdateInstanceStatus("nope", i0).code(), absl::StatusCode::kNotFound);
}

TEST_P(WorkspaceTest, AppendLogsIsIdempotent) {
  auto ws = Open();
  ASSERT_NE(ws, nullptr);
  std::vector<v1::LogLine> batch = {Line("j", 0, 0, 0, 1, 100, "a"),
                                    Line("j", 0, 0, 0, 2, 200, "b")};
  ASSERT_TRUE(ws->AppendLogs(batch).ok());
  ASSERT_TRUE(ws->AppendLogs(batch).ok());  // re-sent
  std::vector<v1::LogLine> more = {Line("j", 0, 0, 0, 2, 200, "b"),
                                   Line("j", 0, 0, 0, 3, 300, "c")};
  ASSERT_TRUE(ws->AppendLogs(more).ok());
  // Same sequence in another attempt or instance is a different line.
  ASSERT_TRUE(ws->AppendLogs({Line("j", 1, 0, 0, 1, 400, "retry")}).ok());
  ASSERT_TRUE(ws->AppendLogs({}).ok());

  auto page = ws->ReadLogs({.job = "j"});
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->lines.size(), 4u);
  EXPECT_EQ(page->lines[0].text(), "a");
  EXPECT_EQ(page->lines[1].text(), "b");
  EXPECT_EQ(page->lines[2].text(), "c");
  EXPECT_EQ(page->lines[3].text(), "retry");
  EXPECT_EQ(page->lines[3].attempt(), 1);
  EXPECT_EQ(page->lines[0].job(), "j");
}

TEST_P(WorkspaceTest, ReadLogsPagesByCursorAndFilters) {
  auto ws = Open();
  ASSERT_NE(ws, nullptr);
  // Instance 0 has ranks 0 and 1, instance 1 has rank 2, plus agent lines (rank -1).
  std::vector<v1::LogLine> lines = {
      Line("j", 0, 0, -1, 1, 10, "agent0 start"),
      Line("j", 0, 0, 0, 2, 20, "r0 a"),
      Line("j", 0, 0, 1, 3, 30, "r1 a"),
      Line("j", 0, 0, 0, 4, 50, "r0 b"),
  };
  ASSERT_TRUE(ws->AppendLogs(lines).ok());
  ASSERT_TRUE(
      ws->AppendLogs({Line("j", 0, 1, 2, 1, 15, "r2 a"), Line("j", 0, 1, 2, 2, 40, "r2 b")}).ok());
  ASSERT_TRUE(ws->AppendLogs({Line("other", 0, 0, 0, 1, 1, "not mine")}).ok());

  // All lines: per instance in sequence order, merged across instances by timestamp.
  auto all = ws->ReadLogs({.job = "j"});
  ASSERT_TRUE(all.ok());
  std::vector<std::string> texts;
  for (const auto& l : all->lines) texts.push_back(l.text());
  EXPECT_THAT(texts,
              ::testing::ElementsAre("agent0 start", "r2 a", "r0 a", "r1 a", "r2 b", "r0 b"));

  // Rank filter.
  auto r0 = ws->ReadLogs({.job = "j", .rank = 0});
  ASSERT_TRUE(r0.ok());
  ASSERT_EQ(r0->lines.size(), 2u);
  EXPECT_EQ(r0->lines[0].text(), "r0 a");
  EXPECT_EQ(r0->lines[1].text(), "r0 b");

  // Attempt filter.
  EXPECT_EQ(ws->ReadLogs({.job = "j", .attempt = 1})->lines.size(), 0u);
  EXPECT_EQ(ws->ReadLogs({.job = "j", .attempt = 0})->lines.size(), 6u);

  // Cursor paging: 4 then 2 then nothing; next_id stays put on an empty page.
  auto p1 = ws->ReadLogs({.job = "j", .limit = 4});
  ASSERT_TRUE(p1.ok());
  EXPECT_EQ(p1->lines.size(), 4u);
  auto p2 = ws->ReadLogs({.job = "j", .after_id = p1->next_id, .limit = 4});
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(p2->lines.size(), 2u);
  EXPECT_GT(p2->next_id, p1->next_id);
  auto p3 = ws->ReadLogs({.job = "j", .after_id = p2->next_id});
  ASSERT_TRUE(p3.ok());
  EXPECT_EQ(p3->lines.size(), 0u);
  EXPECT_EQ(p3->next_id, p2->next_id);

  // Lines appended later appear after the cursor (following a live job).
  ASSERT_TRUE(ws->AppendLogs({Line("j", 0, 1, 2, 3, 60, "r2 c")}).ok());
  auto p4 = ws->ReadLogs({.job = "j", .after_id = p3->next_id});
  ASSERT_TRUE(p4.ok());
  ASSERT_EQ(p4->lines.size(), 1u);
  EXPECT_EQ(p4->lines[0].text(), "r2 c");
  EXPECT_EQ(p4->lines[0].rank(), 2);
  EXPECT_EQ(p4->lines[0].instance(), 1);
  EXPECT_EQ(p4->lines[0].sequence(), 3);
  EXPECT_EQ(p4->lines[0].timestamp_ns(), 60);
}

TEST_P(WorkspaceTest, ConcurrentThreadsShareOneWorkspace) {
  auto ws = Open();
  ASSERT_NE(ws, nullptr);
  ASSERT_TRUE(ws->CreateJob(Job("t")).ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        ASSERT_TRUE(ws->UpdateJob("t", [](const auto&, v1::JobRecord& job) {
                        job.set_supervisor_pid(job.supervisor_pid() + 1);
                        return absl::OkStatus();
                      }).ok());
        ASSERT_TRUE(ws->AppendLogs({Line("t", 0, t, t, i, i, "x")}).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ws->GetJob("t")->supervisor_pid(), 200);
  EXPECT_EQ(ws->ReadLogs({.job = "t"})->lines.size(), 200u);
}

TEST_P(WorkspaceTest, WatchJobFollowsRecordAndLinesToTheEnd) {
  auto ws = Open();
  ASSERT_NE(ws, nullptr);
  ASSERT_TRUE(ws->CreateJob(Job("w")).ok());
  ASSERT_TRUE(ws->AppendLogs({Line("w", 0, 0, 0, 0, 1, "before")}).ok());
  std::thread writer([&] {
    auto other = Open();
    ASSERT_NE(other, nullptr);
    absl::SleepFor(absl::Milliseconds(100));
    ASSERT_TRUE(other
                    ->UpdateJob("w",
                                [](const auto&, v1::JobRecord& j) {
                                  j.mutable_status()->set_state(v1::JOB_STATE_RUNNING);
                                  return absl::OkStatus();
                                })
                    .ok());
    for (int i = 1; i <= 50; ++i) {
      ASSERT_TRUE(
          other->AppendLogs({Line("w", 0, 0, 0, i, i + 1, "line " + std::to_string(i))}).ok());
    }
    // The last lines are stored just before the end: they must still come before `final`.
    ASSERT_TRUE(other->AppendLogs({Line("w", 0, 0, -1, 51, 100, "agent: done")}).ok());
    ASSERT_TRUE(other
                    ->UpdateJob("w",
                                [](const auto&, v1::JobRecord& j) {
                                  j.mutable_status()->set_state(v1::JOB_STATE_COMPLETED);
                                  return absl::OkStatus();
                                })
                    .ok());
  });
  std::vector<std::string> texts;
  std::vector<v1::JobState> states;
  int finals = 0;
  bool first_has_record = false;
  int updates = 0;
  absl::Status s = ws->WatchJob({.job = "w"}, [&](const JobUpdate& u) {
    if (updates++ == 0) first_has_record = u.job.has_value() || !u.lines.empty();
    for (const auto& l : u.lines) texts.push_back(l.text());
    if (u.job) states.push_back(u.job->status().state());
    if (u.final) ++finals;
    return true;
  });
  writer.join();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(first_has_record);
  EXPECT_EQ(finals, 1);
  ASSERT_EQ(texts.size(), 52u);
  EXPECT_EQ(texts.front(), "before");
  EXPECT_EQ(texts[25], "line 25");
  EXPECT_EQ(texts.back(), "agent: done");
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.front(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(states.back(), v1::JOB_STATE_COMPLETED);
}

TEST_P(WorkspaceTest, WatchJobFiltersByRankResumesAfterACursorAndStopsOnRequest) {
  auto ws = Open();
  ASSERT_NE(ws, nullptr);
  ASSERT_TRUE(ws->CreateJob(Job("w")).ok());
  ASSERT_TRUE(ws->AppendLogs({Line("w", 0, 0, 0, 0, 1, "r0 a"), Line("w", 0, 0, 1, 1, 2, "r1 a"),
                              Line("w", 0, 0, 0, 2, 3, "r0 b")})
                  .ok());
  auto first = ws->ReadLogs({.job = "w", .limit = 1});
  ASSERT_TRUE(first.ok());
  std::vector<std::string> texts;
  int heartbeats = 0;
  absl::Status s =
      ws->WatchJob({.job = "w", .rank = 0, .after_id = first->next_id, .heartbeat_ms = 20},
                   [&](const JobUpdate& u) {
                     for (const auto& l : u.lines) texts.push_back(l.text());
                     if (!u.job && u.lines.empty()) ++heartbeats;
                     return heartbeats < 3;  // the job never ends: stop
                   });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(texts, ::testing::ElementsAre("r0 b"));
  EXPECT_EQ(heartbeats, 3);

  auto missing = ws->WatchJob({.job = "nope"}, [](const JobUpdate&) { return true; });
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
}

TEST_P(WorkspaceTest, IssueJobTokenOnlyWhereAServerChecksTokens) {
  auto ws = Open();
  ASSERT_NE(ws, nullptr);
  auto token = ws->IssueJobToken("j");
  ASSERT_TRUE(token.ok()) << token.status();
  if (embedded()) {
    EXPECT_EQ(*token, "");  // nothing to authenticate against
  } else {
    EXPECT_THAT(*token, ::testing::StartsWith("ktjob."));
  }
}

TEST(DefaultWorkspacePathTest, EnvironmentThenHome) {
  const char* old_ws = std::getenv("KUBETRAIN_WORKSPACE");
  std::string saved_ws = old_ws ? old_ws : "";
  const char* old_home = std::getenv("HOME");
  std::string saved_home = old_home ? old_home : "";

  setenv("KUBETRAIN_WORKSPACE", "/srv/ws", 1);
  EXPECT_EQ(DefaultWorkspacePath(), "/srv/ws");
  unsetenv("KUBETRAIN_WORKSPACE");
  setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(DefaultWorkspacePath(), "/home/someone/.kubetrain");

  if (old_ws) setenv("KUBETRAIN_WORKSPACE", saved_ws.c_str(), 1);
  if (old_home) setenv("HOME", saved_home.c_str(), 1);
}

}  // namespace
}  // namespace kubetrain::storage
