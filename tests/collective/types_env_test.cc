#include <cmath>
#include <cstdlib>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/collective/communicator.h"
#include "kubetrain/collective/env.h"
#include "kubetrain/collective/types.h"

namespace kubetrain::collective {
namespace {

using ::testing::HasSubstr;

TEST(CollectiveTypesTest, NamesRoundTrip) {
  for (DataType t : kAllDataTypes) EXPECT_EQ(*ParseDataType(DataTypeName(t)), t);
  for (ReduceOp op : kAllReduceOps) EXPECT_EQ(*ParseReduceOp(ReduceOpName(op)), op);
  EXPECT_FALSE(ParseDataType("int8").ok());
  EXPECT_EQ(*ParseBackend("cpu"), Backend::kCpu);
  EXPECT_FALSE(ParseBackend("tpu").ok());
  EXPECT_EQ(DataTypeSize(DataType::kBFloat16), 2u);
  EXPECT_EQ(DataTypeSize(DataType::kInt64), 8u);
}

TEST(CollectiveTypesTest, HalfPrecisionConversions) {
  for (float v : {0.0f, 1.0f, -2.5f, 1024.0f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f}) {
    EXPECT_EQ(Float16ToFloat(FloatToFloat16(v)), v) << v;
  }
  EXPECT_TRUE(std::isinf(Float16ToFloat(FloatToFloat16(1e6f))));
  EXPECT_TRUE(std::isnan(Float16ToFloat(FloatToFloat16(NAN))));
  EXPECT_EQ(FloatToFloat16(1.0f), 0x3c00);
  for (float v : {0.0f, 1.0f, -3.0f, 256.0f, 1e30f}) {
    EXPECT_NEAR(BFloat16ToFloat(FloatToBFloat16(v)), v, std::fabs(v) / 128) << v;
  }
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3f80);
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(NAN))));
  // Round to nearest even: 1 + 2^-8 is halfway between two bfloat16 values.
  EXPECT_EQ(BFloat16ToFloat(FloatToBFloat16(1.00390625f)), 1.0f);
}

TEST(CollectiveTypesTest, ReduceHostEveryOp) {
  const float a[] = {1, 5, -3}, b[] = {4, 2, 7}, c[] = {-1, 0, 2};
  const void* srcs[] = {a, b, c};
  float out[3];
  ReduceHost(DataType::kFloat32, ReduceOp::kSum, out, srcs, 3, 3, 3);
  EXPECT_THAT(out, ::testing::ElementsAre(4, 7, 6));
  ReduceHost(DataType::kFloat32, ReduceOp::kAvg, out, srcs, 3, 3, 3);
  EXPECT_THAT(out, ::testing::ElementsAre(4.0f / 3, 7.0f / 3, 2));
  ReduceHost(DataType::kFloat32, ReduceOp::kMax, out, srcs, 3, 3, 3);
  EXPECT_THAT(out, ::testing::ElementsAre(4, 5, 7));
  ReduceHost(DataType::kFloat32, ReduceOp::kMin, out, srcs, 3, 3, 3);
  EXPECT_THAT(out, ::testing::ElementsAre(-1, 0, -3));
  const int64_t x[] = {7, -7}, y[] = {0, 0};
  const void* isrcs[] = {x, y};
  int64_t iout[2];
  ReduceHost(DataType::kInt64, ReduceOp::kAvg, iout, isrcs, 2, 2, 2);
  EXPECT_THAT(iout, ::testing::ElementsAre(3, -3));  // C++ integer division
}

class CollectiveEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v :
         {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "OMPI_COMM_WORLD_RANK",
          "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "AZ_BATCHAI_MPI_MASTER_NODE",
          "KUBETRAIN_JOB", "KUBETRAIN_COLLECTIVE_TIMEOUT", "KUBETRAIN_CPU_TRANSPORT"}) {
      unsetenv(v);
    }
  }
};

TEST_F(CollectiveEnvTest, DefaultsToASingleRank) {
  auto o = OptionsFromEnvironment();
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->rank, 0);
  EXPECT_EQ(o->world_size, 1);
  EXPECT_EQ(o->timeout, absl::Seconds(30));
}

TEST_F(CollectiveEnvTest, ReadsTheTorchrunContract) {
  setenv("RANK", "3", 1);
  setenv("WORLD_SIZE", "4", 1);
  setenv("LOCAL_RANK", "1", 1);
  setenv("MASTER_ADDR", "node-0", 1);
  setenv("MASTER_PORT", "29500", 1);
  setenv("KUBETRAIN_JOB", "calm_apple", 1);
  setenv("KUBETRAIN_COLLECTIVE_TIMEOUT", "2.5", 1);
  setenv("KUBETRAIN_CPU_TRANSPORT", "tcp", 1);
  auto o = OptionsFromEnvironment();
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->rank, 3);
  EXPECT_EQ(o->world_size, 4);
  EXPECT_EQ(o->local_rank, 1);
  EXPECT_EQ(o->master_addr, "node-0");
  EXPECT_EQ(o->master_port, 29500);
  EXPECT_EQ(o->job, "calm_apple");
  EXPECT_EQ(o->timeout, absl::Milliseconds(2500));
  EXPECT_EQ(o->cpu_transport, CpuTransport::kTcp);
}

TEST_F(CollectiveEnvTest, FallsBackToOpenMpiVariables) {
  setenv("OMPI_COMM_WORLD_RANK", "1", 1);
  setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
  setenv("AZ_BATCHAI_MPI_MASTER_NODE", "10.0.0.4", 1);
  setenv("MASTER_PORT", "6000", 1);
  auto o = OptionsFromEnvironment();
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->rank, 1);
  EXPECT_EQ(o->world_size, 2);
  EXPECT_EQ(o->master_addr, "10.0.0.4");
}

TEST_F(CollectiveEnvTest, ErrorsNameTheVariable) {
  setenv("RANK", "x", 1);
  EXPECT_THAT(OptionsFromEnvironment().status().message(), HasSubstr("RANK='x'"));
  setenv("RANK", "5", 1);
  setenv("WORLD_SIZE", "2", 1);
  EXPECT_THAT(OptionsFromEnvironment().status().message(), HasSubstr("outside"));
  setenv("RANK", "1", 1);
  EXPECT_THAT(OptionsFromEnvironment().status().message(), HasSubstr("MASTER_PORT"));
  setenv("MASTER_PORT", "1234", 1);
  setenv("KUBETRAIN_COLLECTIVE_TIMEOUT", "-1", 1);
  EXPECT_THAT(OptionsFromEnvironment().status().message(),
              HasSubstr("KUBETRAIN_COLLECTIVE_TIMEOUT"));
}

TEST(CollectiveBackendTest, CompiledBackendsAreReported) {
  EXPECT_TRUE(BackendCompiled(Backend::kCpu));
  EXPECT_EQ(BackendCompiled(Backend::kMpi), KUBETRAIN_COLLECTIVE_HAVE_MPI != 0);
  EXPECT_EQ(BackendCompiled(Backend::kNccl), KUBETRAIN_COLLECTIVE_HAVE_NCCL != 0);
}

}  // namespace
}  // namespace kubetrain::collective
