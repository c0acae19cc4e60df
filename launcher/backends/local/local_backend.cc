#include "kubetrain/launcher/backends/local/local_backend.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kubetrain/launcher/backends/launch_plan.h"
#include "kubetrain/launcher/backends/local/memory_limit.h"

extern char** environ;

namespace kubetrain::backends::local {
namespace {

struct Instance {
  pid_t pid = -1;
  bool done = false;
  int status = 0;  // waitpid status once done
  std::unique_ptr<MemoryLimit> memory;
};

class LocalGang : public Gang {
 public:
  LocalGang(std::vector<Instance> instances, absl::Duration grace)
      : instances_(std::move(instances)), grace_(grace) {}
  ~LocalGang() override { Terminate(); }

  std::optional<GangResult> Poll(absl::Duration timeout) override {
    absl::Time deadline = absl::Now() + timeout;
    while (true) {
      Reap();
      if (std::optional<GangResult> r = Outcome()) return r;
      if (absl::Now() >= deadline) return std::nullopt;
      absl::SleepFor(std::min(absl::Milliseconds(5), deadline - absl::Now()));
    }
  }

  void Terminate() override {
    Signal(SIGTERM);
    absl::Time deadline = absl::Now() + grace_;
    while (!AllDone() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
      Reap();
    }
    if (!AllDone()) Signal(SIGKILL);
    while (!AllDone()) {
      absl::SleepFor(absl::Milliseconds(2));
      Reap();
    }
    for (Instance& i : instances_) i.memory.reset();
  }

 private:
  void Reap() {
    for (Instance& i : instances_) {
      if (i.done) continue;
      int status = 0;
      pid_t r = waitpid(i.pid, &status, WNOHANG);
      if (r == i.pid || (r < 0 && errno == ECHILD)) {
        i.done = true;
        i.status = r == i.pid ? status : 0;
      }
    }
  }

  bool AllDone() const {
    for (const Instance& i : instances_) {
      if (!i.done) return false;
    }
    return true;
  }

  void Signal(int sig) {
    for (const Instance& i : instances_) {
      if (!i.done) kill(i.pid, sig);
    }
  }

  // The first failed instance ends the gang (its peers are torn down); otherwise all must finish.
  std::optional<GangResult> Outcome() {
    for (size_t k = 0; k < instances_.size(); ++k) {
      const Instance& i = instances_[k];
      if (!i.done) continue;
      bool ok = WIFEXITED(i.status) && WEXITSTATUS(i.status) == 0;
      if (ok) continue;
      GangResult r;
      r.failed_instance = static_cast<int>(k);
      r.exit_code = WIFEXITED(i.status) ? WEXITSTATUS(i.status) : 0;
      r.signal = WIFSIGNALED(i.status) ? WTERMSIG(i.status) : 0;
      Terminate();
      return r;
    }
    if (!AllDone()) return std::nullopt;
    GangResult r;
    r.succeeded = true;
    return r;
  }

  std::vector<Instance> instances_;
  absl::Duration grace_;
};

// Whether this host lets us give an instance its own PID and mount namespaces with its own /proc
// (without the /proc mount, the agent would see the host's processes as its own). Probed once.
bool NamespacesWork() {
  static const bool works = [] {
    pid_t pid = static_cast<pid_t>(syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | SIGCHLD, nullptr,
                                           nullptr, nullptr, nullptr));
    if (pid < 0) return false;
    if (pid == 0) {
      bool ok = mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
                mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0 &&
                getpid() == 1;
      _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }();
  return works;
}

// The agent's environment: this process's, without any workspace credential of its own (the
// supervisor may hold the server's token), plus the job's token when there is one.
std::vector<std::string> AgentEnvironment(const std::string& workspace_token) {
  static const std::string kToken = "KUBETRAIN_WORKSPACE_TOKEN=";
  static const std::string kTokenFile = "KUBETRAIN_WORKSPACE_TOKEN_FILE=";
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string var = *e;
    if (var.rfind(kToken, 0) == 0 || var.rfind(kTokenFile, 0) == 0) continue;
    env.push_back(std::move(var));
  }
  if (!workspace_token.empty()) env.push_back(kToken + workspace_token);
  return env;
}

// Starts `argv` as a new instance. In the child only async-signal-safe calls happen before exec.
absl::StatusOr<pid_t> SpawnInstance(const std::vector<std::string>& argv,
                                    const std::vector<std::string>& environment,
                                    const std::string& log, bool namespaces, MemoryLimit* memory,
                                    bool* used_namespaces) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : environment) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) return absl::InternalError(absl::StrCat("cannot open ", log, ": ", strerror(errno)));
  int sync[2];
  if (pipe2(sync, O_CLOEXEC) != 0) {
    close(out);
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  pid_t parent = getpid();
  pid_t pid = -1;
  *used_namespaces = false;
  if (namespaces && NamespacesWork()) {
    pid = static_cast<pid_t>(syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | SIGCHLD, nullptr,
                                     nullptr, nullptr, nullptr));
    *used_namespaces = pid >= 0;
  }
  if (pid < 0) pid = fork();
  if (pid < 0) {
    int err = errno;
    close(out);
    close(sync[0]);
    close(sync[1]);
    return absl::InternalError(absl::StrCat("cannot start kubetrain-worker: ", strerror(err)));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent && !*used_namespaces) _exit(127);  // the supervisor is already gone
    setsid();
    if (*used_namespaces) {
      // Private mounts, and a /proc that shows this instance's processes only.
      if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
          mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
        _exit(126);
      }
    }
    char go;
    close(sync[1]);
    if (read(sync[0], &go, 1) != 1) _exit(127);  // wait until the parent set the cgroup up
    dup2(out, STDOUT_FILENO);
    dup2(out, STDERR_FILENO);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, STDIN_FILENO);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(out);
  close(sync[0]);
  absl::Status cgroup = memory != nullptr ? memory->Add(pid) : absl::OkStatus();
  (void)!write(sync[1], "g", 1);
  close(sync[1]);
  if (!cgroup.ok()) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return cgroup;
  }
  return pid;
}

}  // namespace

absl::StatusOr<int> PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("cannot pick a free port: ", strerror(err)));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

absl::StatusOr<std::unique_ptr<Gang>> LocalBackend::Launch(const LaunchRequest& request) {
  const int count = request.job.placement().instances_size();
  std::error_code ec;
  std::filesystem::create_directories(request.attempt_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", request.attempt_dir, ": ", ec.message()));
  }
  absl::StatusOr<int> port = PickFreePort();
  if (!port.ok()) return port.status();
  std::vector<std::string> hosts(count, "127.0.0.1");

  // Write every plan first: a bad plan starts nothing.
  std::vector<std::string> plans;
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<v1::InstanceLaunch> plan = BuildInstanceLaunch(request, i, hosts, *port);
    if (!plan.ok()) return plan.status();
    std::string path = absl::StrCat(request.attempt_dir, "/instance-", i, ".plan");
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!plan->SerializeToOstream(&out) || !out.flush()) {
      return absl::InternalError(absl::StrCat("cannot write ", path));
    }
    plans.push_back(path);
  }

  const std::vector<std::string> environment = AgentEnvironment(request.workspace_token);
  std::vector<Instance> instances;
  auto gang = [&] { return std::make_unique<LocalGang>(std::move(instances), request.grace); };
  bool warned_ns = false, warned_mem = false;
  for (int i = 0; i < count; ++i) {
    Instance inst;
    int64_t limit = request.memory_limit_bytes;
    if (options_.use_memory_limits && limit > 0) {
      absl::StatusOr<std::unique_ptr<MemoryLimit>> m = MemoryLimit::Create(
          absl::StrCat("kubetrain-", request.job.spec().name(), "-", request.attempt, "-", i),
          limit);
      if (m.ok()) {
        inst.memory = std::move(*m);
      } else if (!warned_mem && options_.warn) {
        options_.warn(absl::StrCat("memory limits are not enforced on this host (",
                                   m.status().message(), ")"));
        warned_mem = true;
      }
    }
    bool used_ns = false;
    absl::StatusOr<pid_t> pid =
        SpawnInstance({options_.worker_binary, "--plan", plans[i], "--quiet"}, environment,
                      absl::StrCat(request.attempt_dir, "/instance-", i, ".agent.log"),
                      options_.use_namespaces, inst.memory.get(), &used_ns);
    if (!pid.ok()) {
      gang()->Terminate();  // nothing half-started stays behind
      return pid.status();
    }
    if (options_.use_namespaces && !used_ns && !warned_ns && options_.warn) {
      options_.warn(
          "PID and mount namespaces are not available on this host; instances run in "
          "their own process groups");
      warned_ns = true;
    }
    inst.pid = *pid;
    instances.push_back(std::move(inst));
  }
  return gang();
}

}  // namespace kubetrain::backends::local
