// End to end: a real PyTorch DDP job (examples/pytorch-ddp/train.py, urllib only) logs its
// loss per step from rank 0 to MLFLOW_TRACKING_URI, the kubetrain-worker's MLflow endpoint; the
// points reach the workspace and `kubetrain job metrics` / `job show` show them.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/command.h"

namespace kubetrain {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using ::testing::HasSubstr;

class MetricsJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kt-metrics-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  CommandResult Kt(const std::string& args) {
    return testing::RunCommand("KUBETRAIN_WORKSPACE=" + (dir_ / "ws").string() + " " +
                               testing::KubetrainCli() + args);
  }
  fs::path dir_;
};

TEST_F(MetricsJobTest, DdpJobLogsLossPerStepThroughTheMlflowEndpoint) {
  const std::string script = std::string(KUBETRAIN_SOURCE_DIR) + "/examples/pytorch-ddp/train.py";
  fs::path yml = dir_ / "job.yml";
  std::ofstream(yml) << "name: ddp-metrics\n"
                        "display_name: ddp with metrics\n"
                        "experiment_name: metrics-it\n"
                        "command: /usr/bin/python3 "
                     << script
                     << "\n"
                        "environment_variables: {STEPS: \"30\"}\n"
                        "distribution: {type: pytorch, process_count_per_instance: 2}\n"
                        "resources: {instance_count: 1}\n";
  CommandResult run = Kt("job create -f " + yml.string() + " --stream");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("logged 30 loss points"));
  EXPECT_THAT(run.output, HasSubstr("history has 30 points"));  // metrics/get-history

  CommandResult table = Kt("job metrics ddp-metrics");
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr("KEY"));
  EXPECT_THAT(table.output, HasSubstr("loss"));
  EXPECT_THAT(table.output, HasSubstr("final_loss"));

  CommandResult json = Kt("job metrics ddp-metrics -o json");
  ASSERT_EQ(json.exit_code, 0) << json.output;
  nlohmann::json summary = nlohmann::json::parse(json.output, nullptr, false);
  ASSERT_TRUE(summary.is_array()) << json.output;
  bool found = false;
  for (const auto& s : summary) {
    if (s["key"] != "loss") continue;
    found = true;
    EXPECT_EQ(s["count"], 30);
    EXPECT_EQ(s["step"], 29);
    EXPECT_LT(s["latest"].get<double>(), s["max"].get<double>());  // it trained
  }
  EXPECT_TRUE(found) << json.output;

  CommandResult csv = Kt("job metrics ddp-metrics --key loss -o csv");
  ASSERT_EQ(csv.exit_code, 0) << csv.output;
  EXPECT_EQ(std::count(csv.output.begin(), csv.output.end(), '\n'), 31) << csv.output;
  EXPECT_THAT(csv.output, HasSubstr("step,value,timestamp_ms,rank\n0,"));

  CommandResult chart = Kt("job metrics ddp-metrics --key loss");
  ASSERT_EQ(chart.exit_code, 0) << chart.output;
  EXPECT_THAT(chart.output, HasSubstr("loss: 30 point(s), steps 0..29"));
  EXPECT_THAT(chart.output, HasSubstr("█"));

  CommandResult missing = Kt("job metrics ddp-metrics --key nope");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.output, HasSubstr("its metrics are: final_loss, loss"));

  CommandResult show = Kt("job show ddp-metrics");
  ASSERT_EQ(show.exit_code, 0) << show.output;
  EXPECT_THAT(show.output, HasSubstr("Metrics (latest"));
  EXPECT_THAT(show.output, HasSubstr("final_loss"));
  CommandResult show_json = Kt("job show ddp-metrics -o json");
  nlohmann::json shown = nlohmann::json::parse(show_json.output, nullptr, false);
  ASSERT_TRUE(shown.is_object()) << show_json.output;
  EXPECT_EQ(shown["metrics"].size(), 2u);
}

TEST_F(MetricsJobTest, JobWithoutMetricsSaysSo) {
  fs::path yml = dir_ / "job.yml";
  std::ofstream(yml) << "name: quiet\ncommand: test -n \"$MLFLOW_TRACKING_URI\"\n";
  CommandResult run = Kt("job create -f " + yml.string() + " --stream");
  ASSERT_EQ(run.exit_code, 0) << run.output;  // the rank saw MLFLOW_TRACKING_URI
  CommandResult table = Kt("job metrics quiet");
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr("has logged no metrics"));
  CommandResult bad = Kt("job metrics quiet -o yaml");
  EXPECT_NE(bad.exit_code, 0);
  CommandResult unknown = Kt("job metrics no-such-job");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_THAT(unknown.output, HasSubstr("not found"));
}

TEST_F(MetricsJobTest, CppRankLogsAMillionPointsAndAllReachTheWorkspace) {
  fs::path yml = dir_ / "job.yml";
  std::ofstream(yml) << "name: cpp-million\ncommand: " << LOG_POINTS_BIN << " 1000000\n";
  CommandResult run = Kt("job create -f " + yml.string() + " --stream");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("logged 1000000 points"));
  CommandResult json = Kt("job metrics cpp-million -o json");
  ASSERT_EQ(json.exit_code, 0) << json.output;
  nlohmann::json summary = nlohmann::json::parse(json.output, nullptr, false);
  ASSERT_TRUE(summary.is_array() && summary.size() == 1u) << json.output;
  EXPECT_EQ(summary[0]["key"], "cpp/loss");
  EXPECT_EQ(summary[0]["count"], 1000000);
  EXPECT_EQ(summary[0]["step"], 999999);
  EXPECT_EQ(summary[0]["max"], 1.0);
  CommandResult show = Kt("job show cpp-million");
  EXPECT_THAT(show.output, HasSubstr("cpp/loss"));
}

TEST_F(MetricsJobTest, PointsLoggedBeforeACrashReachTheWorkspace) {
  fs::path yml = dir_ / "job.yml";
  std::ofstream(yml) << "name: cpp-crash\ncommand: " << LOG_POINTS_BIN << " 100000 abort\n";
  CommandResult run = Kt("job create -f " + yml.string() + " --stream");
  EXPECT_NE(run.exit_code, 0) << run.output;  // the rank died of SIGABRT
  CommandResult json = Kt("job metrics cpp-crash -o json");
  ASSERT_EQ(json.exit_code, 0) << json.output;
  nlohmann::json summary = nlohmann::json::parse(json.output, nullptr, false);
  ASSERT_TRUE(summary.is_array() && summary.size() == 1u) << json.output << run.output;
  EXPECT_EQ(summary[0]["count"], 100000);
}

}  // namespace
}  // namespace kubetrain
