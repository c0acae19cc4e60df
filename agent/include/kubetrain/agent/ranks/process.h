// Spawning and tearing down rank processes.
//
// Each rank runs in its own process group (pgid = its pid) so the whole tree it starts can be
// signalled at once; it gets PR_SET_PDEATHSIG(SIGKILL) so it dies with the agent's spawning thread
// (call Spawn from the thread that lives as long as the agent: the main thread); its stdout and
// stderr are pipes read by the agent; its cpu affinity is set from the placement when given.
//
// Ownership: a ChildProcess owns its two pipe read ends (closed by CloseFds or the destructor) but
// not the process: the caller waits for it (see Supervisor). Thread-safety: Spawn uses fork(); call
// it before starting helper threads or accept that only async-signal-safe work happens in the child
// (which is all Spawn does between fork and exec).
#ifndef KUBETRAIN_AGENT_RANKS_PROCESS_H_
#define KUBETRAIN_AGENT_RANKS_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kubetrain::agent {

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is the program (absolute path or found in PATH)
  // Variables set on top of the agent's own environment (an empty value sets it to "").
  std::map<std::string, std::string> env;
  std::string cwd;              // working directory; empty keeps the agent's
  std::vector<int> cpu_ids;     // sched_setaffinity; empty leaves it alone
  bool die_with_parent = true;  // PR_SET_PDEATHSIG(SIGKILL)
};

class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(pid_t pid, int stdout_fd, int stderr_fd)
      : pid_(pid), stdout_fd_(stdout_fd), stderr_fd_(stderr_fd) {}
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const { return pid_; }            // also the process group id
  int stdout_fd() const { return stdout_fd_; }  // non-blocking read end; -1 once closed
  int stderr_fd() const { return stderr_fd_; }
  void CloseStdout();
  void CloseStderr();

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
};

// Starts a process as described. Fails (and leaves nothing running) when fork fails or when the
// child could not chdir / exec — the error names the program, the directory and errno.
absl::StatusOr<ChildProcess> Spawn(const SpawnOptions& options);

// Sends `signal` to every process in group `pgid`. ESRCH (the group is gone) is not an error.
void SignalGroup(pid_t pgid, int signal);

// Whether any process is still in group `pgid` (kill(-pgid, 0)).
bool GroupAlive(pid_t pgid);

// OrphanGuard: a small helper process that outlives the agent only to SIGKILL the ranks' process
// groups if the agent dies without tearing them down (SIGKILL, OOM kill, crash). PDEATHSIG covers a
// rank's first process; the guard covers the rest of its group (the processes a rank's shell
// forked). The agent registers each rank's pgid (Add) and unregisters it once the group is gone
// (Remove); destroying the guard tells it to exit without killing anything. The guard runs in its
// own process group (so a kill of the agent's group does not take it along) and exits as soon as
// the agent is gone or done.
//
// Ownership: owns the helper process and its pipe. Thread-safety: one thread.
class OrphanGuard {
 public:
  // Forks the guard. Call before spawning ranks.
  static absl::StatusOr<std::unique_ptr<OrphanGuard>> Start();
  ~OrphanGuard();
  OrphanGuard(const OrphanGuard&) = delete;
  OrphanGuard& operator=(const OrphanGuard&) = delete;

  void Add(pid_t pgid);
  void Remove(pid_t pgid);
  pid_t pid() const { return pid_; }

 private:
  OrphanGuard(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  void Send(int32_t value);
  pid_t pid_;
  int fd_;
};

// The pids of all living descendants of this process (children, grandchildren, ...), from /proc.
// Empty when /proc belongs to another PID namespace than ours (then it cannot be trusted).
std::vector<pid_t> LiveDescendants();

}  // namespace kubetrain::agent

#endif  // KUBETRAIN_AGENT_RANKS_PROCESS_H_
