// The agent end to end: instance setup, command templates, RunAgent with real processes (pytorch
// and mpi through real mpirun), and the kubetrain-worker binary (cancel by SIGTERM, PDEATHSIG,
// the embedded workspace).
#include "kubetrain/agent/agent.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/agent/ranks/cancel.h"
#include "kubetrain/agent/ranks/process.h"
#include "kubetrain/agent/sink.h"
#include "tests/agent/test_util.h"
#ifdef KUBETRAIN_WORKER_HAVE_STORAGE
#include "kubetrain/storage/workspace.h"
#endif

namespace kubetrain::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::HasSubstr;
using testing::ParsePlan;
using testing::PidAlive;
using testing::TempDir;

void WriteFile(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A plan for one instance of a job in `dir`.
v1::InstanceLaunch Plan(const TempDir& dir, const std::string& command,
                        const std::string& distribution = "", int instance_count = 1,
                        int index = 0) {
  std::string hosts;
  for (int i = 0; i < instance_count; ++i) hosts += " instance_hosts: \"127.0.0.1\"";
  v1::InstanceLaunch launch = ParsePlan(absl::StrCat(
      "job { name: \"job_a\" experiment_name: \"exp\" resources { instance_count: ", instance_count,
      " } distribution { ", distribution, " } } instance_index: ", index, hosts,
      " master_port: 29571 grace_period_ms: 1000"));
  launch.mutable_job()->set_command(command);
  launch.set_job_dir(dir / absl::StrCat("instance-", index));
  launch.set_checkpoint_dir(dir / "checkpoints");
  for (int i = 0; i < instance_count; ++i) {
    auto* p = launch.mutable_placement()->add_instances();
    p->set_instance_index(i);
    p->set_node("local");
    p->set_cpu_millicores(2000);
  }
  return launch;
}

AgentOptions Quiet() {
  AgentOptions o;
  o.echo_to_stderr = false;
  o.flush_interval = absl::Milliseconds(20);
  return o;
}

std::vector<std::string> Texts(const MemorySink& sink, int rank) {
  std::vector<std::string> out;
  for (const v1::LogLine& l : sink.lines()) {
    if (l.rank() == rank && l.stream() != v1::LogLine::STREAM_AGENT) out.push_back(l.text());
  }
  return out;
}

std::vector<std::string> AgentTexts(const MemorySink& sink) {
  std::vector<std::string> out;
  for (const v1::LogLine& l : sink.lines()) {
    if (l.stream() == v1::LogLine::STREAM_AGENT) out.push_back(l.text());
  }
  return out;
}

// --- setup ---------------------------------------------------------------------------------------

TEST(PrepareInstanceTest, CopiesCodeAndCreatesDirectories) {
  TempDir dir;
  WriteFile(dir / "src/train.py", "print('hi')\n");
  WriteFile(dir / "src/pkg/util.py", "x = 1\n");
  WriteFile(dir / "src/.git/HEAD", "ref\n");
  v1::InstanceLaunch launch = Plan(dir, "python train.py");
  launch.mutable_job()->mutable_code()->set_local_path(dir / "src");
  (*launch.mutable_output_paths())["model"] = dir / "out/model";
  (*launch.mutable_output_paths())["metrics"] = dir / "out/files/metrics.json";
  (*launch.mutable_job()->mutable_outputs())["metrics"].set_type(v1::DATA_TYPE_URI_FILE);
  WriteFile(dir / "instance-0/code/stale.py", "old\n");

  absl::StatusOr<std::string> cwd = PrepareInstance(launch);
  ASSERT_TRUE(cwd.ok()) << cwd.status();
  EXPECT_EQ(*cwd, dir / "instance-0/code");
  EXPECT_EQ(ReadFile(dir / "instance-0/code/train.py"), "print('hi')\n");
  EXPECT_EQ(ReadFile(dir / "instance-0/code/pkg/util.py"), "x = 1\n");
  EXPECT_FALSE(fs::exists(dir / "instance-0/code/.git"));
  EXPECT_FALSE(fs::exists(dir / "instance-0/code/stale.py"));
  EXPECT_TRUE(fs::is_directory(dir / "out/model"));
  EXPECT_TRUE(fs::is_directory(dir / "out/files"));
  EXPECT_FALSE(fs::exists(dir / "out/files/metrics.json"));
  EXPECT_TRUE(fs::is_directory(dir / "checkpoints"));
}

TEST(PrepareInstanceTest, CodeFolderHoldingTheWorkspaceDoesNotCopyItself) {
  // `code: .` beside a workspace whose job dirs live inside the code folder.
  TempDir dir;
  WriteFile(dir / "train.py", "print(1)\n");
  WriteFile(dir / "ws/workspace.db", "db");
  v1::InstanceLaunch launch = Plan(dir, "true");
  launch.mutable_job()->mutable_code()->set_local_path(dir.path() + "/");
  launch.set_workspace(dir / "ws");
  launch.set_job_dir(dir / "ws/jobs/j/attempt-0/instance-0");
  WriteFile(dir / "ws/jobs/j/attempt-0/instance-1/code/train.py", "other instance\n");
  absl::StatusOr<std::string> cwd = PrepareInstance(launch);
  ASSERT_TRUE(cwd.ok()) << cwd.status();
  EXPECT_EQ(ReadFile(*cwd + "/train.py"), "print(1)\n");
  EXPECT_FALSE(fs::exists(*cwd + "/ws"));
}

TEST(PrepareInstanceTest, SymlinksStayLinks) {
  TempDir dir;
  WriteFile(dir / "src/data/real.txt", "x");
  fs::create_symlink("data/real.txt", dir / "src/link.txt");
  v1::InstanceLaunch launch = Plan(dir, "true");
  launch.mutable_job()->mutable_code()->set_local_path(dir / "src");
  absl::StatusOr<std::string> cwd = PrepareInstance(launch);
  ASSERT_TRUE(cwd.ok()) << cwd.status();
  EXPECT_TRUE(fs::is_symlink(*cwd + "/link.txt"));
  EXPECT_EQ(ReadFile(*cwd + "/link.txt"), "x");
}

TEST(PrepareInstanceTest, WithoutCodeRunsInTheJobDir) {
  TempDir dir;
  absl::StatusOr<std::string> cwd = PrepareInstance(Plan(dir, "true"));
  ASSERT_TRUE(cwd.ok());
  EXPECT_EQ(*cwd, dir / "instance-0");
}

TEST(PrepareInstanceTest, MissingCodeIsAnError) {
  TempDir dir;
  v1::InstanceLaunch launch = Plan(dir, "true");
  launch.mutable_job()->mutable_code()->set_local_path(dir / "nope");
  EXPECT_THAT(PrepareInstance(launch).status().message(),
              HasSubstr("nope' (spec.code.local_path)"));
}

TEST(ResolveCommandTest, SubstitutesInputsAndOutputs) {
  TempDir dir;
  v1::InstanceLaunch launch = Plan(
      dir, "python t.py --data ${{inputs.data}} --lr ${{inputs.lr}} --out ${{ outputs.model }}");
  (*launch.mutable_input_paths())["data"] = "/mnt/data";
  (*launch.mutable_job()->mutable_inputs())["lr"].set_type(v1::DATA_TYPE_LITERAL);
  (*launch.mutable_job()->mutable_inputs())["lr"].set_literal("0.01");
  (*launch.mutable_output_paths())["model"] = "/out/model";
  absl::StatusOr<std::string> command = ResolveCommand(launch);
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_EQ(*command, "python t.py --data /mnt/data --lr 0.01 --out /out/model");
}

TEST(ResolveCommandTest, MissingReferenceIsNamed) {
  TempDir dir;
  v1::InstanceLaunch launch = Plan(dir, "python t.py --data ${{inputs.training_data}}");
  absl::StatusOr<std::string> command = ResolveCommand(launch);
  ASSERT_FALSE(command.ok());
  EXPECT_THAT(command.status().message(), HasSubstr("${{inputs.training_data}}"));
  EXPECT_THAT(command.status().message(), HasSubstr("job_a"));
}

TEST(BuildProcessesTest, OneBashPerLocalRank) {
  TempDir dir;
  v1::InstanceLaunch launch =
      Plan(dir, "x", "type: TYPE_PYTORCH process_count_per_instance: 2", 2, 1);
  launch.mutable_placement()->mutable_instances(1)->add_cpu_ids(1);
  auto procs = BuildProcesses(launch, "echo hi", "/cwd", Quiet());
  ASSERT_TRUE(procs.ok());
  ASSERT_EQ(procs->size(), 2u);
  EXPECT_EQ((*procs)[1].rank, 3);
  EXPECT_EQ((*procs)[1].local_rank, 1);
  EXPECT_THAT((*procs)[1].spawn.argv, ::testing::ElementsAre("/bin/bash", "-c", "echo hi"));
  EXPECT_EQ((*procs)[1].spawn.env.at("RANK"), "3");
  EXPECT_EQ((*procs)[1].spawn.cwd, "/cwd");
  EXPECT_THAT((*procs)[1].spawn.cpu_ids, ::testing::ElementsAre(1));
}

TEST(BuildProcessesTest, MpiRunsMpirunOnInstanceZeroOnly) {
  TempDir dir;
  v1::InstanceLaunch launch = Plan(dir, "x", "type: TYPE_MPI process_count_per_instance: 2", 2, 0);
  ASSERT_TRUE(PrepareInstance(launch).ok());
  auto procs = BuildProcesses(launch, "echo hi", dir / "instance-0", Quiet());
  ASSERT_TRUE(procs.ok()) << procs.status();
  ASSERT_EQ(procs->size(), 1u);
  EXPECT_EQ((*procs)[0].rank, -1);
  EXPECT_TRUE((*procs)[0].mpirun_tagged_output);
  EXPECT_EQ((*procs)[0].spawn.env.at("OMPI_ALLOW_RUN_AS_ROOT"), "1");
  EXPECT_EQ((*procs)[0].spawn.env.at("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"), "1");
  EXPECT_EQ(ReadFile(dir / "instance-0/hostfile"), "127.0.0.1 slots=4\n");

  launch.set_instance_index(1);
  auto none = BuildProcesses(launch, "echo hi", dir / "instance-1", Quiet());
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

// --- RunAgent with real processes -----------------------------------------------------------

TEST(RunAgentTest, PytorchRanksSeeTheirEnvironmentAndRunInTheCodeDir) {
  TempDir dir;
  WriteFile(dir / "src/hello.sh",
            "echo \"rank=$RANK world=$WORLD_SIZE local=$LOCAL_RANK pwd=$PWD\"\n");
  v1::InstanceLaunch launch = Plan(dir, "bash hello.sh; echo out=${{outputs.model}}",
                                   "type: TYPE_PYTORCH process_count_per_instance: 2", 2, 1);
  launch.mutable_job()->mutable_code()->set_local_path(dir / "src");
  (*launch.mutable_output_paths())["model"] = dir / "model";
  MemorySink sink;
  CancelToken cancel;
  AgentResult result = RunAgent(launch, &sink, &cancel, Quiet());
  EXPECT_EQ(result.exit_code, kExitOk) << result.message;
  const std::string code = dir / "instance-1/code";
  EXPECT_THAT(Texts(sink, 2),
              ::testing::ElementsAre(absl::StrCat("rank=2 world=4 local=0 pwd=", code),
                                     absl::StrCat("out=", dir / "model")));
  EXPECT_THAT(Texts(sink, 3),
              ::testing::ElementsAre(absl::StrCat("rank=3 world=4 local=1 pwd=", code),
                                     absl::StrCat("out=", dir / "model")));
  ASSERT_FALSE(sink.statuses().empty());
  EXPECT_EQ(sink.statuses().back().state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(sink.statuses().back().index(), 1);
}

TEST(RunAgentTest, FailingRankIsReportedWithItsLastLines) {
  TempDir dir;
  v1::InstanceLaunch launch = Plan(
      dir, "if [ $LOCAL_RANK = 1 ]; then echo loading; echo 'CUDA error' >&2; exit 3; fi; sleep 30",
      "type: TYPE_PYTORCH process_count_per_instance: 3");
  MemorySink sink;
  CancelToken cancel;
  auto start = absl::Now();
  AgentResult result = RunAgent(launch, &sink, &cancel, Quiet());
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(result.exit_code, kExitRankFailed);
  EXPECT_EQ(result.supervisor.failed_rank, 1);
  EXPECT_EQ(result.supervisor.exit_code, 3);
  EXPECT_THAT(result.message, HasSubstr("rank 1 exited with code 3"));
  EXPECT_THAT(AgentTexts(sink), Contains(::testing::AllOf(HasSubstr("instance failed: rank 1"),
                                                          HasSubstr("CUDA error"))));
  EXPECT_EQ(sink.statuses().back().state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(sink.statuses().back().message(), HasSubstr("rank 1 exited with code 3"));
  EXPECT_THAT(LiveDescendants(), ::testing::IsEmpty());
}

TEST(RunAgentTest, MissingTemplateReferenceFailsSetup) {
  TempDir dir;
  MemorySink sink;
  CancelToken cancel;
  AgentResult result = RunAgent(Plan(dir, "echo ${{outputs.nope}}"), &sink, &cancel, Quiet());
  EXPECT_EQ(result.exit_code, kExitSetupFailed);
  EXPECT_THAT(result.message, HasSubstr("${{outputs.nope}}"));
  ASSERT_FALSE(sink.statuses().empty());
  EXPECT_EQ(sink.statuses().back().state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(sink.statuses().back().message(), HasSubstr("${{outputs.nope}}"));
}

TEST(RunAgentTest, InvalidPlanExitsTwo) {
  TempDir dir;
  v1::InstanceLaunch launch = Plan(dir, "true");
  launch.set_instance_index(5);
  MemorySink sink;
  CancelToken cancel;
  EXPECT_EQ(RunAgent(launch, &sink, &cancel, Quiet()).exit_code, kExitInvalidPlan);
}

TEST(RunAgentTest, TensorflowWorkersSeeTfConfig) {
  TempDir dir;
  v1::InstanceLaunch launch =
      Plan(dir, "echo \"$TF_CONFIG\"",
           "type: TYPE_TENSORFLOW worker_count: 2 parameter_server_count: 1", 2, 0);
  MemorySink sink;
  CancelToken cancel;
  AgentResult result = RunAgent(launch, &sink, &cancel, Quiet());
  ASSERT_EQ(result.exit_code, kExitOk) << result.message;
  // Instance 0 runs worker 0 (rank 0) and ps 0 (rank 2).
  EXPECT_THAT(Texts(sink, 0),
              ::testing::ElementsAre(HasSubstr(R"("task":{"type":"worker","index":0})")));
  EXPECT_THAT(Texts(sink, 2),
              ::testing::ElementsAre(HasSubstr(R"("task":{"type":"ps","index":0})")));
}

// --- distribution: mpi through real mpirun ----------------------------------------------------

bool HaveMpirun() { return !testing::ShellOutput("command -v mpirun").empty(); }

TEST(RunAgentMpiTest, FourRanksUnderOneMpirun) {
  if (!HaveMpirun()) GTEST_SKIP() << "mpirun not installed (Debian openmpi-bin)";
  TempDir dir;
  const std::string command =
      "echo \"rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE as $AZUREML_PROCESS_NAME "
      "node $AZUREML_CR_NODE_RANK master $AZ_BATCHAI_MPI_MASTER_NODE\"";
  const std::string mpi = "type: TYPE_MPI process_count_per_instance: 2";
  // Instance 1 starts nothing and says so.
  {
    MemorySink sink;
    CancelToken cancel;
    AgentResult other = RunAgent(Plan(dir, command, mpi, 2, 1), &sink, &cancel, Quiet());
    EXPECT_EQ(other.exit_code, kExitOk);
    EXPECT_THAT(AgentTexts(sink), Contains(HasSubstr("run under instance 0's mpirun")));
    EXPECT_EQ(sink.statuses().back().state(), v1::JOB_STATE_COMPLETED);
  }
  MemorySink sink;
  CancelToken cancel;
  AgentResult result = RunAgent(Plan(dir, command, mpi, 2, 0), &sink, &cancel, Quiet());
  ASSERT_EQ(result.exit_code, kExitOk) << result.message << "\n"
                                       << absl::StrJoin(Texts(sink, -1), "\n");
  std::set<int> ranks;
  for (const v1::LogLine& l : sink.lines()) {
    if (l.rank() < 0) continue;
    ranks.insert(l.rank());
    EXPECT_EQ(l.text(), absl::StrCat("rank ", l.rank(), " of 4 as rank_", l.rank(), " node ",
                                     l.rank() / 2, " master 127.0.0.1"));
  }
  EXPECT_THAT(ranks, ::testing::ElementsAre(0, 1, 2, 3));
  ASSERT_EQ(result.supervisor.status.ranks_size(), 5);
  for (int i = 1; i < 5; ++i) {
    EXPECT_EQ(result.supervisor.status.ranks(i).rank(), i - 1);
    EXPECT_EQ(result.supervisor.status.ranks(i).state(), v1::JOB_STATE_COMPLETED);
  }
}

v1::JobStatus InstanceZero(v1::JobState state, const std::string& message) {
  v1::JobStatus job;
  job.set_state(v1::JOB_STATE_RUNNING);
  v1::InstanceStatus* zero = job.add_instances();
  zero->set_index(0);
  zero->set_state(state);
  zero->set_message(message);
  for (int r = -1; r < 4; ++r) {
    v1::RankStatus* rank = zero->add_ranks();
    rank->set_rank(r);
    rank->set_state(state);
    rank->set_exit_code(state == v1::JOB_STATE_FAILED && r == 3 ? 5 : 0);
  }
  return job;
}

TEST(RunAgentMpiTest, OtherInstancesWaitForInstanceZeroAndMirrorIt) {
  TempDir dir;
  v1::InstanceLaunch launch =
      Plan(dir, "true", "type: TYPE_MPI process_count_per_instance: 2", 2, 1);
  for (v1::JobState end : {v1::JOB_STATE_COMPLETED, v1::JOB_STATE_FAILED}) {
    MemorySink sink;
    sink.set_job_status(InstanceZero(v1::JOB_STATE_RUNNING, ""));
    CancelToken cancel;
    std::thread finisher([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
      sink.set_job_status(InstanceZero(end, end == v1::JOB_STATE_COMPLETED
                                                ? "all processes exited 0"
                                                : "rank 3 exited with code 5"));
    });
    auto start = absl::Now();
    AgentResult result = RunAgent(launch, &sink, &cancel, Quiet());
    finisher.join();
    EXPECT_GE(absl::Now() - start, absl::Milliseconds(400));
    EXPECT_LT(absl::Now() - start, absl::Seconds(2));
    EXPECT_EQ(result.exit_code, end == v1::JOB_STATE_COMPLETED ? kExitOk : kExitRankFailed);
    ASSERT_GE(sink.statuses().size(), 2u);
    EXPECT_EQ(sink.statuses().front().state(), v1::JOB_STATE_RUNNING);
    const v1::InstanceStatus last = sink.statuses().back();
    EXPECT_EQ(last.state(), end);
    EXPECT_EQ(last.index(), 1);
    ASSERT_EQ(last.ranks_size(), 2);
    EXPECT_EQ(last.ranks(0).rank(), 2);
    EXPECT_EQ(last.ranks(1).rank(), 3);
    if (end == v1::JOB_STATE_FAILED) {
      EXPECT_THAT(last.message(), HasSubstr("rank 3 exited with code 5"));
    }
  }
}

TEST(RunAgentMpiTest, WaitingInstanceCanBeCanceled) {
  TempDir dir;
  v1::InstanceLaunch launch =
      Plan(dir, "true", "type: TYPE_MPI process_count_per_instance: 2", 2, 1);
  MemorySink sink;
  sink.set_job_status(InstanceZero(v1::JOB_STATE_RUNNING, ""));
  CancelToken cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel.Request(SIGTERM);
  });
  auto start = absl::Now();
  AgentResult result = RunAgent(launch, &sink, &cancel, Quiet());
  canceller.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(result.exit_code, kExitCanceledBase + SIGTERM);
  EXPECT_EQ(sink.statuses().back().state(), v1::JOB_STATE_CANCELED);
}

TEST(RunAgentMpiTest, Mpi4pyAllreduce) {
  if (!HaveMpirun()) GTEST_SKIP() << "mpirun not installed (Debian openmpi-bin)";
  if (testing::ShellOutput("/usr/bin/python3 -c 'import mpi4py, numpy; print(1)' 2>/dev/null") !=
      "1\n") {
    GTEST_SKIP() << "/usr/bin/python3 with mpi4py and numpy not available (python3-mpi4py)";
  }
  TempDir dir;
  v1::InstanceLaunch launch = Plan(dir, "/usr/bin/python3 allreduce.py",
                                   "type: TYPE_MPI process_count_per_instance: 2", 2, 0);
  launch.mutable_job()->mutable_code()->set_local_path(std::string(KUBETRAIN_SOURCE_DIR) +
                                                       "/examples/mpi");
  MemorySink sink;
  CancelToken cancel;
  AgentResult result = RunAgent(launch, &sink, &cancel, Quiet());
  ASSERT_EQ(result.exit_code, kExitOk) << result.message << "\n"
                                       << absl::StrJoin(Texts(sink, -1), "\n");
  for (int r = 0; r < 4; ++r) {
    EXPECT_THAT(Texts(sink, r), Contains(::testing::AllOf(HasSubstr(absl::StrCat("rank ", r, "/4")),
                                                          HasSubstr("sum=10 expected=10 OK"))))
        << "rank " << r;
  }
}

TEST(RunAgentMpiTest, FailingMpiRankIsNamed) {
  if (!HaveMpirun()) GTEST_SKIP() << "mpirun not installed (Debian openmpi-bin)";
  TempDir dir;
  v1::InstanceLaunch launch =
      Plan(dir, "if [ $OMPI_COMM_WORLD_RANK = 2 ]; then echo bad input; exit 3; fi; sleep 30",
           "type: TYPE_MPI process_count_per_instance: 2", 2, 0);
  MemorySink sink;
  CancelToken cancel;
  auto start = absl::Now();
  AgentResult result = RunAgent(launch, &sink, &cancel, Quiet());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(result.exit_code, kExitRankFailed);
  EXPECT_EQ(result.supervisor.failed_rank, 2);
  EXPECT_EQ(result.supervisor.exit_code, 3);
  EXPECT_THAT(result.message, HasSubstr("rank 2 exited with code 3"));
  EXPECT_THAT(result.supervisor.last_lines, ::testing::ElementsAre("bad input"));
  // The status lists mpirun (rank -1) and then every rank, the failing one FAILED with its code.
  const v1::InstanceStatus& status = result.supervisor.status;
  ASSERT_EQ(status.ranks_size(), 5);
  EXPECT_EQ(status.ranks(0).rank(), -1);
  EXPECT_EQ(status.ranks(3).rank(), 2);
  EXPECT_EQ(status.ranks(3).local_rank(), 0);
  EXPECT_EQ(status.ranks(3).state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(status.ranks(3).exit_code(), 3);
  EXPECT_EQ(status.ranks(1).state(), v1::JOB_STATE_CANCELED);
  EXPECT_THAT(LiveDescendants(), ::testing::IsEmpty());
  std::printf("mpi failure reported as: %s\n", result.message.c_str());
}

// Waits until every rank in `ranks` logged "pid N" and returns rank → N.
std::map<int, pid_t> LoggedPids(const MemorySink& sink, int ranks) {
  std::map<int, pid_t> pids;
  for (int i = 0; i < 500 && static_cast<int>(pids.size()) < ranks; ++i) {
    for (const v1::LogLine& l : sink.lines()) {
      int pid = 0;
      if (l.rank() >= 0 && l.text().rfind("pid ", 0) == 0 &&
          absl::SimpleAtoi(l.text().substr(4), &pid)) {
        pids[l.rank()] = pid;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pids;
}

TEST(RunAgentMpiTest, SigkilledMpiRankFailsTheInstanceInUnderTwoSeconds) {
  if (!HaveMpirun()) GTEST_SKIP() << "mpirun not installed (Debian openmpi-bin)";
  TempDir dir;
  v1::InstanceLaunch launch =
      Plan(dir, "echo pid $$; sleep 30", "type: TYPE_MPI process_count_per_instance: 2", 2, 0);
  MemorySink sink;
  CancelToken cancel;
  std::map<int, pid_t> pids;
  absl::Time killed_at;
  std::thread killer([&] {
    pids = LoggedPids(sink, 4);
    if (pids.size() != 4) return;
    killed_at = absl::Now();
    kill(pids[1], SIGKILL);
  });
  AgentResult result = RunAgent(launch, &sink, &cancel, Quiet());
  const absl::Duration all_gone = absl::Now() - killed_at;
  killer.join();
  ASSERT_EQ(pids.size(), 4u);
  std::printf("mpi rank SIGKILL -> all ranks gone: %.1f ms\n",
              absl::ToDoubleMilliseconds(all_gone));
  EXPECT_LT(all_gone, absl::Seconds(2));
  EXPECT_EQ(result.exit_code, kExitRankFailed);
  EXPECT_EQ(result.supervisor.failed_rank, 1);
  EXPECT_EQ(result.supervisor.signal, SIGKILL);
  EXPECT_THAT(result.message, HasSubstr("rank 1 was killed by SIGKILL"));
  for (const auto& [rank, pid] : pids) EXPECT_FALSE(PidAlive(pid)) << "rank " << rank;
  EXPECT_THAT(LiveDescendants(), ::testing::IsEmpty());
}

TEST(RunAgentMpiTest, CancelStopsMpirunAndEveryRank) {
  if (!HaveMpirun()) GTEST_SKIP() << "mpirun not installed (Debian openmpi-bin)";
  TempDir dir;
  v1::InstanceLaunch launch =
      Plan(dir, "echo pid $$; sleep 30", "type: TYPE_MPI process_count_per_instance: 2", 2, 0);
  MemorySink sink;
  CancelToken cancel;
  std::map<int, pid_t> pids;
  std::thread canceller([&] {
    pids = LoggedPids(sink, 4);
    cancel.Request(SIGTERM);
  });
  auto start = absl::Now();
  AgentResult result = RunAgent(launch, &sink, &cancel, Quiet());
  canceller.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(result.exit_code, kExitCanceledBase + SIGTERM);
  ASSERT_EQ(pids.size(), 4u);
  for (const auto& [rank, pid] : pids) EXPECT_FALSE(PidAlive(pid)) << "rank " << rank;
  EXPECT_THAT(LiveDescendants(), ::testing::IsEmpty());
}

// --- the kubetrain-worker binary ----------------------------------------------------------------

struct Agent {
  pid_t pid = -1;
  std::string stderr_path;
};

Agent StartBinary(const TempDir& dir, const v1::InstanceLaunch& launch,
                  const std::vector<std::string>& extra) {
  const std::string plan = dir / "plan.pb";
  std::ofstream(plan, std::ios::binary) << launch.SerializeAsString();
  Agent agent;
  agent.stderr_path = dir / "agent.stderr";
  std::vector<std::string> args = {KUBETRAIN_WORKER_BIN, "--plan", plan};
  args.insert(args.end(), extra.begin(), extra.end());
  agent.pid = fork();
  if (agent.pid == 0) {
    int fd = open(agent.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    dup2(fd, 1);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return agent;
}

// The rank pids the agent announced ("rank N started (pid P").
std::map<int, pid_t> AnnouncedPids(const Agent& agent, size_t count) {
  std::map<int, pid_t> pids;
  std::regex started(R"(rank (\d+) started \(pid (\d+))");
  for (int i = 0; i < 500 && pids.size() < count; ++i) {
    std::string text = ReadFile(agent.stderr_path);
    for (std::sregex_iterator it(text.begin(), text.end(), started), end; it != end; ++it) {
      pids[std::stoi((*it)[1])] = std::stoi((*it)[2]);
    }
    if (pids.size() < count) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pids;
}

int WaitExit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(WorkerBinaryTest, SigtermCancelsEveryRank) {
  TempDir dir;
  v1::InstanceLaunch launch =
      Plan(dir, "echo up; sleep 30", "type: TYPE_PYTORCH process_count_per_instance: 2");
  Agent agent = StartBinary(dir, launch, {"--no-workspace"});
  std::map<int, pid_t> pids = AnnouncedPids(agent, 2);
  ASSERT_EQ(pids.size(), 2u) << ReadFile(agent.stderr_path);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto start = absl::Now();
  kill(agent.pid, SIGTERM);
  EXPECT_EQ(WaitExit(agent.pid), 128 + SIGTERM);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  for (const auto& [rank, pid] : pids) EXPECT_FALSE(PidAlive(pid)) << "rank " << rank;
  std::string log = ReadFile(agent.stderr_path);
  EXPECT_THAT(log, HasSubstr("[rank 1] up"));
  EXPECT_THAT(log, HasSubstr("canceled (SIGTERM)"));
}

TEST(WorkerBinaryTest, RanksAndTheirChildrenDieWithAKilledAgent) {
  TempDir dir;
  // Rank 0 is `sleep` itself (bash execs a lone command): PDEATHSIG. Rank 1's shell forks two
  // sleeps that have no PDEATHSIG: the orphan guard kills its process group.
  v1::InstanceLaunch launch = Plan(
      dir, "if [ $LOCAL_RANK = 1 ]; then sleep 30 & echo child $!; sleep 30; else sleep 30; fi",
      "type: TYPE_PYTORCH process_count_per_instance: 2");
  Agent agent = StartBinary(dir, launch, {"--no-workspace"});
  std::map<int, pid_t> pids = AnnouncedPids(agent, 2);
  ASSERT_EQ(pids.size(), 2u) << ReadFile(agent.stderr_path);
  std::smatch child;
  std::string log;
  for (int i = 0; i < 200; ++i) {
    log = ReadFile(agent.stderr_path);
    if (std::regex_search(log, child, std::regex(R"(\[rank 1\] child (\d+))"))) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(child.size() == 2) << log;
  pids[100] = std::stoi(child[1]);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  kill(agent.pid, SIGKILL);
  EXPECT_EQ(WaitExit(agent.pid), 128 + SIGKILL);
  // The ranks were reparented (to us, a subreaper after earlier tests, or to init) and got
  // SIGKILL from PR_SET_PDEATHSIG.
  for (int i = 0; i < 100; ++i) {
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    bool any = false;
    for (const auto& [rank, pid] : pids) any = any || PidAlive(pid);
    if (!any) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (const auto& [rank, pid] : pids) EXPECT_FALSE(PidAlive(pid)) << "rank " << rank;
}

TEST(WorkerBinaryTest, MpiRanksDieWithAKilledAgent) {
  if (!HaveMpirun()) GTEST_SKIP() << "mpirun not installed (Debian openmpi-bin)";
  TempDir dir;
  // mpirun dies by PDEATHSIG; the ranks it forked sit in process groups of their own, which the
  // agent registered with its orphan guard.
  v1::InstanceLaunch launch =
      Plan(dir, "echo pid $$; sleep 30", "type: TYPE_MPI process_count_per_instance: 2", 2, 0);
  Agent agent = StartBinary(dir, launch, {"--no-workspace"});
  std::map<int, pid_t> pids;
  std::regex line(R"(\[rank (\d+)\] pid (\d+))");
  for (int i = 0; i < 500 && pids.size() < 4; ++i) {
    std::string text = ReadFile(agent.stderr_path);
    for (std::sregex_iterator it(text.begin(), text.end(), line), end; it != end; ++it) {
      pids[std::stoi((*it)[1])] = std::stoi((*it)[2]);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(pids.size(), 4u) << ReadFile(agent.stderr_path);
  std::this_thread::sleep_for(std::chrono::milliseconds(800));  // the agent's group scan
  kill(agent.pid, SIGKILL);
  EXPECT_EQ(WaitExit(agent.pid), 128 + SIGKILL);
  for (int i = 0; i < 200; ++i) {
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    bool any = false;
    for (const auto& [rank, pid] : pids) any = any || PidAlive(pid);
    if (!any) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (const auto& [rank, pid] : pids) EXPECT_FALSE(PidAlive(pid)) << "rank " << rank;
}

TEST(WorkerBinaryTest, BadPlanExitsTwo) {
  TempDir dir;
  WriteFile(dir / "plan.pb", "not a proto \xff\xff");
  std::string out = testing::ShellOutput(
      absl::StrCat(KUBETRAIN_WORKER_BIN, " --plan ", dir / "plan.pb", " 2>&1; echo rc=$?"));
  EXPECT_THAT(out, HasSubstr("is not a binary kubetrain.v1.InstanceLaunch"));
  EXPECT_THAT(out, HasSubstr("rc=2"));
}

TEST(WorkerBinaryTest, PlanTextFormat) {
  TempDir dir;
  v1::InstanceLaunch launch = Plan(dir, "echo via text plan");
  WriteFile(dir / "plan.txt", launch.DebugString());
  std::string out =
      testing::ShellOutput(absl::StrCat(KUBETRAIN_WORKER_BIN, " --no-workspace ", "--plan-text ",
                                        dir / "plan.txt", " 2>&1; echo rc=$?"));
  EXPECT_THAT(out, HasSubstr("[rank 0] via text plan"));
  EXPECT_THAT(out, HasSubstr("rc=0"));
}

// Two agents (instances 0 and 1, 2 ranks each) run a gloo all-reduce with
// init_process_group("env://"): the env contract is what torch.distributed needs.
TEST(RunAgentTest, PytorchDdpAllReduceAcrossTwoInstances) {
  if (testing::ShellOutput("/usr/bin/python3 -c 'import torch.distributed as d; "
                           "print(d.is_gloo_available())' 2>/dev/null") != "True\n") {
    GTEST_SKIP() << "/usr/bin/python3 with torch (gloo) not available (Debian python3-torch)";
  }
  TempDir dir;
  WriteFile(dir / "src/ddp.py", R"py(
import os, torch, torch.distributed as dist
dist.init_process_group("gloo", init_method="env://")
rank, world = dist.get_rank(), dist.get_world_size()
assert rank == int(os.environ["RANK"]) and world == int(os.environ["WORLD_SIZE"])
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
print(f"rank {rank}/{world} local {os.environ['LOCAL_RANK']} node {os.environ['NODE_RANK']} "
      f"sum {t.item():.0f}", flush=True)
dist.destroy_process_group()
)py");
  const std::string pytorch = "type: TYPE_PYTORCH process_count_per_instance: 2";
  const std::string port = testing::ShellOutput(
      "/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); "
      "print(s.getsockname()[1])'");
  std::vector<v1::InstanceLaunch> launches;
  for (int i = 0; i < 2; ++i) {
    v1::InstanceLaunch l = Plan(dir, "/usr/bin/python3 ddp.py", pytorch, 2, i);
    l.mutable_job()->mutable_code()->set_local_path(dir / "src");
    l.set_master_port(std::stoi(port));
    launches.push_back(l);
  }
  // Instance 1 is a kubetrain-worker process (one agent per process, as the backends run it).
  TempDir dir1;
  Agent other = StartBinary(dir1, launches[1], {"--no-workspace"});
  MemorySink sink0;
  CancelToken cancel0;
  AgentResult result0 = RunAgent(launches[0], &sink0, &cancel0, Quiet());
  const int other_exit = WaitExit(other.pid);
  const std::string other_log = ReadFile(other.stderr_path);
  ASSERT_EQ(result0.exit_code, kExitOk) << result0.message << "\n"
                                        << absl::StrJoin(Texts(sink0, 0), "\n") << other_log;
  ASSERT_EQ(other_exit, kExitOk) << other_log;
  EXPECT_THAT(Texts(sink0, 0), Contains("rank 0/4 local 0 node 0 sum 10"));
  EXPECT_THAT(Texts(sink0, 1), Contains("rank 1/4 local 1 node 0 sum 10"));
  EXPECT_THAT(other_log, HasSubstr("[rank 2] rank 2/4 local 0 node 1 sum 10"));
  EXPECT_THAT(other_log, HasSubstr("[rank 3] rank 3/4 local 1 node 1 sum 10"));
}

#ifdef KUBETRAIN_WORKER_HAVE_STORAGE
// Both instances of an mpi job as kubetrain-worker processes on one embedded workspace: instance 0
// runs mpirun for all 4 ranks; instance 1 waits for it and ends with it.
TEST(WorkerBinaryTest, MpiJobOnTheEmbeddedWorkspace) {
  if (!HaveMpirun()) GTEST_SKIP() << "mpirun not installed (Debian openmpi-bin)";
  TempDir dir;
  const std::string ws_path = dir / "workspace";
  std::vector<v1::InstanceLaunch> launches;
  for (int i = 0; i < 2; ++i) {
    launches.push_back(Plan(dir, "sleep 0.5; echo rank $OMPI_COMM_WORLD_RANK",
                            "type: TYPE_MPI process_count_per_instance: 2", 2, i));
  }
  {
    auto ws = storage::OpenEmbeddedWorkspace(ws_path);
    ASSERT_TRUE(ws.ok()) << ws.status();
    v1::JobRecord record;
    *record.mutable_spec() = launches[0].job();
    ASSERT_TRUE((*ws)->CreateJob(record).ok());
  }
  TempDir dir1;
  Agent one = StartBinary(dir1, launches[1], {"--workspace", ws_path});
  Agent zero = StartBinary(dir, launches[0], {"--workspace", ws_path});
  EXPECT_EQ(WaitExit(zero.pid), kExitOk) << ReadFile(zero.stderr_path);
  EXPECT_EQ(WaitExit(one.pid), kExitOk) << ReadFile(one.stderr_path);

  auto ws = storage::OpenEmbeddedWorkspace(ws_path);
  ASSERT_TRUE(ws.ok());
  auto job = (*ws)->GetJob("job_a");
  ASSERT_TRUE(job.ok());
  ASSERT_EQ(job->status().instances_size(), 2);
  EXPECT_EQ(job->status().instances(0).state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(job->status().instances(0).ranks_size(), 5);  // mpirun + 4 ranks
  const v1::InstanceStatus& one_status = job->status().instances(1);
  EXPECT_EQ(one_status.state(), v1::JOB_STATE_COMPLETED);
  ASSERT_EQ(one_status.ranks_size(), 2);
  EXPECT_EQ(one_status.ranks(0).rank(), 2);
  EXPECT_EQ(one_status.ranks(1).state(), v1::JOB_STATE_COMPLETED);
  storage::LogQuery query;
  query.job = "job_a";
  auto page = (*ws)->ReadLogs(query);
  ASSERT_TRUE(page.ok());
  std::set<int> ranks;
  for (const v1::LogLine& l : page->lines) {
    if (l.rank() >= 0) {
      EXPECT_EQ(l.text(), absl::StrCat("rank ", l.rank()));
      ranks.insert(l.rank());
    }
  }
  EXPECT_THAT(ranks, ::testing::ElementsAre(0, 1, 2, 3));
}

TEST(WorkerBinaryTest, WritesLogsAndStatusToTheEmbeddedWorkspace) {
  TempDir dir;
  const std::string ws_path = dir / "workspace";
  v1::InstanceLaunch launch =
      Plan(dir, "echo hello $RANK; echo oops >&2; sleep 0.$((RANK * 3)); exit $RANK",
           "type: TYPE_PYTORCH process_count_per_instance: 2");
  {
    auto ws = storage::OpenEmbeddedWorkspace(ws_path);
    ASSERT_TRUE(ws.ok()) << ws.status();
    v1::JobRecord record;
    *record.mutable_spec() = launch.job();
    ASSERT_TRUE((*ws)->CreateJob(record).ok());
  }
  Agent agent = StartBinary(dir, launch, {"--workspace", ws_path});
  EXPECT_EQ(WaitExit(agent.pid), kExitRankFailed) << ReadFile(agent.stderr_path);

  auto ws = storage::OpenEmbeddedWorkspace(ws_path);
  ASSERT_TRUE(ws.ok());
  storage::LogQuery query;
  query.job = "job_a";
  auto page = (*ws)->ReadLogs(query);
  ASSERT_TRUE(page.ok()) << page.status();
  std::map<int, std::vector<std::string>> by_rank;
  for (const v1::LogLine& l : page->lines) by_rank[l.rank()].push_back(l.text());
  EXPECT_THAT(by_rank[0], ::testing::ElementsAre("hello 0", "oops"));
  EXPECT_THAT(by_rank[1], ::testing::ElementsAre("hello 1", "oops"));
  EXPECT_THAT(by_rank[-1], Contains(HasSubstr("instance failed: rank 1 exited with code 1")));

  auto job = (*ws)->GetJob("job_a");
  ASSERT_TRUE(job.ok());
  ASSERT_EQ(job->status().instances_size(), 1);
  const v1::InstanceStatus& status = job->status().instances(0);
  EXPECT_EQ(status.state(), v1::JOB_STATE_FAILED);
  ASSERT_EQ(status.ranks_size(), 2);
  EXPECT_EQ(status.ranks(0).state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(status.ranks(1).state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(status.ranks(1).exit_code(), 1);
}
#endif

}  // namespace
}  // namespace kubetrain::agent
