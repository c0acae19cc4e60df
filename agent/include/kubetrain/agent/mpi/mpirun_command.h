// distribution: mpi — what instance 0 needs to start every rank of the job with OpenMPI's mpirun.
//
// Instance 0 writes a hostfile (one line per distinct host, slots = processes it hosts, in instance
// order; on the local backend every instance is 127.0.0.1, so one line with all slots) and runs
//   mpirun --hostfile F -np N*P --map-by slot --oversubscribe --bind-to none --tag-output
//          --mca odls_base_sigkill_timeout 0
//          -x VAR... /bin/bash -c '<prologue>; /bin/bash -c "$1"; <record status>' kubetrain-rank
//          '<command>'
// Fail fast is mpirun's own: when a rank fails it stops the others and exits non-zero, and the
// agent reports the rank mpirun names. With sigkill_timeout 0 mpirun kills the other ranks at once
// (its default waits 1-2 s between SIGTERM and SIGKILL even when they are gone); so for mpi jobs
// plan.grace_period_ms applies to mpirun itself, not to each rank.
// The prologue gives each rank what differs per rank or per instance and mpirun does not set:
// AZUREML_PROCESS_NAME=rank_$OMPI_COMM_WORLD_RANK and, for the instance r / P the rank belongs to,
// AZUREML_CR_NODE_RANK, KUBETRAIN_INSTANCE, CUDA_VISIBLE_DEVICES and OMP_NUM_THREADS (unless the
// job's environment_variables set them). Instances other than 0 start nothing.
//
// Thread-safety: pure functions.
#ifndef KUBETRAIN_AGENT_MPI_MPIRUN_COMMAND_H_
#define KUBETRAIN_AGENT_MPI_MPIRUN_COMMAND_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "kubetrain/v1/launch.pb.h"
#include "kubetrain/v1/log.pb.h"

namespace kubetrain::agent {

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

// Splits what `mpirun --tag-output` writes on one of its streams back into per-rank lines.
// mpirun tags each line of a chunk a rank wrote, but a chunk that does not end in a newline leaves
// the line open and the next chunk's tag follows on the same line:
//   "[1,0]<stdout>:c[1,1]<stdout>:a\n"  is rank 0's "c" (line still open) and rank 1's "a".
// So tags are recognised anywhere; bytes after a tag belong to that rank until its newline; bytes
// at the start of a line without a tag are mpirun's own (rank -1, `untagged_stream`). Each
// (rank, stream) assembles its own lines, so a line split over chunks comes out whole.
//
// Thread-safety: not thread-safe; one instance per mpirun output stream.
class TaggedOutputDemux {
 public:
  using Emit = std::function<void(int rank, v1::LogLine::Stream stream, absl::string_view line)>;
  explicit TaggedOutputDemux(v1::LogLine::Stream untagged_stream, size_t max_line_bytes = 65536)
      : untagged_stream_(untagged_stream), max_line_bytes_(max_line_bytes) {}

  void Feed(absl::string_view data, const Emit& emit);
  void Finish(const Emit& emit);  // end of stream: emits every partial line

 private:
  struct Owner {
    int rank;
    v1::LogLine::Stream stream;
    bool operator<(const Owner& o) const {
      return rank != o.rank ? rank < o.rank : stream < o.stream;
    }
  };
  v1::LogLine::Stream untagged_stream_;
  size_t max_line_bytes_;
  std::string pending_;                   // bytes that may start a tag not yet complete
  std::optional<Owner> current_;          // owner of the bytes now; nullopt: mpirun's own
  std::map<Owner, std::string> partial_;  // open lines
};

// What mpirun says about the process that ended the job, from its own (untagged) output:
// "Process name: [[x,y],R]" / "Exit code: C", or "process rank R with PID ... exited on signal S".
struct MpirunFailure {
  int rank = -1;
  int exit_code = 0;
  int signal = 0;
};
std::optional<MpirunFailure> ParseMpirunFailure(const std::vector<std::string>& mpirun_lines);

// The rank wrapper writes "<exit status> <$EPOCHREALTIME>" to $KUBETRAIN_MPI_STATUS_DIR/<rank> when
// the command ends (on hosts that share the directory with the agent: the local backend). Returns
// the earliest non-zero one (a status above 128 is read as 128 + signal, the shell's convention).
std::optional<MpirunFailure> FirstFailedRank(const std::string& status_dir);

// Every status recorded so far, by rank.
struct RankExit {
  int status = 0;   // the shell's $?: exit code, or 128 + signal
  double when = 0;  // $EPOCHREALTIME
};
std::map<int, RankExit> ReadRankExits(const std::string& status_dir);

}  // namespace kubetrain::agent

#endif  // KUBETRAIN_AGENT_MPI_MPIRUN_COMMAND_H_
