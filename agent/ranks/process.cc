#include "kubetrain/agent/ranks/process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace kubetrain::agent {
namespace {

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// What a child reports through the exec-error pipe when it could not start.
struct ChildError {
  int stage;  // 1 chdir, 2 exec, 3 affinity
  int error;
};

[[noreturn]] void ChildFail(int fd, int stage) {
  ChildError e{stage, errno};
  ssize_t ignored = write(fd, &e, sizeof(e));
  (void)ignored;
  _exit(127);
}

}  // namespace

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      stdout_fd_(std::exchange(other.stdout_fd_, -1)),
      stderr_fd_(std::exchange(other.stderr_fd_, -1)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    CloseStdout();
    CloseStderr();
    pid_ = std::exchange(other.pid_, -1);
    stdout_fd_ = std::exchange(other.stdout_fd_, -1);
    stderr_fd_ = std::exchange(other.stderr_fd_, -1);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  CloseStdout();
  CloseStderr();
}

void ChildProcess::CloseStdout() { CloseFd(stdout_fd_); }
void ChildProcess::CloseStderr() { CloseFd(stderr_fd_); }

absl::StatusOr<ChildProcess> Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("Spawn: empty argv");

  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<char*> argv;
  for (const std::string& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  std::map<std::string, std::string> merged;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq == nullptr) continue;
    merged[std::string(*e, eq - *e)] = std::string(eq + 1);
  }
  for (const auto& [k, v] : options.env) merged[k] = v;
  std::vector<std::string> env_strings;
  env_strings.reserve(merged.size());
  for (const auto& [k, v] : merged) env_strings.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  // PATH lookup done here (execvpe is not async-signal-safe in every libc).
  std::string program = options.argv[0];
  if (program.find('/') == std::string::npos) {
    std::string path = merged.count("PATH") ? merged["PATH"] : "/usr/bin:/bin";
    for (absl::string_view dir : absl::StrSplit(path, ':')) {
      std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", program);
      if (access(candidate.c_str(), X_OK) == 0) {
        program = candidate;
        break;
      }
    }
  }

  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  for (int id : options.cpu_ids) {
    if (id >= 0 && id < CPU_SETSIZE) CPU_SET(id, &cpus);
  }

  int out[2], err[2], status_pipe[2];
  if (pipe2(out, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe");
  if (pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    close(out[0]), close(out[1]);
    return absl::ErrnoToStatus(e, "pipe");
  }
  if (pipe2(status_pipe, O_CLOEXEC) != 0) {
    int e = errno;
    close(out[0]), close(out[1]), close(err[0]), close(err[1]);
    return absl::ErrnoToStatus(e, "pipe");
  }
  const pid_t parent = getpid();

  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    for (int fd : {out[0], out[1], err[0], err[1], status_pipe[0], status_pipe[1]}) close(fd);
    return absl::ErrnoToStatus(e, "fork");
  }
  if (pid == 0) {
    // Child.
    setpgid(0, 0);
    if (options.die_with_parent) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);  // the agent died before prctl took effect
    }
    // Default dispositions and an empty mask: the agent blocks / handles signals for itself.
    for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2}) {
      signal(s, SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    if (!options.cpu_ids.empty() && sched_setaffinity(0, sizeof(cpus), &cpus) != 0) {
      ChildFail(status_pipe[1], 3);
    }
    if (!options.cwd.empty() && chdir(options.cwd.c_str()) != 0) ChildFail(status_pipe[1], 1);
    execve(program.c_str(), argv.data(), envp.data());
    ChildFail(status_pipe[1], 2);
  }

  // Parent. Also set the group from this side so it exists before we could signal it.
  setpgid(pid, pid);
  close(out[1]);
  close(err[1]);
  close(status_pipe[1]);
  ChildError child_error{};
  ssize_t n;
  do {
    n = read(status_pipe[0], &child_error, sizeof(child_error));
  } while (n < 0 && errno == EINTR);
  close(status_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof(child_error))) {
    int wstatus;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    close(out[0]);
    close(err[0]);
    const char* what = child_error.stage == 1   ? "chdir to"
                       : child_error.stage == 3 ? "set cpu affinity in"
                                                : "exec in";
    return absl::ErrnoToStatus(
        child_error.error,
        absl::StrCat("cannot start ", options.argv[0], ": ", what, " '",
                     options.cwd.empty() ? "." : options.cwd, "'",
                     child_error.stage == 3
                         ? absl::StrCat(" (cpus ", absl::StrJoin(options.cpu_ids, ","), ")")
                         : ""));
  }
  fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
  fcntl(err[0], F_SETFL, fcntl(err[0], F_GETFL) | O_NONBLOCK);
  return ChildProcess(pid, out[0], err[0]);
}

void SignalGroup(pid_t pgid, int signal) {
  if (pgid > 0) kill(-pgid, signal);
}

bool GroupAlive(pid_t pgid) {
  if (pgid <= 0) return false;
  return kill(-pgid, 0) == 0 || errno == EPERM;
}

absl::StatusOr<std::unique_ptr<OrphanGuard>> OrphanGuard::Start() {
  // A socket rather than a pipe: send(MSG_NOSIGNAL) cannot raise SIGPIPE if the guard is gone.
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return absl::ErrnoToStatus(errno, "orphan guard: socketpair");
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(fds[0]), close(fds[1]);
    return absl::ErrnoToStatus(e, "orphan guard: fork");
  }
  if (pid == 0) {
    // The guard: only async-signal-safe calls from here on.
    setpgid(0, 0);
    close(fds[1]);
    for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE}) signal(s, SIG_IGN);
    constexpr int kMax = 4096;
    pid_t groups[kMax];
    int count = 0;
    int32_t value;
    while (true) {
      ssize_t n = read(fds[0], &value, sizeof(value));
      if (n < 0 && errno == EINTR) continue;
      if (n != static_cast<ssize_t>(sizeof(value))) break;  // EOF: the agent is gone
      if (value == 0) _exit(0);                             // the agent is done: nothing to do
      if (value > 0 && count < kMax) {
        groups[count++] = value;
      } else if (value < 0) {
        for (int i = 0; i < count; ++i) {
          if (groups[i] == -value) groups[i] = groups[--count];
        }
      }
    }
    for (int i = 0; i < count; ++i) kill(-groups[i], SIGKILL);
    _exit(0);
  }
  close(fds[0]);
  return std::unique_ptr<OrphanGuard>(new OrphanGuard(pid, fds[1]));
}

void OrphanGuard::Send(int32_t value) {
  if (fd_ < 0) return;
  ssize_t ignored = send(fd_, &value, sizeof(value), MSG_NOSIGNAL);
  (void)ignored;
}

void OrphanGuard::Add(pid_t pgid) { Send(pgid); }
void OrphanGuard::Remove(pid_t pgid) { Send(-pgid); }

OrphanGuard::~OrphanGuard() {
  Send(0);
  close(fd_);
  fd_ = -1;
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
}

std::vector<pid_t> LiveDescendants() {
  // /proc must show our PID namespace (a new PID namespace without its own /proc mount shows the
  // host's pids, which kill() here would misread): else report nothing rather than guess.
  char self[32] = {0};
  ssize_t len = readlink("/proc/self", self, sizeof(self) - 1);
  int proc_pid = 0;
  if (len <= 0 || !absl::SimpleAtoi(absl::string_view(self, len), &proc_pid) ||
      proc_pid != getpid()) {
    return {};
  }
  // ppid of every process, then a walk down from us.
  std::multimap<pid_t, pid_t> children;
  std::set<pid_t> zombies;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return {};
  while (dirent* entry = readdir(proc)) {
    int pid;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    std::string path = absl::StrCat("/proc/", pid, "/stat");
    FILE* f = fopen(path.c_str(), "r");
    if (f == nullptr) continue;
    char buf[1024];
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    // Format: pid (comm) state ppid ...; comm may contain spaces and parentheses.
    const char* close_paren = std::strrchr(buf, ')');
    if (close_paren == nullptr) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(close_paren + 1, " %c %d", &state, &ppid) != 2) continue;
    children.emplace(ppid, pid);
    if (state == 'Z' || state == 'X') zombies.insert(pid);
  }
  closedir(proc);
  std::vector<pid_t> result;
  std::vector<pid_t> frontier = {getpid()};
  while (!frontier.empty()) {
    pid_t p = frontier.back();
    frontier.pop_back();
    auto [begin, end] = children.equal_range(p);
    for (auto it = begin; it != end; ++it) {
      if (!zombies.count(it->second)) result.push_back(it->second);
      frontier.push_back(it->second);
    }
  }
  return result;
}

}  // namespace kubetrain::agent
