// Launch overhead: wall time from `kubetrain job create --stream` of a 4-rank job of `true`
// (2 instances x 2 processes, pytorch env contract, local compute) to its completion, against
// `mpirun -np 4 true` measured in the same run on the same machine. Prints medians and the ratio.
//
// Usage: bench_launch [iterations]   (default 15)
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

double RunSeconds(const std::string& cmd) {
  auto start = std::chrono::steady_clock::now();
  int rc = std::system((cmd + " > /dev/null 2>&1").c_str());
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (rc != 0) {
    std::fprintf(stderr, "bench_launch: command failed (%d): %s\n", rc, cmd.c_str());
    std::exit(1);
  }
  return s;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int iterations = argc > 1 ? std::atoi(argv[1]) : 15;
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("kt-bench-launch-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string job = (dir / "true.yml").string();
  std::ofstream(job) << "command: 'true'\n"
                        "distribution: {type: pytorch, process_count_per_instance: 2}\n"
                        "resources: {instance_count: 2}\n";
  std::string kt = std::string("KUBETRAIN_WORKSPACE=") + (dir / "ws").string() + " " +
                   KUBETRAIN_BIN_DIR + "/kubetrain job create --stream -f " + job;
  std::string mpi = "mpirun -np 4 --oversubscribe --bind-to none true";
  RunSeconds(kt);  // warm caches (binaries, workspace schema)
  RunSeconds(mpi);
  std::vector<double> kts, mpis;
  for (int i = 0; i < iterations; ++i) {  // interleaved so both see the same machine state
    kts.push_back(RunSeconds(kt));
    mpis.push_back(RunSeconds(mpi));
  }
  double k = Median(kts), m = Median(mpis);
  std::printf(
      "launch 4 ranks of `true` (median of %d): kubetrain job create --stream %.0f ms | "
      "peer mpirun -np 4 %.0f ms | ratio %.2fx | difference %+.0f ms (target <= +300 ms)\n",
      iterations, k * 1e3, m * 1e3, k / m, (k - m) * 1e3);
  std::filesystem::remove_all(dir);
  return 0;
}
