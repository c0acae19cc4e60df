// Test support: find a job's processes on this host by their environment.
//
// Thread-safety: reads /proc only; may be called from any thread.
#ifndef KUBETRAIN_TESTS_TESTING_PROCESSES_H_
#define KUBETRAIN_TESTS_TESTING_PROCESSES_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace kubetrain::testing {

// Host pids of the processes whose environment has KUBETRAIN_JOB=<job> and, when rank >= 0,
// RANK=<rank> or OMPI_COMM_WORLD_RANK=<rank> (a rank's shell wrapper and what it started).
std::vector<pid_t> JobProcesses(const std::string& job, int rank = -1);

}  // namespace kubetrain::testing

#endif  // KUBETRAIN_TESTS_TESTING_PROCESSES_H_
