// Every example job under examples/ run through the real `kubetrain job create`, with its results
// checked: the loss fell, metrics reached the workspace, checkpoints exist, and a retried job
// resumes from them — for native-mlp bit-identically to a run that was never interrupted.
// Each test gets a fresh workspace.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/command.h"
#include "tests/testing/processes.h"

namespace kubetrain {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using ::testing::HasSubstr;
using testing::JobProcesses;
using Clock = std::chrono::steady_clock;

const std::string kExamples = std::string(KUBETRAIN_SOURCE_DIR) + "/examples";

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

class ExamplesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kt-examples-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  CommandResult Kt(const std::string& args) {
    return testing::RunCommand("KUBETRAIN_WORKSPACE=" + ws().string() + " " +
                               testing::KubetrainCli() + args);
  }
  nlohmann::json Json(const std::string& args) {
    CommandResult r = Kt(args + " -o json");
    return nlohmann::json::parse(r.output, nullptr, false);
  }
  std::string State(const std::string& job) {
    nlohmann::json j = Json("job show " + job);
    return j.is_object() ? j["status"].value("state", "") : "";
  }
  fs::path ws() const { return dir_ / "ws"; }
  fs::path JobDir(const std::string& job) const { return ws() / "jobs" / job; }
  fs::path dir_;
};

// "loss A at step 1 -> B at step N" printed by native-mlp's rank 0.
void ExpectLossFell(const std::string& output, double factor) {
  std::smatch m;
  ASSERT_TRUE(std::regex_search(output, m,
                                std::regex(R"(loss ([0-9.]+) at step \d+ -> ([0-9.]+) at step)")))
      << output;
  EXPECT_LT(std::stod(m[2]), std::stod(m[1]) * factor) << m[0];
}

TEST_F(ExamplesTest, NativeMlpTrainsLogsLossPerStepAndCheckpoints) {
  CommandResult run = Kt("job create -f " + kExamples + "/native-mlp/job.yml --name mlp --stream");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("native-mlp: 4 rank(s); cpu engine"));
  EXPECT_THAT(run.output, HasSubstr("4 ranks on 2 node(s), transport shm+tcp"));
  ExpectLossFell(run.output, 0.5);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(run.output, m, std::regex(R"(final accuracy ([0-9.]+) on 4096)")))
      << run.output;
  EXPECT_GT(std::stod(m[1]), 0.75);  // 4 classes: chance is 0.25

  // Metrics: one loss point per step in the workspace.
  nlohmann::json metrics = Json("job metrics mlp");
  ASSERT_TRUE(metrics.is_array()) << metrics.dump();
  std::set<std::string> keys;
  for (const auto& s : metrics) {
    keys.insert(s["key"].get<std::string>());
    if (s["key"] == "loss") {
      EXPECT_EQ(s["count"], 300);
      EXPECT_EQ(s["step"], 299);
      EXPECT_LT(s["latest"].get<double>(), s["max"].get<double>() / 2);
    }
  }
  EXPECT_EQ(keys, (std::set<std::string>{"loss", "test_accuracy", "test_loss", "train_accuracy"}));
  CommandResult chart = Kt("job metrics mlp --key loss");
  EXPECT_THAT(chart.output, HasSubstr("loss: 300 point(s), steps 0..299"));

  // Checkpoints: the newest three of every 50 steps, complete (manifest and a shard per rank).
  const fs::path ckpt = JobDir("mlp") / "checkpoints";
  for (int step : {200, 250, 300}) {
    const fs::path d = ckpt / ("step-" + std::to_string(step));
    EXPECT_TRUE(fs::exists(d / "manifest.pb")) << d;
    for (int r = 0; r < 4; ++r) {
      EXPECT_TRUE(fs::exists(d / ("shard-" + std::to_string(r) + ".bin"))) << d;
    }
  }
  EXPECT_FALSE(fs::exists(ckpt / "step-150"));  // retention keeps three
  // The output: the final parameters and their checksum.
  const fs::path out = JobDir("mlp") / "outputs" / "model";
  EXPECT_EQ(fs::file_size(out / "params.bin"), 1348u * 4);
  nlohmann::json final_json = nlohmann::json::parse(ReadFile(out / "final.json"), nullptr, false);
  ASSERT_TRUE(final_json.is_object()) << ReadFile(out / "final.json");
  EXPECT_EQ(final_json["world_size"], 4);
  EXPECT_THAT(run.output, HasSubstr("crc32c=" + final_json["params_crc32c"].get<std::string>()));
}

// Issue 7's resume equivalence: rank 1 is SIGKILLed from outside after a checkpoint exists; with
// max_retries: 1 the job restarts every rank, native-mlp resumes from the newest checkpoint, and
// the final parameters equal, bit for bit, those of a run that was never interrupted.
TEST_F(ExamplesTest, NativeMlpKilledRankResumesToBitIdenticalParameters) {
  const std::string yml = kExamples + "/native-mlp/job.yml";
  CommandResult ref = Kt("job create -f " + yml + " --name reference --stream");
  ASSERT_EQ(ref.exit_code, 0) << ref.output;

  CommandResult submit = Kt("job create -f " + yml + " --name victim");
  ASSERT_EQ(submit.exit_code, 0) << submit.output;
  const fs::path ckpt = JobDir("victim") / "checkpoints";
  ASSERT_TRUE(WaitFor([&] { return fs::exists(ckpt / "step-100"); }, std::chrono::seconds(60)))
      << "no checkpoint step-100 appeared; job: " << Kt("job show victim").output;
  std::vector<pid_t> rank1 = JobProcesses("victim", 1);
  ASSERT_FALSE(rank1.empty());
  ASSERT_FALSE(fs::exists(ckpt / "step-300")) << "the job finished before the kill";
  for (pid_t p : rank1) kill(p, SIGKILL);

  ASSERT_TRUE(WaitFor(
      [&] {
        std::string s = State("victim");
        return s == "JOB_STATE_COMPLETED" || s == "JOB_STATE_FAILED";
      },
      std::chrono::seconds(120)));
  nlohmann::json shown = Json("job show victim");
  ASSERT_EQ(shown["status"]["state"], "JOB_STATE_COMPLETED") << shown.dump(2);
  EXPECT_EQ(shown["status"]["attempt"], 1);
  ASSERT_EQ(shown["attempts"].size(), 2u) << shown.dump(2);
  EXPECT_EQ(shown["attempts"][0]["final_state"], "JOB_STATE_FAILED");
  // The cause is the rank that ended first (rank 1's SIGKILL), not a peer that saw it go a moment
  // later (e.g. "rank 2 exited with code 1": its communicator reported the dead peer).
  EXPECT_THAT(shown["attempts"][0].value("message", ""),
              HasSubstr("rank 1 was killed by signal 9"));
  EXPECT_EQ(shown["attempts"][1]["final_state"], "JOB_STATE_COMPLETED");
  CommandResult logs = Kt("job logs victim");
  EXPECT_THAT(logs.output, HasSubstr("resuming from checkpoint"));

  const std::string a = ReadFile(JobDir("reference") / "outputs/model/params.bin");
  const std::string b = ReadFile(JobDir("victim") / "outputs/model/params.bin");
  ASSERT_EQ(a.size(), 1348u * 4);
  EXPECT_TRUE(a == b) << "the resumed run's final parameters differ from the uninterrupted run's";
}

TEST_F(ExamplesTest, NativeMlpOnTheExampleComputeWithInstanceTypes) {
  ASSERT_EQ(Kt("compute attach slices --type local --nodes " + kExamples +
               "/instance-types/local-nodes.yml")
                .exit_code,
            0);
  CommandResult types = Kt("instance-type apply -f " + kExamples +
                           "/instance-types/instance-types.yml --compute "
                           "slices");
  ASSERT_EQ(types.exit_code, 0) << types.output;
  for (const char* t : {"cpu-small", "cpu-large", "gpu-1", "gpu-8"}) {
    EXPECT_THAT(types.output, HasSubstr(std::string("\"") + t + "\" created"));
  }
  CommandResult run = Kt("job create -f " + kExamples +
                         "/native-mlp/job.yml --name sliced --set compute=slices --set "
                         "resources.instance_type=cpu-large --stream");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("on node slice-a"));
  EXPECT_THAT(run.output, HasSubstr("on node slice-b"));
  ExpectLossFell(run.output, 0.5);
}

// The CUDA engine (cuBLAS + NCCL): one rank per GPU on a local compute with a GPU node and the
// example's gpu-1 instance type.
TEST_F(ExamplesTest, NativeMlpCudaEngineTrainsOnGpus) {
  if (!NATIVE_MLP_CUDA) {
    GTEST_SKIP() << "native-mlp was built without its CUDA engine (no CUDA toolkit / nvcc found "
                    "at configure time)";
  }
  CommandResult smi = testing::RunCommand("nvidia-smi -L 2>&1");
  const int gpus = static_cast<int>(std::count(smi.output.begin(), smi.output.end(), '\n'));
  if (smi.exit_code != 0 || gpus == 0) {
    GTEST_SKIP() << "no GPU on this machine (nvidia-smi -L: " << smi.output << ")";
  }
  std::string ids;
  for (int g = 0; g < gpus; ++g) ids += (g ? "," : "") + std::to_string(g);
  const fs::path nodes = dir_ / "gpu-nodes.yml";
  std::ofstream(nodes) << "nodes:\n  - name: gpu-node\n    labels: {accelerator: nvidia}\n"
                          "    cpu: \"8\"\n    memory: 64Gi\n    gpus: ["
                       << ids << "]\n";
  ASSERT_EQ(Kt("compute attach gpus --type local --nodes " + nodes.string()).exit_code, 0);
  ASSERT_EQ(Kt("instance-type apply -f " + kExamples +
               "/instance-types/instance-types.yml --compute gpus")
                .exit_code,
            0);
  const fs::path yml = dir_ / "cuda.yml";
  std::ofstream(yml)
      << "name: mlp-cuda\ncompute: gpus\n"
         "command: native-mlp --device cuda --steps 300 --output ${{outputs.model}}\n"
         "outputs: {model: {type: uri_folder}}\n"
         "distribution: {type: pytorch, process_count_per_instance: 1}\n"
         "resources: {instance_count: 1, instance_type: gpu-1}\n";
  CommandResult run = Kt("job create -f " + yml.string() + " --stream");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("cuda engine on GPU"));
  ExpectLossFell(run.output, 0.5);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(run.output, m, std::regex(R"(final accuracy ([0-9.]+) on 4096)")));
  EXPECT_GT(std::stod(m[1]), 0.75);
  EXPECT_TRUE(fs::exists(JobDir("mlp-cuda") / "checkpoints" / "step-300" / "manifest.pb"));
}

TEST_F(ExamplesTest, PytorchDdpLogsMetricsSavesCheckpointsAndResumesAfterAKill) {
  CommandResult run = Kt("job create -f " + kExamples + "/pytorch-ddp/job.yml --name ddp --stream");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("logged 50 loss points"));
  EXPECT_THAT(run.output, HasSubstr("backend gloo; checkpoints [30, 40, 50]"));
  for (int step : {30, 40, 50}) {
    EXPECT_TRUE(
        fs::exists(JobDir("ddp") / "checkpoints" / ("step-" + std::to_string(step) + ".pt")));
  }
  nlohmann::json metrics = Json("job metrics ddp");
  ASSERT_TRUE(metrics.is_array()) << metrics.dump();
  bool found = false;
  for (const auto& s : metrics) {
    if (s["key"] != "loss") continue;
    found = true;
    EXPECT_EQ(s["count"], 50);
    EXPECT_LT(s["latest"].get<double>(), s["max"].get<double>() / 10);
  }
  EXPECT_TRUE(found) << metrics.dump();

  // Killed after a checkpoint, retried, resumed from it.
  CommandResult submit = Kt("job create -f " + kExamples +
                            "/pytorch-ddp/job.yml --name ddp-victim --set "
                            "environment_variables.STEPS=400 --set "
                            "environment_variables.STEP_SLEEP=0.02");
  ASSERT_EQ(submit.exit_code, 0) << submit.output;
  const fs::path ckpt = JobDir("ddp-victim") / "checkpoints";
  ASSERT_TRUE(WaitFor([&] { return fs::exists(ckpt / "step-20.pt"); }, std::chrono::seconds(60)))
      << Kt("job show ddp-victim").output;
  std::vector<pid_t> rank1 = JobProcesses("ddp-victim", 1);
  ASSERT_FALSE(rank1.empty());
  for (pid_t p : rank1) kill(p, SIGKILL);
  ASSERT_TRUE(WaitFor(
      [&] {
        std::string s = State("ddp-victim");
        return s == "JOB_STATE_COMPLETED" || s == "JOB_STATE_FAILED";
      },
      std::chrono::seconds(120)));
  nlohmann::json shown = Json("job show ddp-victim");
  EXPECT_EQ(shown["status"]["state"], "JOB_STATE_COMPLETED") << shown.dump(2);
  EXPECT_EQ(shown["attempts"].size(), 2u);
  CommandResult logs = Kt("job logs ddp-victim");
  EXPECT_THAT(logs.output, HasSubstr("resumed from"));
  EXPECT_TRUE(fs::exists(ckpt / "step-400.pt"));
}

TEST_F(ExamplesTest, Mpi4pyExampleJob) {
  CommandResult run = Kt("job create -f " + kExamples + "/mpi/job.yml --stream");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_THAT(run.output, HasSubstr("rank " + std::to_string(rank) + "/4 on "));
  }
  EXPECT_THAT(run.output, HasSubstr("allreduce sum=10 expected=10 OK"));
  EXPECT_THAT(run.output, ::testing::Not(HasSubstr("MISMATCH")));
}

TEST_F(ExamplesTest, CppMpiExampleJob) {
  if (!fs::exists(std::string(KUBETRAIN_BINARY_DIR) + "/bin/mpi-allreduce")) {
    GTEST_SKIP() << "this build has no MPI (KUBETRAIN_WITH_MPI found no OpenMPI): "
                    "mpi-allreduce was not built";
  }
  CommandResult run = Kt("job create -f " + kExamples + "/mpi/job-cpp.yml --name cpp-mpi --stream");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_THAT(run.output, HasSubstr("[rank " + std::to_string(rank) + "] rank " +
                                      std::to_string(rank) + "/4 on "));
  }
  EXPECT_THAT(run.output, HasSubstr("mpi-allreduce: 4 ranks agree=yes"));
  EXPECT_EQ(State("cpp-mpi"), "JOB_STATE_COMPLETED");
}

}  // namespace
}  // namespace kubetrain
