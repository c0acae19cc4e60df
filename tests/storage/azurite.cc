#include "tests/storage/azurite.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"

namespace kubetrain::testing {
namespace fs = std::filesystem;

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return 0;  // what getsockname reports for the unbound socket
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

namespace {

bool CanConnect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

}  // namespace

Azurite::~Azurite() { Stop(); }

std::string Azurite::endpoint() const {
  return absl::StrCat("http://127.0.0.1:", port_, "/", kAzuriteAccount);
}

storage::BlobAccount Azurite::Account(const std::string& container) const {
  storage::BlobAccount a;
  a.account_name = kAzuriteAccount;
  a.account_key = kAzuriteKey;
  a.container = container;
  a.endpoint = endpoint();
  return a;
}

absl::Status Azurite::Start(int timeout_seconds) {
  const std::string bin =
      std::string(KUBETRAIN_SOURCE_DIR) + "/.deps/node_modules/.bin/azurite-blob";
  if (access(bin.c_str(), X_OK) != 0) {
    return absl::UnavailableError(
        absl::StrCat("Azurite is not installed (", bin, "); run scripts/setup-deps.sh"));
  }
  char tmpl[] = "/tmp/kubetrain-azurite-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  dir_ = tmpl;
  for (int tries = 0; tries < 3; ++tries) {
    port_ = FreeLoopbackPort();
    std::string port = std::to_string(port_);
    std::string log = dir_ + "/azurite.log";
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      execl(bin.c_str(), bin.c_str(), "--blobHost", "127.0.0.1", "--blobPort", port.c_str(),
            "--location", dir_.c_str(), "--skipApiVersionCheck", "--loose", nullptr);
      _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      if (CanConnect(port_)) return absl::OkStatus();
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      usleep(100 * 1000);
    }
    Stop();
  }
  return absl::UnavailableError(absl::StrCat("Azurite did not start; see ", dir_, "/azurite.log"));
}

void Azurite::Stop() {
  if (pid_ > 0) {
    kill(-pid_, SIGTERM);
    for (int i = 0; i < 50; ++i) {
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      usleep(100 * 1000);
    }
    if (pid_ > 0) {
      kill(-pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    dir_.clear();
  }
}

CuttingProxy::CuttingProxy(int target_port, int64_t cut_after, int cuts, int busy)
    : target_port_(target_port),
      cut_after_(cut_after),
      cuts_(cuts),
      cuts_left_(cuts),
      busy_left_(busy) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    // Not fatal: listen() below then picks an ephemeral port on all interfaces.
    std::fprintf(stderr, "CuttingProxy: bind 127.0.0.1: %s\n", std::strerror(errno));
  }
  listen(listen_fd_, 64);
  socklen_t len = sizeof(addr);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Serve(); });
}

CuttingProxy::~CuttingProxy() {
  stop_ = true;
  thread_.join();
  close(listen_fd_);
}

void CuttingProxy::Serve() {
  std::vector<std::thread> conns;
  while (!stop_) {
    pollfd p = {listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    int client = accept(listen_fd_, nullptr, nullptr);
    if (client < 0) continue;
    conns.emplace_back([this, client] { Pipe(client); });
  }
  for (std::thread& t : conns) t.join();
}

void CuttingProxy::Pipe(int client) {
  if (int left = busy_left_.fetch_sub(1); left > 0) {
    char req[16384];
    (void)!read(client, req, sizeof(req));
    const std::string busy =
        absl::StrCat(left % 2 == 1 ? "HTTP/1.1 503 Server Busy" : "HTTP/1.1 429 Too Many Requests",
                     "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    (void)!write(client, busy.data(), busy.size());
    close(client);
    return;
  }
  int server = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(target_port_));
  if (connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(client);
    close(server);
    return;
  }
  const bool cut = cuts_left_.fetch_sub(1) > 0;
  int64_t forwarded = 0;
  std::vector<char> buf(64 * 1024);
  bool open = true;
  while (open && !stop_) {
    pollfd p[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    if (poll(p, 2, 100) <= 0) continue;
    for (int i = 0; i < 2 && open; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      int from = i == 0 ? client : server;
      int to = i == 0 ? server : client;
      size_t want = buf.size();
      if (i == 1 && cut)
        want = static_cast<size_t>(std::min<int64_t>(want, cut_after_ - forwarded));
      ssize_t n = want == 0 ? 0 : read(from, buf.data(), want);
      if (n <= 0 && want != 0) {
        open = false;
        break;
      }
      if (n > 0 && write(to, buf.data(), static_cast<size_t>(n)) != n) open = false;
      if (i == 1) forwarded += n;
      if (i == 1 && cut && forwarded >= cut_after_) {
        // Reset the client's connection, as a network failure would.
        linger l = {1, 0};
        setsockopt(client, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        cuts_done_++;
        open = false;
      }
    }
  }
  close(client);
  close(server);
}

}  // namespace kubetrain::testing
