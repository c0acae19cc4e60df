// Test helpers: run a body in N forked rank processes, and the all-ops correctness check shared
// by the CPU, MPI and NCCL tests.
#ifndef KUBETRAIN_TESTS_COLLECTIVE_RANK_HARNESS_H_
#define KUBETRAIN_TESTS_COLLECTIVE_RANK_HARNESS_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "kubetrain/collective/communicator.h"

namespace kubetrain::collective::testing {

// A free TCP port on this host (bind to 0, read back, close).
int FreePort();

struct RankOutcome {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;      // the signal that ended it, or 0
  std::string output;  // what the body returned
};

struct RunOptions {
  absl::Duration timeout = absl::Seconds(120);       // kill everything after this
  int kill_rank = -1;                                // SIGKILL this rank ...
  absl::Duration kill_after = absl::ZeroDuration();  // ... this long after the start
  absl::Time* killed_at = nullptr;                   // set to when it was killed
};

// Forks `n` processes running body(rank). The body's returned text comes back verbatim in
// RankOutcome::output; the child exits 1 when it starts with "FAIL", else 0. The parent reaps
// children promptly
// (so a killed rank does not linger as a zombie) and returns one outcome per rank.
std::vector<RankOutcome> RunRanks(int n, const std::function<std::string(int rank)>& body,
                                  const RunOptions& options = RunOptions());

// Host or device memory for the checks.
struct MemoryOps {
  std::function<void*(size_t)> alloc;
  std::function<void(void*)> free;
  std::function<void(void* dst, const void* host, size_t)> to_device;
  std::function<void(void* host, const void* src, size_t)> to_host;
};
MemoryOps HostMemory();

struct CheckOptions {
  std::vector<size_t> counts = {0, 1, 5, 1031, 40009};
  std::vector<DataType> types = {std::begin(kAllDataTypes), std::end(kAllDataTypes)};
  std::vector<ReduceOp> ops = {std::begin(kAllReduceOps), std::end(kAllReduceOps)};
  bool in_place = true;  // also check the in-place forms
  MemoryOps memory = HostMemory();
};

// Runs every collective x dtype x op x count (and in-place forms) on `comm` and compares with
// the expected values. Returns "" when all pass, else "FAIL: ..." with the first mismatches.
std::string CheckAllOps(Communicator& comm, const CheckOptions& options = CheckOptions());

}  // namespace kubetrain::collective::testing

#endif  // KUBETRAIN_TESTS_COLLECTIVE_RANK_HARNESS_H_
