// Following a job from the terminal: its log lines with a rank prefix as they arrive, its status
// changes (queued and what it waits for, running, the end), then the final status.
//
// Used by `kubetrain job stream` and `kubetrain job create --stream`. It reads through
// Workspace::WatchJob: from a workspace server that is its server stream (grpc://), from the
// embedded workspace it polls. Ctrl-C asks whether to cancel
// the job or detach from it (it detaches without asking when stdin is not a terminal).
//
// Thread-safety: one Follow at a time per process (it installs a SIGINT handler).
#ifndef KUBETRAIN_LAUNCHER_CLI_FOLLOW_H_
#define KUBETRAIN_LAUNCHER_CLI_FOLLOW_H_

#include <ostream>
#include <string>

#include "kubetrain/storage/workspace.h"

namespace kubetrain::cli {

// Returns the exit code: 0 when the job completed, 1 when it failed or was canceled, 130 when the
// user detached with Ctrl-C; 1 too when the job cannot be read.
int FollowJob(storage::Workspace& workspace, const std::string& name, std::ostream& out);

// `kubetrain job logs -f`: prints the job's lines (of `rank` only when >= 0) as they are stored,
// until the job ends. 0, or 1 when the job cannot be read.
int FollowLogs(storage::Workspace& workspace, const std::string& name, int rank, std::ostream& out);

// "[rank 3] text", "[instance 0] text" (agent lines).
std::string FormatLogLine(const v1::LogLine& line);

}  // namespace kubetrain::cli

#endif  // KUBETRAIN_LAUNCHER_CLI_FOLLOW_H_
