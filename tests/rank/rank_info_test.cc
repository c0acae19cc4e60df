#include "kubetrain/rank/rank_info.h"

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/collective/env.h"

namespace kubetrain::rank {
namespace {

using ::testing::HasSubstr;

// Clears every rank variable, then sets `vars`; restores nothing (each test sets what it needs).
void SetRankEnv(const std::vector<std::pair<std::string, std::string>>& vars) {
  for (const char* n :
       {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK",
        "AZUREML_CR_NODE_RANK", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
        "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", "MASTER_PORT", "KUBETRAIN_JOB",
        kRankVar, kWorldSizeVar, kLocalRankVar, kLocalWorldSizeVar}) {
    unsetenv(n);
  }
  for (const auto& [k, v] : vars) setenv(k.c_str(), v.c_str(), 1);
}

TEST(RankInfoTest, PyTorchVariables) {
  SetRankEnv({{"RANK", "5"},
              {"WORLD_SIZE", "8"},
              {"LOCAL_RANK", "1"},
              {"LOCAL_WORLD_SIZE", "4"},
              {"NODE_RANK", "1"},
              {"KUBETRAIN_JOB", "j1"}});
  absl::StatusOr<RankInfo> r = RankInfo::FromEnvironment();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->source, RankInfo::Source::kPyTorch);
  EXPECT_EQ(r->rank, 5);
  EXPECT_EQ(r->world_size, 8);
  EXPECT_EQ(r->local_rank, 1);
  EXPECT_EQ(r->local_world_size, 4);
  EXPECT_EQ(r->node_rank, 1);
  EXPECT_EQ(r->job, "j1");
}

// distribution: mpi — mpirun sets only OpenMPI's variables (the bug: every rank was 0 of 1).
TEST(RankInfoTest, OpenMpiVariablesWhenNoPyTorchOnes) {
  SetRankEnv({{"OMPI_COMM_WORLD_RANK", "3"},
              {"OMPI_COMM_WORLD_SIZE", "4"},
              {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
              {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
              {"AZUREML_CR_NODE_RANK", "0"}});
  absl::StatusOr<RankInfo> r = RankInfo::FromEnvironment();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->source, RankInfo::Source::kOpenMpi);
  EXPECT_EQ(r->rank, 3);
  EXPECT_EQ(r->world_size, 4);
  EXPECT_EQ(r->local_rank, 1);
  EXPECT_EQ(r->local_world_size, 2);
  EXPECT_EQ(r->node_rank, 1);  // mpirun's placement, not the launching instance's node rank
}

// No distribution (or tensorflow): the agent's own variables say who the rank is.
TEST(RankInfoTest, KubetrainVariablesWhenNoFrameworkOnes) {
  SetRankEnv({{kRankVar, "2"},
              {kWorldSizeVar, "3"},
              {kLocalRankVar, "0"},
              {kLocalWorldSizeVar, "1"},
              {"AZUREML_CR_NODE_RANK", "2"}});
  absl::StatusOr<RankInfo> r = RankInfo::FromEnvironment();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->source, RankInfo::Source::kKubetrain);
  EXPECT_EQ(r->rank, 2);
  EXPECT_EQ(r->world_size, 3);
  EXPECT_EQ(r->node_rank, 2);
}

TEST(RankInfoTest, NoRankEnvironmentIsNotFoundWithTheFix) {
  SetRankEnv({});
  absl::StatusOr<RankInfo> r = RankInfo::FromEnvironment();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsNotFound(r.status()));
  EXPECT_THAT(r.status().message(), HasSubstr("OMPI_COMM_WORLD_RANK"));
  EXPECT_THAT(r.status().message(), HasSubstr("torchrun"));
  EXPECT_EQ(RankInfo::SingleProcess().world_size, 1);
}

// The message of FromEnvironment's error for `vars`.
std::string ErrorFor(const std::vector<std::pair<std::string, std::string>>& vars) {
  SetRankEnv(vars);
  absl::StatusOr<RankInfo> r = RankInfo::FromEnvironment();
  return r.ok() ? "ok" : std::string(r.status().message());
}

TEST(RankInfoTest, MalformedOrInconsistentValuesNameTheVariable) {
  EXPECT_THAT(ErrorFor({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), HasSubstr("RANK='x'"));
  EXPECT_THAT(ErrorFor({{"RANK", "2"}, {"WORLD_SIZE", "2"}}),
              HasSubstr("RANK=2 is outside [0, WORLD_SIZE=2)"));
  EXPECT_THAT(ErrorFor({{"RANK", "0"}}), HasSubstr("WORLD_SIZE is not"));
  EXPECT_THAT(ErrorFor({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "0"}}),
              HasSubstr("OMPI_COMM_WORLD_SIZE=0 must be >= 1"));
}

// The collective library reads the same RankInfo (no second parser of the rank variables).
TEST(RankInfoTest, CollectiveOptionsComeFromRankInfo) {
  SetRankEnv({{"OMPI_COMM_WORLD_RANK", "1"},
              {"OMPI_COMM_WORLD_SIZE", "2"},
              {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
              {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
              {"MASTER_PORT", "29500"}});
  absl::StatusOr<collective::CommunicatorOptions> o = collective::OptionsFromEnvironment();
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->rank, 1);
  EXPECT_EQ(o->world_size, 2);
  EXPECT_EQ(o->local_rank, 1);
  SetRankEnv({});
  o = collective::OptionsFromEnvironment();
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->world_size, 1);
}

}  // namespace
}  // namespace kubetrain::rank
