#include "kubetrain/agent/ranks/rank_env.h"

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/agent/test_util.h"

namespace kubetrain::agent {
namespace {

using ::testing::HasSubstr;
using testing::ParsePlan;

constexpr char kCommon[] = R"pb(
  attempt: 2
  master_port: 29600
  checkpoint_dir: "/ckpt/j"
  instance_hosts: [ "10.0.0.1", "10.0.0.2" ]
  placement {
    instances {
      instance_index: 0
      node: "n0"
      cpu_millicores: 8000
      gpu_ids: [ 0, 1 ]
    }
    instances {
      instance_index: 1
      node: "n1"
      cpu_millicores: 3000
      gpu_ids: [ 2, 3 ]
    }
  }
)pb";

std::string Plan(const std::string& distribution, int instance_index, int instance_count = 2) {
  return std::string(kCommon) + "job { name: \"calm_apple\" experiment_name: \"exp1\" " +
         "command: \"python train.py\" resources { instance_count: " +
         std::to_string(instance_count) + " } distribution { " + distribution + " } }" +
         " instance_index: " + std::to_string(instance_index);
}

struct EnvCase {
  std::string name;
  std::string plan;
  int local_rank;
  std::map<std::string, std::string> expected;
  std::vector<std::string> absent;
};

class RankEnvTest : public ::testing::TestWithParam<EnvCase> {};

TEST_P(RankEnvTest, SetsTheContract) {
  const EnvCase& c = GetParam();
  v1::InstanceLaunch launch = ParsePlan(c.plan);
  ASSERT_TRUE(ValidateLaunch(launch).ok()) << ValidateLaunch(launch);
  std::map<std::string, std::string> env = RankEnvironment(launch, c.local_rank);
  for (const auto& [k, v] : c.expected) {
    ASSERT_TRUE(env.count(k)) << "missing " << k;
    EXPECT_EQ(env[k], v) << k;
  }
  for (const std::string& k : c.absent) EXPECT_FALSE(env.count(k)) << k << "=" << env[k];
}

const std::vector<std::string> kTorchVars = {
    "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE",
    "RANK",        "LOCAL_RANK",  "LOCAL_WORLD_SIZE",
    "NODE_RANK",   "GROUP_RANK",  "TORCHELASTIC_RESTART_COUNT"};

INSTANTIATE_TEST_SUITE_P(
    Distributions, RankEnvTest,
    ::testing::Values(
        EnvCase{"pytorch_instance1_local1",
                Plan("type: TYPE_PYTORCH process_count_per_instance: 2", 1),
                1,
                {{"MASTER_ADDR", "10.0.0.1"},
                 {"MASTER_PORT", "29600"},
                 {"WORLD_SIZE", "4"},
                 {"RANK", "3"},
                 {"LOCAL_RANK", "1"},
                 {"LOCAL_WORLD_SIZE", "2"},
                 {"NODE_RANK", "1"},
                 {"GROUP_RANK", "1"},
                 {"TORCHELASTIC_RESTART_COUNT", "2"},
                 {"AZUREML_RUN_ID", "calm_apple"},
                 {"AZUREML_CR_NODE_RANK", "1"},
                 {"AZUREML_PROCESS_NAME", "rank_3"},
                 {"MLFLOW_RUN_ID", "calm_apple"},
                 {"MLFLOW_EXPERIMENT_ID", "exp1"},
                 {"KUBETRAIN_JOB", "calm_apple"},
                 {"KUBETRAIN_CHECKPOINT_DIR", "/ckpt/j"},
                 {"KUBETRAIN_RESTART_COUNT", "2"},
                 {"CUDA_VISIBLE_DEVICES", "2,3"},
                 {"OMP_NUM_THREADS", "1"}},  // 3 cpus / 2 ranks
                {"TF_CONFIG", "AZ_BATCH_MASTER_NODE", "MLFLOW_TRACKING_URI"}},
        EnvCase{"pytorch_instance0_local0",
                Plan("type: TYPE_PYTORCH process_count_per_instance: 2", 0),
                0,
                {{"RANK", "0"},
                 {"LOCAL_RANK", "0"},
                 {"NODE_RANK", "0"},
                 {"AZUREML_PROCESS_NAME", "rank_0"},
                 {"CUDA_VISIBLE_DEVICES", "0,1"},
                 {"OMP_NUM_THREADS", "4"}},  // 8 cpus / 2 ranks
                {}},
        EnvCase{"mpi_instance0",
                Plan("type: TYPE_MPI process_count_per_instance: 2", 0),
                0,
                {{"AZ_BATCH_MASTER_NODE", "10.0.0.1:29600"},
                 {"AZ_BATCHAI_MPI_MASTER_NODE", "10.0.0.1"},
                 {"AZ_BATCH_HOST_LIST", "10.0.0.1,10.0.0.2"},
                 {"AZUREML_CR_NODE_RANK", "0"},
                 {"KUBETRAIN_JOB", "calm_apple"}},
                kTorchVars},
        EnvCase{"tensorflow_worker",
                Plan("type: TYPE_TENSORFLOW worker_count: 2 parameter_server_count: 1", 1),
                0,
                {{"TF_CONFIG", R"({"cluster":{"worker":["10.0.0.1:29600","10.0.0.2:29601"],)"
                               R"("ps":["10.0.0.1:29602"]},"task":{"type":"worker","index":1}})"},
                 {"AZUREML_PROCESS_NAME", "rank_1"},
                 {"OMP_NUM_THREADS", "3"}},  // one task on instance 1
                kTorchVars},
        EnvCase{"tensorflow_ps",
                Plan("type: TYPE_TENSORFLOW worker_count: 2 parameter_server_count: 1", 0),
                1,
                {{"TF_CONFIG", R"({"cluster":{"worker":["10.0.0.1:29600","10.0.0.2:29601"],)"
                               R"("ps":["10.0.0.1:29602"]},"task":{"type":"ps","index":0}})"},
                 {"AZUREML_PROCESS_NAME", "rank_2"}},
                {}},
        EnvCase{"none",
                Plan("", 1),
                0,
                {{"AZUREML_PROCESS_NAME", "rank_1"},
                 {"AZUREML_CR_NODE_RANK", "1"},
                 {"CUDA_VISIBLE_DEVICES", "2,3"},
                 {"OMP_NUM_THREADS", "3"}},
                {"RANK", "WORLD_SIZE", "MASTER_ADDR", "TF_CONFIG", "AZ_BATCH_HOST_LIST"}}),
    [](const ::testing::TestParamInfo<EnvCase>& info) { return info.param.name; });

TEST(RankEnvTest, LocalRanksPerDistribution) {
  auto globals = [](const v1::InstanceLaunch& l) {
    std::vector<int> g;
    for (const LocalRank& r : LocalRanks(l)) g.push_back(r.global_rank);
    return g;
  };
  EXPECT_THAT(globals(ParsePlan(Plan("type: TYPE_PYTORCH process_count_per_instance: 3", 1))),
              ::testing::ElementsAre(3, 4, 5));
  EXPECT_THAT(globals(ParsePlan(Plan("type: TYPE_MPI process_count_per_instance: 2", 1))),
              ::testing::ElementsAre(2, 3));
  // 3 workers + 2 ps over 2 instances, round-robin: instance 0 gets tasks 0, 2, 4.
  EXPECT_THAT(globals(ParsePlan(
                  Plan("type: TYPE_TENSORFLOW worker_count: 3 parameter_server_count: 2", 0))),
              ::testing::ElementsAre(0, 2, 4));
  EXPECT_THAT(globals(ParsePlan(Plan("", 1))), ::testing::ElementsAre(1));
  // pytorch without process_count_per_instance: one process.
  EXPECT_THAT(globals(ParsePlan(Plan("type: TYPE_PYTORCH", 1))), ::testing::ElementsAre(1));
}

TEST(RankEnvTest, TensorflowWorkerCountDefaultsToInstanceCount) {
  v1::InstanceLaunch launch = ParsePlan(Plan("type: TYPE_TENSORFLOW", 1));
  auto config = nlohmann::json::parse(RankEnvironment(launch, 0)["TF_CONFIG"]);
  EXPECT_EQ(config["cluster"]["worker"].size(), 2u);
  EXPECT_FALSE(config["cluster"].contains("ps"));
  EXPECT_EQ(config["task"]["index"], 1);
}

TEST(RankEnvTest, NoPlacementMeansNoGpusAndOneThread) {
  v1::InstanceLaunch launch = ParsePlan(Plan("type: TYPE_PYTORCH", 0));
  launch.clear_placement();
  auto env = RankEnvironment(launch, 0);
  EXPECT_EQ(env["CUDA_VISIBLE_DEVICES"], "");
  EXPECT_EQ(env["OMP_NUM_THREADS"], "1");
}

TEST(RankEnvTest, MasterPortDefaultsTo29500) {
  v1::InstanceLaunch launch = ParsePlan(Plan("type: TYPE_PYTORCH", 0));
  launch.set_master_port(0);
  EXPECT_EQ(RankEnvironment(launch, 0)["MASTER_PORT"], "29500");
}

TEST(RankEnvTest, JobEnvironmentVariablesWin) {
  v1::InstanceLaunch launch = ParsePlan(Plan("type: TYPE_PYTORCH", 0));
  (*launch.mutable_job()->mutable_environment_variables())["OMP_NUM_THREADS"] = "7";
  (*launch.mutable_job()->mutable_environment_variables())["MY_FLAG"] = "on";
  auto env = RankEnvironment(launch, 0);
  EXPECT_EQ(env["OMP_NUM_THREADS"], "7");
  EXPECT_EQ(env["MY_FLAG"], "on");
}

TEST(RankEnvTest, TrackingUriOnlyWhenTheEndpointExists) {
  v1::InstanceLaunch launch = ParsePlan(Plan("type: TYPE_PYTORCH", 0));
  EXPECT_FALSE(RankEnvironment(launch, 0).count("MLFLOW_TRACKING_URI"));
  RankEnvOptions options;
  options.mlflow_tracking_uri = "http://127.0.0.1:5001";
  EXPECT_EQ(RankEnvironment(launch, 0, options)["MLFLOW_TRACKING_URI"], "http://127.0.0.1:5001");
}

TEST(RankEnvTest, ValidateLaunchNamesTheProblem) {
  v1::InstanceLaunch launch = ParsePlan(Plan("type: TYPE_PYTORCH", 0));
  launch.set_instance_index(2);
  EXPECT_THAT(ValidateLaunch(launch).message(), HasSubstr("instance_index 2"));
  launch.set_instance_index(0);
  launch.add_instance_hosts("10.0.0.3");
  EXPECT_THAT(ValidateLaunch(launch).message(), HasSubstr("3 hosts for 2 instances"));
  launch.mutable_instance_hosts()->RemoveLast();
  launch.mutable_job()->clear_command();
  EXPECT_THAT(ValidateLaunch(launch).message(), HasSubstr("job.command is empty"));
  launch.mutable_job()->clear_name();
  EXPECT_THAT(ValidateLaunch(launch).message(), HasSubstr("job.name"));
}

}  // namespace
}  // namespace kubetrain::agent
