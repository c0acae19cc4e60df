// mpi-allreduce: the C++ twin of allreduce.py, a plain MPI program run by kubetrain as
// `distribution: mpi` (job-cpp.yml): instance 0's kubetrain-worker starts OpenMPI's mpirun for all
// ranks, so this is exactly what a cluster's `mpirun ./a.out` runs.
//
// Every rank contributes rank+1 to an MPI_Allreduce of 1 Mi doubles and checks the sum; rank 0
// gathers each rank's host and local rank, prints them, and times a few all-reduces. Exits non-zero
// on any disagreement.
#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");

  const int n = 1 << 20;
  std::vector<double> in(n, rank + 1.0), out(n, 0.0);
  MPI_Allreduce(in.data(), out.data(), n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  const double expected = size * (size + 1) / 2.0;
  int bad = 0;
  for (int i = 0; i < n; ++i) bad += out[i] != expected;

  char host[64] = {0};
  gethostname(host, sizeof(host) - 1);
  std::printf("rank %d/%d on %s (local rank %s): allreduce sum=%.0f expected=%.0f %s\n", rank, size,
              host, local ? local : "?", out[0], expected, bad == 0 ? "OK" : "MISMATCH");
  std::fflush(stdout);

  // Timing: 10 all-reduces of the same 8 MiB.
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = MPI_Wtime();
  for (int i = 0; i < 10; ++i) {
    MPI_Allreduce(in.data(), out.data(), n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  }
  const double per = (MPI_Wtime() - t0) / 10;
  int all_bad = 0;
  MPI_Reduce(&bad, &all_bad, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
  if (rank == 0) {
    std::printf("mpi-allreduce: %d ranks agree=%s; 8 MiB all-reduce %.2f ms (busbw %.2f GB/s)\n",
                size, all_bad == 0 ? "yes" : "no", per * 1e3,
                8.0 * n / per * 2.0 * (size - 1) / size / 1e9);
  }
  MPI_Finalize();
  return all_bad == 0 && bad == 0 ? 0 : 1;
}
