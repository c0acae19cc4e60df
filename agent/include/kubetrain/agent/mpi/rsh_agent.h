// MPI between pods without SSH: `kubetrain-worker rsh` is OpenMPI's remote-shell agent
// (`mpirun --mca plm_rsh_agent "kubetrain-worker rsh"`), and the agent of every instance other
// than 0 serves it.
//
//   mpirun (instance 0) ── runs ──► kubetrain-worker rsh HOST orted ...      (the client)
//                                       │ TCP HOST:$KUBETRAIN_RSH_PORT, the job's token
//                                       ▼
//   kubetrain-worker agent (instance i) ── /bin/sh -c "orted ..." ──► the ranks of instance i
//
// The client joins the words after HOST with spaces (as ssh does), connects (retrying for up to
// `connect_timeout` while the remote pod starts), authenticates with $KUBETRAIN_JOB_TOKEN (from the
// job's Secret), relays the remote command's stdout / stderr, and exits with its exit status (255
// when the connection fails or the token is refused, as ssh does).
//
// Wire format (both directions): frames of one type byte, a 4-byte big-endian length, the bytes.
// Client → server: 'v' "KTRSH1", 't' token, 'c' command. Server → client: 'o' stdout, 'e' stderr,
// 'x' the exit status as decimal text (last frame).
//
// The server runs one command to its end (one orted per instance and job) and returns its exit
// status; a connection with a wrong token is answered with 'e' + 'x' 255 and the server keeps
// waiting; a cancel (SIGTERM to the agent) kills the command's process group.
//
// Thread-safety: functions; ServeOneLaunch blocks the calling thread.
#ifndef KUBETRAIN_AGENT_MPI_RSH_AGENT_H_
#define KUBETRAIN_AGENT_MPI_RSH_AGENT_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kubetrain/agent/ranks/cancel.h"

namespace kubetrain::agent {

inline constexpr char kJobTokenEnv[] = "KUBETRAIN_JOB_TOKEN";
inline constexpr char kRshPortEnv[] = "KUBETRAIN_RSH_PORT";

// `kubetrain-worker rsh HOST COMMAND...`: `args` are the words after "rsh". Reads the port and the
// token from the environment. Returns the process exit code.
int RunRshClient(const std::vector<std::string>& args,
                 absl::Duration connect_timeout = absl::Seconds(120));

struct RshServerOptions {
  int port = 0;                                 // where to listen (all addresses)
  std::string token;                            // what clients must present
  std::function<void(const std::string&)> log;  // one line per event (connections, the command)
};

// Serves until one authenticated command has run to its end; returns its exit status (128 + N
// when killed by signal N). Cancelled when `cancel` is requested first.
absl::StatusOr<int> ServeOneLaunch(const RshServerOptions& options, CancelToken* cancel);

// The job token from the environment ("" when unset).
std::string JobTokenFromEnv();

}  // namespace kubetrain::agent

#endif  // KUBETRAIN_AGENT_MPI_RSH_AGENT_H_
