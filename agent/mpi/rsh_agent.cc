#include "kubetrain/agent/mpi/rsh_agent.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace kubetrain::agent {
namespace {

constexpr char kVersion[] = "KTRSH1";
constexpr int kSshFailure = 255;

bool WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, char* data, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, data, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    data += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool SendFrame(int fd, char type, const std::string& data) {
  char header[5] = {type, static_cast<char>((data.size() >> 24) & 0xff),
                    static_cast<char>((data.size() >> 16) & 0xff),
                    static_cast<char>((data.size() >> 8) & 0xff),
                    static_cast<char>(data.size() & 0xff)};
  return WriteAll(fd, header, 5) && WriteAll(fd, data.data(), data.size());
}

bool ReadFrame(int fd, char* type, std::string* data, size_t max = 1 << 20) {
  unsigned char header[5];
  if (!ReadAll(fd, reinterpret_cast<char*>(header), 5)) return false;
  *type = static_cast<char>(header[0]);
  size_t n =
      (size_t{header[1]} << 24) | (size_t{header[2]} << 16) | (size_t{header[3]} << 8) | header[4];
  if (n > max) return false;
  data->resize(n);
  return ReadAll(fd, data->data(), n);
}

// Constant-time comparison: the token is a secret.
bool SameToken(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

int Connect(const std::string& host, int port, absl::Duration timeout, std::string* error) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    addrinfo hints{}, *res = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (rc == 0) {
      for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
          freeaddrinfo(res);
          int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          return fd;
        }
        *error = strerror(errno);
        close(fd);
      }
      freeaddrinfo(res);
    } else {
      *error = gai_strerror(rc);  // the pod's DNS record may not exist yet
    }
    if (absl::Now() >= deadline) return -1;
    absl::SleepFor(absl::Milliseconds(200));
  }
}

}  // namespace

std::string JobTokenFromEnv() {
  const char* t = std::getenv(kJobTokenEnv);
  return t == nullptr ? "" : t;
}

int RunRshClient(const std::vector<std::string>& args, absl::Duration connect_timeout) {
  // OpenMPI may pass ssh-style options before the host (e.g. -x); none take a value we use.
  size_t i = 0;
  while (i < args.size() && !args[i].empty() && args[i][0] == '-') ++i;
  if (i + 1 >= args.size()) {
    std::fprintf(stderr, "kubetrain-worker rsh: usage: kubetrain-worker rsh HOST COMMAND...\n");
    return kSshFailure;
  }
  const std::string& host = args[i];
  std::vector<std::string> words(args.begin() + static_cast<long>(i) + 1, args.end());
  const char* port_text = std::getenv(kRshPortEnv);
  int port = 0;
  if (port_text == nullptr || !absl::SimpleAtoi(port_text, &port) || port <= 0) {
    std::fprintf(stderr, "kubetrain-worker rsh: %s is not set to a port\n", kRshPortEnv);
    return kSshFailure;
  }
  std::string token = JobTokenFromEnv();
  if (token.empty()) {
    std::fprintf(stderr, "kubetrain-worker rsh: %s is not set (the job's Secret provides it)\n",
                 kJobTokenEnv);
    return kSshFailure;
  }
  signal(SIGPIPE, SIG_IGN);
  std::string error;
  int fd = Connect(host, port, connect_timeout, &error);
  if (fd < 0) {
    std::fprintf(stderr, "kubetrain-worker rsh: cannot reach %s:%d: %s\n", host.c_str(), port,
                 error.c_str());
    return kSshFailure;
  }
  std::string command = absl::StrJoin(words, " ");
  if (!SendFrame(fd, 'v', kVersion) || !SendFrame(fd, 't', token) || !SendFrame(fd, 'c', command)) {
    std::fprintf(stderr, "kubetrain-worker rsh: %s:%d closed the connection\n", host.c_str(), port);
    close(fd);
    return kSshFailure;
  }
  char type;
  std::string data;
  while (ReadFrame(fd, &type, &data)) {
    if (type == 'o' || type == 'e') {
      FILE* out = type == 'o' ? stdout : stderr;
      fwrite(data.data(), 1, data.size(), out);
      fflush(out);
    } else if (type == 'x') {
      close(fd);
      int code = kSshFailure;
      return absl::SimpleAtoi(data, &code) ? code : kSshFailure;
    }
  }
  close(fd);
  std::fprintf(stderr, "kubetrain-worker rsh: the connection to %s:%d ended before the command\n",
               host.c_str(), port);
  return kSshFailure;
}

absl::StatusOr<int> ServeOneLaunch(const RshServerOptions& options, CancelToken* cancel) {
  auto log = [&](const std::string& line) {
    if (options.log) options.log(line);
  };
  signal(SIGPIPE, SIG_IGN);
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(options.port));
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 16) != 0) {
    int err = errno;
    close(listener);
    return absl::UnavailableError(absl::StrCat("cannot listen on port ", options.port,
                                               " for mpirun's launches: ", strerror(err)));
  }
  log(absl::StrCat("waiting for instance 0's mpirun on port ", options.port));
  while (true) {
    pollfd fds[2] = {{listener, POLLIN, 0}, {cancel != nullptr ? cancel->fd() : -1, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (cancel != nullptr && cancel->requested()) {
      close(listener);
      return absl::CancelledError(absl::StrCat("canceled (signal ", cancel->signal(), ")"));
    }
    if (!(fds[0].revents & POLLIN)) continue;
    int conn = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    char type;
    std::string version, token, command;
    bool ok = ReadFrame(conn, &type, &version, 64) && type == 'v' && version == kVersion &&
              ReadFrame(conn, &type, &token, 4096) && type == 't' &&
              ReadFrame(conn, &type, &command) && type == 'c';
    if (!ok || !SameToken(token, options.token)) {
      log("refused a launch request: bad handshake or wrong job token");
      SendFrame(conn, 'e', "kubetrain-worker: permission denied (job token)\n");
      SendFrame(conn, 'x', std::to_string(kSshFailure));
      close(conn);
      continue;
    }
    close(listener);
    log(absl::StrCat("running for mpirun: ", command));
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
      close(conn);
      return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
    }
    pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);
      dup2(out[1], STDOUT_FILENO);
      dup2(err[1], STDERR_FILENO);
      int null = open("/dev/null", O_RDONLY);
      if (null >= 0) dup2(null, STDIN_FILENO);
      execl("/bin/sh", "sh", "-c", command.c_str(), nullptr);
      _exit(127);
    }
    close(out[1]);
    close(err[1]);
    bool out_open = true, err_open = true, canceled = false;
    while (out_open || err_open) {
      pollfd p[4] = {{out_open ? out[0] : -1, POLLIN, 0},
                     {err_open ? err[0] : -1, POLLIN, 0},
                     {cancel != nullptr ? cancel->fd() : -1, POLLIN, 0},
                     {conn, POLLRDHUP, 0}};
      if (poll(p, 4, -1) < 0 && errno != EINTR) break;
      if ((cancel != nullptr && cancel->requested()) || (p[3].revents & (POLLRDHUP | POLLHUP))) {
        if (!canceled) kill(-pid, SIGTERM);  // mpirun went away, or we are told to stop
        canceled = true;
        cancel = nullptr;
      }
      char buf[8192];
      for (int k = 0; k < 2; ++k) {
        if (!(p[k].revents & (POLLIN | POLLHUP))) continue;
        ssize_t n = read(k == 0 ? out[0] : err[0], buf, sizeof(buf));
        if (n <= 0) {
          (k == 0 ? out_open : err_open) = false;
          continue;
        }
        SendFrame(conn, k == 0 ? 'o' : 'e', std::string(buf, static_cast<size_t>(n)));
      }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    close(out[0]);
    close(err[0]);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    SendFrame(conn, 'x', std::to_string(code));
    close(conn);
    log(absl::StrCat("mpirun's command ended with status ", code));
    return code;
  }
  close(listener);
  return absl::InternalError(absl::StrCat("poll: ", strerror(errno)));
}

}  // namespace kubetrain::agent
