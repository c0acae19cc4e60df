// MPI backend tests. Run under a real mpirun (see CMakeLists.txt: ctest launches
// `mpirun -np 2` and `-np 3` of this binary); every rank runs every test.
#include "kubetrain/collective/mpi.h"

#include <mpi.h>

#include "gtest/gtest.h"
#include "tests/collective/rank_harness.h"

namespace kubetrain::collective {
namespace {

TEST(CollectiveMpiTest, RunsUnderMpirun) {
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_GE(size, 2) << "launch this binary with mpirun -np N (N >= 2)";
}

TEST(CollectiveMpiTest, EveryOpDtypeAndSizeMatchesTheReference) {
  auto comm = CreateMpiCommunicator(MPI_COMM_WORLD);
  ASSERT_TRUE(comm.ok()) << comm.status();
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_EQ((*comm)->rank(), rank);
  EXPECT_EQ((*comm)->world_size(), size);
  EXPECT_EQ((*comm)->backend(), Backend::kMpi);
  EXPECT_EQ(testing::CheckAllOps(**comm), "");
}

TEST(CollectiveMpiTest, FactoryUsesMpiCommWorld) {
  auto comm = CreateCommunicator(Backend::kMpi, CommunicatorOptions());
  ASSERT_TRUE(comm.ok()) << comm.status();
  int64_t v = (*comm)->rank() + 1;
  ASSERT_TRUE((*comm)->AllReduce(&v, 1, DataType::kInt64, ReduceOp::kMax)->Wait().ok());
  EXPECT_EQ(v, (*comm)->world_size());
  EXPECT_TRUE((*comm)->Barrier()->Wait().ok());
}

TEST(CollectiveMpiTest, CpuBackendBootstrappedOverMpi) {
  auto comm = CreateCommunicatorFromMpi(Backend::kCpu, MPI_COMM_WORLD);
  ASSERT_TRUE(comm.ok()) << comm.status();
  EXPECT_EQ((*comm)->backend(), Backend::kCpu);
  testing::CheckOptions o;
  o.types = {DataType::kFloat32, DataType::kBFloat16, DataType::kInt64};
  EXPECT_EQ(testing::CheckAllOps(**comm, o), "");
}

TEST(CollectiveMpiTest, StuckPeerTimesOutInsteadOfHanging) {
  CommunicatorOptions o;
  o.timeout = absl::Seconds(1);
  auto comm = CreateMpiCommunicator(MPI_COMM_WORLD, o);
  ASSERT_TRUE(comm.ok());
  int64_t v = 1;
  if ((*comm)->rank() == 0) {
    const absl::Time start = absl::Now();
    std::shared_ptr<Work> w = (*comm)->AllReduce(&v, 1, DataType::kInt64, ReduceOp::kSum);
    absl::Status s = w->Wait();
    EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
    EXPECT_LT(absl::Now() - start, absl::Seconds(2.5));
    while (!w->Test()) absl::SleepFor(absl::Milliseconds(1));  // the others join late
  } else {
    absl::SleepFor(absl::Seconds(3));  // stuck outside the collective
    EXPECT_TRUE((*comm)->AllReduce(&v, 1, DataType::kInt64, ReduceOp::kSum)->Wait().ok());
  }
  EXPECT_EQ(v, (*comm)->world_size());
}

TEST(CollectiveMpiTest, OversizedCountIsRejected) {
  auto comm = CreateMpiCommunicator(MPI_COMM_WORLD);
  ASSERT_TRUE(comm.ok());
  float dummy = 0;
  absl::Status s =
      (*comm)
          ->AllReduce(&dummy, &dummy, size_t{1} << 32, DataType::kFloat32, ReduceOp::kSum)
          ->Wait();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kubetrain::collective

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rc = RUN_ALL_TESTS();
  // Any failing rank fails the run.
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
