// End to end: the ranks of a 2-instance job save checkpoints with kubetrain::checkpoint into
// KUBETRAIN_CHECKPOINT_DIR; instance 0's agent records each one in the workspace, and
// `kubetrain job checkpoints` / `job show` list them all — also those retention has removed.
#include <unistd.h>

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

class CheckpointJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kt-ckpt-job-" + std::to_string(getpid()));
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

TEST_F(CheckpointJobTest, EveryCheckpointIsRecordedAndListed) {
  fs::path yml = dir_ / "job.yml";
  std::ofstream(yml) << "name: ckpt-job\n"
                        "command: " SAVE_CHECKPOINTS_BIN
                        " 5\n"
                        "distribution: {type: pytorch, process_count_per_instance: 1}\n"
                        "resources: {instance_count: 2}\n";
  CommandResult run = Kt("job create -f " + yml.string() + " --stream");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("rank 1 saved 5 checkpoints"));

  CommandResult json = Kt("job checkpoints ckpt-job -o json");
  ASSERT_EQ(json.exit_code, 0) << json.output;
  nlohmann::json list = nlohmann::json::parse(json.output, nullptr, false);
  ASSERT_TRUE(list.is_array()) << json.output;
  ASSERT_EQ(list.size(), 5u) << json.output;  // retention kept 2 on disk; the records stay
  const int64_t shard = (1 << 16) * 4 + (1 << 15) * 4;
  for (size_t i = 0; i < list.size(); ++i) {
    EXPECT_EQ(list[i]["job"], "ckpt-job");
    EXPECT_EQ(list[i]["step"], std::to_string(10 * (i + 1)));  // int64 as a JSON string
    EXPECT_EQ(list[i]["size_bytes"], std::to_string(2 * shard));
    EXPECT_THAT(list[i]["location"].get<std::string>(),
                HasSubstr("/checkpoints/step-" + std::to_string(10 * (i + 1))));
  }
  EXPECT_FALSE(fs::exists(list[0]["location"].get<std::string>()));  // retired by retention
  EXPECT_EQ(list[0].value("retired", false), true) << json.output;
  EXPECT_TRUE(fs::exists(list[4]["location"].get<std::string>()));
  EXPECT_EQ(list[4].value("retired", false), false) << json.output;

  CommandResult table = Kt("job checkpoints ckpt-job");
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr("STEP"));
  EXPECT_THAT(table.output, HasSubstr("768Ki"));
  EXPECT_THAT(table.output, HasSubstr("step-10 (removed by retention)"));

  CommandResult show = Kt("job show ckpt-job");
  ASSERT_EQ(show.exit_code, 0) << show.output;
  EXPECT_THAT(show.output, HasSubstr("checkpoints"));
  EXPECT_THAT(show.output, HasSubstr("step-50"));

  CommandResult missing = Kt("job checkpoints no-such-job");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.output, HasSubstr("no-such-job"));
}

// distribution: mpi — ranks started by mpirun see only OpenMPI's variables (no RANK/WORLD_SIZE).
// With default options every rank must still write its own shard (kubetrain::rank::RankInfo);
// before, each believed it was rank 0 of 1 and the shards collided.
TEST_F(CheckpointJobTest, MpiRanksWithDefaultOptionsWriteOneShardEach) {
  fs::path yml = dir_ / "mpi.yml";
  std::ofstream(yml) << "name: ckpt-mpi\n"
                        "command: " SAVE_CHECKPOINTS_BIN
                        " 3\n"
                        "distribution: {type: mpi, process_count_per_instance: 2}\n"
                        "resources: {instance_count: 2}\n";
  CommandResult run = Kt("job create -f " + yml.string() + " --stream");
  ASSERT_EQ(run.exit_code, 0) << run.output;
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_THAT(run.output, HasSubstr("rank " + std::to_string(rank) + " saved 3 checkpoints"));
  }
  CommandResult json = Kt("job checkpoints ckpt-mpi -o json");
  ASSERT_EQ(json.exit_code, 0) << json.output;
  nlohmann::json list = nlohmann::json::parse(json.output, nullptr, false);
  ASSERT_TRUE(list.is_array() && !list.empty()) << json.output;
  const fs::path newest = list.back()["location"].get<std::string>();
  ASSERT_TRUE(fs::is_directory(newest)) << newest;
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_TRUE(fs::exists(newest / ("shard-" + std::to_string(rank) + ".bin")))
        << "rank " << rank << " has no shard in " << newest;
  }
  EXPECT_FALSE(fs::exists(newest / "shard-4.bin"));
  const int64_t shard = (1 << 16) * 4 + (1 << 15) * 4;
  EXPECT_EQ(list.back()["size_bytes"], std::to_string(4 * shard)) << json.output;
}

}  // namespace
}  // namespace kubetrain
