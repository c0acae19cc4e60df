#include "net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"

namespace kubetrain::collective_internal {
namespace {

int PollTimeoutMs(absl::Time deadline) {
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  // Wake at least every 100 ms so a deadline is honoured even without events.
  if (left >= absl::Milliseconds(100)) return 100;
  return static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
}

absl::Status Closed(absl::string_view peer, int err) {
  return absl::UnavailableError(absl::StrCat("connection to ", peer, " closed",
                                             err ? absl::StrCat(": ", std::strerror(err)) : "",
                                             " (peer process died or exited)"));
}

}  // namespace

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void CloseFd(int fd) {
  if (fd >= 0) close(fd);
}

absl::StatusOr<int> Listen(int port, int* bound_port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket(): ", std::strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on port ", port, ": ",
                                               std::strerror(err),
                                               " (is another job using MASTER_PORT?)"));
  }
  if (listen(fd, 512) != 0) {
    int err = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("listen(): ", std::strerror(err)));
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  if (bound_port != nullptr) *bound_port = ntohs(addr.sin_port);
  return fd;
}

absl::StatusOr<int> Accept(int listen_fd, absl::Time deadline) {
  while (true) {
    pollfd p{listen_fd, POLLIN, 0};
    int r = poll(&p, 1, PollTimeoutMs(deadline));
    if (r < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("poll(): ", std::strerror(errno)));
    }
    if (r > 0) {
      int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        SetNoDelay(fd);
        return fd;
      }
      if (errno != EINTR && errno != EAGAIN) {
        return absl::InternalError(absl::StrCat("accept(): ", std::strerror(errno)));
      }
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError("timed out waiting for a peer to connect");
    }
  }
}

absl::StatusOr<int> Connect(absl::string_view host, int port, absl::Time deadline) {
  std::string host_str(host);
  std::string port_str = absl::StrCat(port);
  std::string last_error = "no attempt";
  while (true) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int gai = getaddrinfo(host_str.c_str(), port_str.c_str(), &hints, &res);
    if (gai == 0) {
      for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
          freeaddrinfo(res);
          SetNoDelay(fd);
          return fd;
        }
        last_error = std::strerror(errno);
        close(fd);
      }
      freeaddrinfo(res);
    } else {
      last_error = gai_strerror(gai);
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("cannot connect to ", host, ":", port, ": ", last_error));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string LocalAddress(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "127.0.0.1";
  char buf[INET_ADDRSTRLEN] = {0};
  inet_ntop(AF_INET, &addr.sin_addr, buf, sizeof(buf));
  return buf;
}

absl::Status SendAll(int fd, const void* data, size_t len, absl::Time deadline,
                     absl::string_view peer) {
  return SendRecv(fd, data, len, peer, -1, nullptr, 0, "", deadline);
}

absl::Status RecvAll(int fd, void* data, size_t len, absl::Time deadline, absl::string_view peer) {
  return SendRecv(-1, nullptr, 0, "", fd, data, len, peer, deadline);
}

absl::Status SendRecv(int send_fd, const void* send_data, size_t send_len,
                      absl::string_view send_peer, int recv_fd, void* recv_data, size_t recv_len,
                      absl::string_view recv_peer, absl::Time deadline) {
  const char* sp = static_cast<const char*>(send_data);
  char* rp = static_cast<char*>(recv_data);
  size_t sent = 0, received = 0;
  // Fast path: try the syscalls before polling.
  while (sent < send_len || received < recv_len) {
    bool progress = false;
    if (sent < send_len) {
      ssize_t n = send(send_fd, sp + sent, send_len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        progress = true;
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return Closed(send_peer, errno);
      }
    }
    if (received < recv_len) {
      ssize_t n = recv(recv_fd, rp + received, recv_len - received, MSG_DONTWAIT);
      if (n > 0) {
        received += static_cast<size_t>(n);
        progress = true;
      } else if (n == 0) {
        return Closed(recv_peer, 0);
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return Closed(recv_peer, errno);
      }
    }
    if (progress) continue;
    pollfd fds[2];
    int nfds = 0;
    if (sent < send_len) fds[nfds++] = {send_fd, POLLOUT, 0};
    if (received < recv_len) fds[nfds++] = {recv_fd, POLLIN, 0};
    int r = poll(fds, nfds, PollTimeoutMs(deadline));
    if (r < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("poll(): ", std::strerror(errno)));
    }
    if (r == 0 && absl::Now() >= deadline) {
      std::string what;
      if (received < recv_len) {
        what =
            absl::StrCat("receiving from ", recv_peer, " (", received, " of ", recv_len, " bytes)");
      }
      if (sent < send_len) {
        absl::StrAppend(&what, what.empty() ? "" : " and ", "sending to ", send_peer, " (", sent,
                        " of ", send_len, " bytes)");
      }
      return absl::DeadlineExceededError(
          absl::StrCat("timed out ", what, "; the peer is stuck or unreachable"));
    }
  }
  return absl::OkStatus();
}

}  // namespace kubetrain::collective_internal
