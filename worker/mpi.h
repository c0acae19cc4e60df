// distribution: mpi — what instance 0 needs to start every rank of the job with OpenMPI's mpirun.
//
// Instance 0 writes a hostfile (one line per distinct host, slots = processes it hosts, in instance
// order; on the local backend every instance is 127.0.0.1, so one line with all slots) and runs
//   mpirun --hostfile F -np N*P --map-by slot --oversubscribe --bind-to none --tag-output
//          -x VAR... /bin/bash -c '<prologue>; exec /bin/bash -c "$1"' kubetrain-rank '<command>'
// The prologue gives each rank what differs per rank or per instance and mpirun does not set:
// AZUREML_PROCESS_NAME=rank_$OMPI_COMM_WORLD_RANK and, for the instance r / P the rank belongs to,
// AZUREML_CR_NODE_RANK, KUBETRAIN_INSTANCE, CUDA_VISIBLE_DEVICES and OMP_NUM_THREADS (unless the
// job's environment_variables set them). Instances other than 0 start nothing.
//
// Thread-safety: pure functions.
#ifndef KUBETRAIN_WORKER_MPI_H_
#define KUBETRAIN_WORKER_MPI_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "kubetrain/v1/launch.pb.h"
#include "kubetrain/v1/log.pb.h"

namespace kubetrain::worker {

// The hostfile's text.
std::string MpiHostfile(const v1::InstanceLaunch& launch);

// The bash prologue described above (no trailing ';').
std::string MpiRankPrologue(const v1::InstanceLaunch& launch);

// mpirun's argv. `env` is mpirun's environment overlay; its names are forwarded with -x.
std::vector<std::string> MpirunArgv(const v1::InstanceLaunch& launch, const std::string& command,
                                    const std::string& hostfile,
                                    const std::map<std::string, std::string>& env);

// A line of `mpirun --tag-output`: "[1,3]<stdout>:text" → rank 3, STREAM_STDOUT, "text".
struct TaggedLine {
  int rank = -1;
  v1::LogLine::Stream stream = v1::LogLine::STREAM_STDOUT;
  absl::string_view text;
};
std::optional<TaggedLine> ParseTaggedLine(absl::string_view line);

// What mpirun says about the process that ended the job, from its own (untagged) output:
// "Process name: [[x,y],R]" / "Exit code: C", or "process rank R with PID ... exited on signal S".
struct MpirunFailure {
  int rank = -1;
  int exit_code = 0;
  int signal = 0;
};
std::optional<MpirunFailure> ParseMpirunFailure(const std::vector<std::string>& mpirun_lines);

}  // namespace kubetrain::worker

#endif  // KUBETRAIN_WORKER_MPI_H_
