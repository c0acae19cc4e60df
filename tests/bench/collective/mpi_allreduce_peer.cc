// The OpenMPI peer of bench_allreduce: times plain MPI_Allreduce (float32, sum, out-of-place)
// exactly as kubetrain-collbench times the kubetrain backends, and prints the same CSV rows:
//   size,count,type,op,time_us,algbw_gbs,busbw_gbs,check
// Usage: mpirun -np 2 mpi_allreduce_peer 65536:500,1048576:100,...
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, n = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  std::string cases = argc > 1 ? argv[1] : "1048576:50";
  const int warmup = 5;
  size_t start = 0;
  if (rank == 0) std::printf("size,count,type,op,time_us,algbw_gbs,busbw_gbs,check\n");
  while (start <= cases.size()) {
    size_t comma = cases.find(',', start);
    if (comma == std::string::npos) comma = cases.size();
    std::string item = cases.substr(start, comma - start);
    start = comma + 1;
    size_t colon = item.find(':');
    const size_t bytes = std::strtoull(item.c_str(), nullptr, 10);
    const int iters = colon == std::string::npos ? 20 : std::atoi(item.c_str() + colon + 1);
    const size_t count = bytes / sizeof(float);
    std::vector<float> send(count, static_cast<float>(rank + 1)), recv(count, 0.0f);
    MPI_Allreduce(send.data(), recv.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
    bool ok = true;
    const int rank_sum = n * (n + 1) / 2;  // sum of rank + 1 over the ranks (exact)
    const float want = static_cast<float>(rank_sum);
    for (size_t i = 0; i < count && ok; ++i) ok = recv[i] == want;
    for (int i = 0; i < warmup; ++i) {
      MPI_Allreduce(send.data(), recv.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM,
                    MPI_COMM_WORLD);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    for (int i = 0; i < iters; ++i) {
      MPI_Allreduce(send.data(), recv.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM,
                    MPI_COMM_WORLD);
    }
    const double us = (MPI_Wtime() - t0) * 1e6 / iters;
    const double algbw = static_cast<double>(bytes) / us / 1e3;
    if (rank == 0) {
      std::printf("%zu,%zu,float32,sum,%.3f,%.4f,%.4f,%s\n", bytes, count, us, algbw,
                  algbw * 2.0 * (n - 1) / n, ok ? "OK" : "FAIL");
      std::fflush(stdout);
    }
  }
  MPI_Finalize();
  return 0;
}
