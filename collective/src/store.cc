#include "kubetrain/collective/store.h"

#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "kubetrain/common/status_macros.h"
#include "net.h"

namespace kubetrain::collective {
namespace {

using collective_internal::Accept;
using collective_internal::CloseFd;
using collective_internal::RecvAll;
using collective_internal::SendAll;

enum : char { kOpSet = 'S', kOpGet = 'G', kOpTryGet = 'T', kOpAdd = 'A' };
enum : char { kOk = 0, kNotFound = 1, kTimeout = 2, kError = 3 };

#pragma pack(push, 1)
struct RequestHeader {
  char op;
  uint32_t key_len;
  uint32_t value_len;
  int64_t wait_ms;
};
struct ResponseHeader {
  char code;
  uint32_t value_len;
};
#pragma pack(pop)

constexpr uint32_t kMaxFrame = 64u << 20;

}  // namespace

struct TcpStoreServer::State {
  int listen_fd = -1;
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::string> data;
  std::vector<int> conns;
  std::vector<std::thread> threads;
  std::thread acceptor;

  void Serve(int fd) {
    const absl::Time forever = absl::InfiniteFuture();
    while (!stopping.load()) {
      RequestHeader req;
      if (!RecvAll(fd, &req, sizeof(req), forever, "store client").ok()) break;
      if (req.key_len > kMaxFrame || req.value_len > kMaxFrame) break;
      std::string key(req.key_len, '\0'), value(req.value_len, '\0');
      if (!RecvAll(fd, key.data(), key.size(), forever, "store client").ok()) break;
      if (!RecvAll(fd, value.data(), value.size(), forever, "store client").ok()) break;
      char code = kOk;
      std::string out;
      {
        std::unique_lock<std::mutex> lock(mu);
        switch (req.op) {
          case kOpSet:
            data[key] = value;
            cv.notify_all();
            break;
          case kOpTryGet:
          case kOpGet: {
            auto ready = [&] { return stopping.load() || data.count(key) > 0; };
            if (req.op == kOpGet && !ready()) {
              cv.wait_until(lock, absl::ToChronoTime(absl::Now() + absl::Milliseconds(req.wait_ms)),
                            ready);
            }
            auto it = data.find(key);
            if (it != data.end()) {
              out = it->second;
            } else {
              code = req.op == kOpGet ? kTimeout : kNotFound;
            }
            break;
          }
          case kOpAdd: {
            int64_t delta = 0, current = 0;
            if (!absl::SimpleAtoi(value, &delta)) {
              code = kError;
              out = "Add: delta is not an integer";
              break;
            }
            auto it = data.find(key);
            if (it != data.end() && !absl::SimpleAtoi(it->second, &current)) {
              code = kError;
              out = absl::StrCat("Add: value of '", key, "' is not an integer");
              break;
            }
            out = absl::StrCat(current + delta);
            data[key] = out;
            cv.notify_all();
            break;
          }
          default:
            code = kError;
            out = "unknown store op";
        }
      }
      ResponseHeader resp{code, static_cast<uint32_t>(out.size())};
      if (!SendAll(fd, &resp, sizeof(resp), forever, "store client").ok()) break;
      if (!SendAll(fd, out.data(), out.size(), forever, "store client").ok()) break;
    }
  }
};

absl::StatusOr<std::unique_ptr<TcpStoreServer>> TcpStoreServer::Start(int port) {
  std::unique_ptr<TcpStoreServer> server(new TcpStoreServer());
  server->state_ = std::make_unique<State>();
  State* s = server->state_.get();
  KT_ASSIGN_OR_RETURN(s->listen_fd, collective_internal::Listen(port, &server->port_));
  s->acceptor = std::thread([s] {
    while (!s->stopping.load()) {
      absl::StatusOr<int> fd = Accept(s->listen_fd, absl::Now() + absl::Milliseconds(100));
      if (!fd.ok()) continue;
      std::lock_guard<std::mutex> lock(s->mu);
      if (s->stopping.load()) {
        CloseFd(*fd);
        break;
      }
      s->conns.push_back(*fd);
      int conn = *fd;
      s->threads.emplace_back([s, conn] { s->Serve(conn); });
    }
  });
  return server;
}

TcpStoreServer::~TcpStoreServer() {
  if (!state_) return;
  state_->stopping.store(true);
  if (state_->acceptor.joinable()) state_->acceptor.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    for (int fd : state_->conns) shutdown(fd, SHUT_RDWR);
    state_->cv.notify_all();
    threads.swap(state_->threads);
  }
  for (std::thread& t : threads) t.join();
  for (int fd : state_->conns) CloseFd(fd);
  CloseFd(state_->listen_fd);
}

absl::StatusOr<std::unique_ptr<TcpStoreClient>> TcpStoreClient::Connect(absl::string_view host,
                                                                        int port,
                                                                        absl::Duration timeout) {
  std::unique_ptr<TcpStoreClient> client(new TcpStoreClient());
  client->timeout_ = timeout;
  client->peer_ = absl::StrCat("rendezvous store at ", host, ":", port, " (rank 0)");
  absl::StatusOr<int> fd = collective_internal::Connect(host, port, absl::Now() + timeout);
  if (!fd.ok()) {
    return absl::Status(fd.status().code(),
                        absl::StrCat(fd.status().message(),
                                     "; check MASTER_ADDR/MASTER_PORT and that rank 0 is up"));
  }
  client->fd_ = *fd;
  client->local_address_ = collective_internal::LocalAddress(*fd);
  return client;
}

TcpStoreClient::~TcpStoreClient() { CloseFd(fd_); }

absl::StatusOr<std::string> TcpStoreClient::Call(char op, absl::string_view key,
                                                 absl::string_view value, absl::Duration wait) {
  std::lock_guard<std::mutex> lock(mu_);
  RequestHeader req{op, static_cast<uint32_t>(key.size()), static_cast<uint32_t>(value.size()),
                    absl::ToInt64Milliseconds(wait)};
  // The server answers a parked Get after `wait`; allow a margin for the network.
  absl::Time deadline = absl::Now() + std::max(wait, timeout_) + absl::Seconds(5);
  KT_RETURN_IF_ERROR(SendAll(fd_, &req, sizeof(req), deadline, peer_));
  KT_RETURN_IF_ERROR(SendAll(fd_, key.data(), key.size(), deadline, peer_));
  KT_RETURN_IF_ERROR(SendAll(fd_, value.data(), value.size(), deadline, peer_));
  ResponseHeader resp;
  KT_RETURN_IF_ERROR(RecvAll(fd_, &resp, sizeof(resp), deadline, peer_));
  if (resp.value_len > kMaxFrame) return absl::DataLossError("store: oversized response");
  std::string out(resp.value_len, '\0');
  KT_RETURN_IF_ERROR(RecvAll(fd_, out.data(), out.size(), deadline, peer_));
  switch (resp.code) {
    case kOk:
      return out;
    case kNotFound:
      return absl::NotFoundError(absl::StrCat("store key '", key, "' is not set"));
    case kTimeout:
      return absl::DeadlineExceededError(absl::StrCat(
          "timed out after ", absl::FormatDuration(wait), " waiting for store key '", key, "'"));
    default:
      return absl::InternalError(absl::StrCat("store: ", out));
  }
}

absl::Status TcpStoreClient::Set(absl::string_view key, absl::string_view value) {
  return Call(kOpSet, key, value, absl::ZeroDuration()).status();
}

absl::StatusOr<std::string> TcpStoreClient::Get(absl::string_view key, bool wait,
                                                absl::Duration timeout) {
  if (timeout == absl::ZeroDuration()) timeout = timeout_;
  return Call(wait ? kOpGet : kOpTryGet, key, "", timeout);
}

absl::StatusOr<int64_t> TcpStoreClient::Add(absl::string_view key, int64_t delta) {
  KT_ASSIGN_OR_RETURN(std::string v, Call(kOpAdd, key, absl::StrCat(delta), absl::ZeroDuration()));
  int64_t out = 0;
  if (!absl::SimpleAtoi(v, &out)) return absl::InternalError("store: Add returned a non-integer");
  return out;
}

absl::Status TcpStoreClient::Barrier(absl::string_view name, int world_size,
                                     absl::Duration timeout) {
  if (timeout == absl::ZeroDuration()) timeout = timeout_;
  const std::string count_key = absl::StrCat("barrier/", name, "/count");
  const std::string done_key = absl::StrCat("barrier/", name, "/done");
  KT_ASSIGN_OR_RETURN(int64_t arrived, Add(count_key, 1));
  if (arrived >= world_size) return Set(done_key, "1");
  absl::StatusOr<std::string> done = Get(done_key, /*wait=*/true, timeout);
  if (done.ok()) return absl::OkStatus();
  if (done.status().code() != absl::StatusCode::kDeadlineExceeded) return done.status();
  absl::StatusOr<int64_t> now = Add(count_key, 0);
  return absl::DeadlineExceededError(
      absl::StrCat("barrier '", name, "' timed out after ", absl::FormatDuration(timeout), ": ",
                   now.ok() ? *now : arrived, " of ", world_size, " ranks arrived"));
}

}  // namespace kubetrain::collective
