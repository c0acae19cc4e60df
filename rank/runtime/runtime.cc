#include "kubetrain/rank/runtime.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace kubetrain::runtime {
namespace {

constexpr size_t kMaxPointsPerRequest = 1000;  // MLflow's log-batch limit
constexpr size_t kMaxParamsPerRequest = 100;

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

struct Entry {
  uint32_t key;
  int64_t step;
  double value;
  int64_t timestamp_ms;
};

// One thread's single-producer / single-consumer ring.
struct Ring {
  explicit Ring(size_t capacity) : entries(new Entry[capacity]), mask(capacity - 1) {}
  std::unique_ptr<Entry[]> entries;
  const uint64_t mask;
  alignas(64) std::atomic<uint64_t> head{0};  // written by the producer
  alignas(64) std::atomic<uint64_t> tail{0};  // written by the drainer
};

void AppendJsonString(std::string& out, absl::string_view s) {
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

void AppendNumber(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "\"NaN\"";
  } else if (std::isinf(v)) {
    out += v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  } else {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof(buf), v);
    out.append(buf, r.ptr);
  }
}

void AppendInt(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

// POSTs `body` to 127.0.0.1:port/path; returns the HTTP status, or -1 when the exchange failed.
int Post(const std::string& host, int port, const std::string& path, const std::string& body,
         int rank, std::string* response_body) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1 ||
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  std::string request =
      absl::StrCat("POST ", path, " HTTP/1.1\r\nHost: ", host, ":", port,
                   "\r\nContent-Type: application/json\r\nX-Kubetrain-Rank: ", rank,
                   "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
  size_t off = 0;
  while (off < request.size()) {
    ssize_t n = send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return -1;
    }
    off += static_cast<size_t>(n);
  }
  std::string data;
  char buf[4096];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  int status = -1;
  if (std::sscanf(data.c_str(), "HTTP/1.%*d %d", &status) != 1) return -1;
  size_t end = data.find("\r\n\r\n");
  if (response_body != nullptr && end != std::string::npos) *response_body = data.substr(end + 4);
  return status;
}

class Runtime;
Runtime* g_runtime = nullptr;
std::once_flag g_once;
std::mutex g_init_mu;
RuntimeOptions* g_pending_options = nullptr;

class Runtime {
 public:
  explicit Runtime(RuntimeOptions options) : options_(std::move(options)) {
    const RankInfo& info = GetRankInfo();
    if (options_.tracking_uri.empty()) options_.tracking_uri = info.tracking_uri;
    if (options_.run_id.empty()) options_.run_id = info.run_id;
    if (options_.rank < 0) options_.rank = info.rank;
    size_t cap = 1;
    while (cap < std::max<size_t>(options_.ring_points, 2)) cap <<= 1;
    options_.ring_points = cap;
    // http://HOST:PORT[/...]
    absl::string_view uri = options_.tracking_uri;
    if (absl::ConsumePrefix(&uri, "http://")) {
      size_t colon = uri.find(':');
      if (colon != absl::string_view::npos) {
        host_ = std::string(uri.substr(0, colon));
        if (host_ == "localhost") host_ = "127.0.0.1";
        absl::string_view port = uri.substr(colon + 1);
        port = port.substr(0, port.find('/'));
        if (!absl::SimpleAtoi(port, &port_)) port_ = 0;
      }
    }
    if (port_ == 0 || options_.run_id.empty()) {
      std::fprintf(stderr,
                   "kubetrain runtime: no MLflow endpoint (MLFLOW_TRACKING_URI '%s', "
                   "MLFLOW_RUN_ID '%s'); metrics are counted and discarded\n",
                   options_.tracking_uri.c_str(), options_.run_id.c_str());
    }
    drainer_ = std::thread([this] { DrainLoop(); });
  }

  bool has_endpoint() const { return port_ != 0 && !options_.run_id.empty(); }

  // Per thread: its ring and its interned keys.
  struct ThreadState {
    std::shared_ptr<Ring> ring;
    absl::flat_hash_map<std::string, uint32_t> keys;
    uint64_t cached_tail = 0;
  };

  void Log(ThreadState& t, absl::string_view key, double value, int64_t step) {
    if (t.ring == nullptr) {
      t.ring = std::make_shared<Ring>(options_.ring_points);
      std::lock_guard<std::mutex> lock(mu_);
      rings_.push_back(t.ring);
    }
    uint32_t id;
    if (auto it = t.keys.find(key); it != t.keys.end()) {
      id = it->second;
    } else {
      id = Intern(key);
      t.keys.emplace(std::string(key), id);
    }
    logged_.fetch_add(1, std::memory_order_relaxed);
    Ring& r = *t.ring;
    const uint64_t h = r.head.load(std::memory_order_relaxed);
    if (h - t.cached_tail >= options_.ring_points) {
      t.cached_tail = r.tail.load(std::memory_order_acquire);
      if (h - t.cached_tail >= options_.ring_points && !WaitForRoom(t, h)) {
        Drop(1);
        return;
      }
    }
    r.entries[h & r.mask] = {id, step, value, NowMs()};
    r.head.store(h + 1, std::memory_order_release);
    if (h - t.cached_tail == options_.ring_points / 2) Wake();  // half full: drain early
  }

  void AddKeyValue(bool param, absl::string_view key, absl::string_view value) {
    std::lock_guard<std::mutex> lock(mu_);
    (param ? params_ : tags_).emplace_back(std::string(key), std::string(value));
  }

  absl::Status Flush(absl::Duration timeout) {
    if (!has_endpoint()) {
      return absl::UnavailableError("kubetrain runtime: no MLflow endpoint to flush to");
    }
    std::unique_lock<std::mutex> lock(mu_);
    std::vector<std::pair<std::shared_ptr<Ring>, uint64_t>> targets;
    for (const auto& r : rings_) targets.emplace_back(r, r->head.load(std::memory_order_acquire));
    const uint64_t kv_target = kv_done_ + params_.size() + tags_.size();
    wake_ = true;
    cv_.notify_all();
    auto done = [&] {
      for (const auto& [r, head] : targets) {
        if (r->tail.load(std::memory_order_acquire) < head) return false;
      }
      return kv_done_ >= kv_target;
    };
    if (!drained_.wait_for(lock, absl::ToChronoNanoseconds(timeout), done)) {
      return absl::DeadlineExceededError(
          absl::StrCat("kubetrain runtime: metrics not acknowledged by ", options_.tracking_uri,
                       " within ", absl::FormatDuration(timeout)));
    }
    return absl::OkStatus();
  }

  // Bounded flush usable from a signal handler: no locks; polls the atomic counters while the
  // drainer (woken by `urgent_` within a millisecond or a flush interval) ships.
  void FlushFromSignal(absl::Duration limit) {
    if (!has_endpoint()) return;
    urgent_.store(true);
    timespec pause{0, 5 * 1000 * 1000};
    int64_t rounds = absl::ToInt64Milliseconds(limit) / 5;
    for (int64_t i = 0; i < rounds; ++i) {
      if (logged_.load() <= shipped_.load() + dropped_.load()) return;
      nanosleep(&pause, nullptr);
    }
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (drainer_.joinable()) drainer_.join();
  }

  RuntimeStats Stats() const {
    RuntimeStats s;
    s.logged = logged_.load();
    s.shipped = shipped_.load();
    s.dropped = dropped_.load();
    s.requests = requests_.load();
    s.failed_requests = failed_.load();
    return s;
  }

  const RuntimeOptions& options() const { return options_; }

 private:
  uint32_t Intern(absl::string_view key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, inserted] =
        key_ids_.try_emplace(std::string(key), static_cast<uint32_t>(keys_.size()));
    if (inserted) keys_.push_back(std::string(key));
    return it->second;
  }

  void Wake() {
    wake_flag_.store(true, std::memory_order_relaxed);
    cv_.notify_one();
  }

  bool WaitForRoom(ThreadState& t, uint64_t head) {
    Wake();
    auto deadline =
        std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(options_.full_wait);
    while (std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      t.cached_tail = t.ring->tail.load(std::memory_order_acquire);
      if (head - t.cached_tail < options_.ring_points) return true;
    }
    return false;
  }

  void Drop(int64_t n) {
    if (dropped_.fetch_add(n) == 0) {
      std::fprintf(
          stderr,
          "kubetrain runtime: rank %d dropped metric points (%s); see the run tag "
          "kubetrain.runtime_dropped\n",
          options_.rank,
          has_endpoint() ? "the endpoint did not keep up or is unreachable" : "no MLflow endpoint");
    }
    std::lock_guard<std::mutex> lock(mu_);
    drop_tag_dirty_ = true;
  }

  void DrainLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    absl::Duration wait = options_.flush_interval;
    while (true) {
      cv_.wait_for(lock, absl::ToChronoNanoseconds(wait), [&] {
        return stopping_ || wake_ || wake_flag_.load(std::memory_order_relaxed) || urgent_.load();
      });
      wake_ = false;
      wake_flag_.store(false, std::memory_order_relaxed);
      wait = urgent_.load() ? absl::Milliseconds(1) : options_.flush_interval;
      bool failed = false;
      // Snapshot the rings, params and tags under the lock; send without it.
      std::vector<std::shared_ptr<Ring>> rings = rings_;
      std::vector<std::string> keys = keys_;
      std::vector<std::pair<std::string, std::string>> params, tags;
      size_t np = std::min(params_.size(), kMaxParamsPerRequest);
      params.assign(params_.begin(), params_.begin() + static_cast<std::ptrdiff_t>(np));
      size_t nt = std::min(tags_.size(), kMaxParamsPerRequest);
      tags.assign(tags_.begin(), tags_.begin() + static_cast<std::ptrdiff_t>(nt));
      if (drop_tag_dirty_)
        tags.emplace_back("kubetrain.runtime_dropped", std::to_string(dropped_.load()));
      bool drop_tag = drop_tag_dirty_;
      lock.unlock();

      if (!has_endpoint()) {
        // Count and discard.
        for (const auto& r : rings) {
          uint64_t h = r->head.load(std::memory_order_acquire);
          uint64_t t = r->tail.load(std::memory_order_relaxed);
          if (h > t) {
            dropped_.fetch_add(static_cast<int64_t>(h - t));
            r->tail.store(h, std::memory_order_release);
          }
        }
        lock.lock();
        kv_done_ += np + nt;
        params_.erase(params_.begin(), params_.begin() + static_cast<std::ptrdiff_t>(np));
        tags_.erase(tags_.begin(), tags_.begin() + static_cast<std::ptrdiff_t>(nt));
        drop_tag_dirty_ = false;
        drained_.notify_all();
        if (stopping_) return;
        continue;
      }
      // Params and tags first (with no points), then every ring in requests of <= 1000 points.
      if (!params.empty() || !tags.empty()) {
        std::string body = BatchBody(nullptr, 0, 0, keys, params, tags);
        int status = Send(body);
        if (status == 200 || (status >= 400 && status < 500)) {
          lock.lock();
          params_.erase(params_.begin(), params_.begin() + static_cast<std::ptrdiff_t>(np));
          tags_.erase(tags_.begin(), tags_.begin() + static_cast<std::ptrdiff_t>(nt));
          kv_done_ += np + nt;
          if (drop_tag) drop_tag_dirty_ = false;
          lock.unlock();
        } else {
          failed = true;
        }
      }
      // Round robin over the rings, one request per ring per pass, so that no thread's ring
      // starves behind a busy one; at most 64 requests per cycle, then the lock is taken again
      // (Flush waiters, params) and, if points remain, the next cycle starts at once.
      bool more = true;
      for (int budget = 64; more && !failed && budget > 0;) {
        more = false;
        for (const auto& r : rings) {
          if (failed || budget <= 0) break;
          uint64_t t = r->tail.load(std::memory_order_relaxed);
          uint64_t h = r->head.load(std::memory_order_acquire);
          if (h == t) continue;
          uint64_t n = std::min<uint64_t>(h - t, kMaxPointsPerRequest);
          // Keys interned after the snapshot: refresh it.
          for (uint64_t i = t; i < t + n; ++i) {
            if (r->entries[i & r->mask].key >= keys.size()) {
              std::lock_guard<std::mutex> relock(mu_);
              keys = keys_;
              break;
            }
          }
          std::string body = BatchBody(r.get(), t, n, keys, {}, {});
          int status = Send(body);
          --budget;
          if (status == 200) {
            shipped_.fetch_add(static_cast<int64_t>(n));
          } else if (status >= 400 && status < 500) {
            Drop(static_cast<int64_t>(n));  // refused: retrying cannot help
          } else {
            failed = true;
            break;
          }
          r->tail.store(t + n, std::memory_order_release);
          more = more || r->head.load(std::memory_order_acquire) != t + n;
        }
      }
      lock.lock();
      drained_.notify_all();
      if (failed) {
        wait = absl::Milliseconds(200);
      } else if (more) {
        wait = absl::ZeroDuration();
      }
      if (stopping_) {
        bool empty = params_.empty() && tags_.empty();
        for (const auto& r : rings_) {
          empty = empty && r->head.load() == r->tail.load();
        }
        if (empty || failed) return;
      }
    }
  }

  std::string BatchBody(const Ring* ring, uint64_t from, uint64_t n,
                        const std::vector<std::string>& keys,
                        const std::vector<std::pair<std::string, std::string>>& params,
                        const std::vector<std::pair<std::string, std::string>>& tags) const {
    std::string body;
    body.reserve(64 + n * 80);
    body += "{\"run_id\":";
    AppendJsonString(body, options_.run_id);
    body += ",\"metrics\":[";
    for (uint64_t i = 0; i < n; ++i) {
      const Entry& e = ring->entries[(from + i) & ring->mask];
      if (i > 0) body.push_back(',');
      body += "{\"key\":";
      AppendJsonString(body, e.key < keys.size() ? keys[e.key] : "unknown");
      body += ",\"value\":";
      AppendNumber(body, e.value);
      body += ",\"timestamp\":";
      AppendInt(body, e.timestamp_ms);
      body += ",\"step\":";
      AppendInt(body, e.step);
      body.push_back('}');
    }
    auto kvs = [&](const char* name, const std::vector<std::pair<std::string, std::string>>& v) {
      body += ",\"";
      body += name;
      body += "\":[";
      for (size_t i = 0; i < v.size(); ++i) {
        if (i > 0) body.push_back(',');
        body += "{\"key\":";
        AppendJsonString(body, v[i].first);
        body += ",\"value\":";
        AppendJsonString(body, v[i].second);
        body.push_back('}');
      }
      body.push_back(']');
    };
    body.push_back(']');
    kvs("params", params);
    kvs("tags", tags);
    body.push_back('}');
    return body;
  }

  int Send(const std::string& body) {
    requests_.fetch_add(1);
    std::string response;
    int status =
        Post(host_, port_, "/api/2.0/mlflow/runs/log-batch", body, options_.rank, &response);
    if (status != 200) {
      int64_t failures = failed_.fetch_add(1) + 1;
      if (failures == 1 || failures % 100 == 0 || (status >= 400 && status < 500)) {
        std::fprintf(stderr, "kubetrain runtime: rank %d: log-batch to %s failed (%s): %s\n",
                     options_.rank, options_.tracking_uri.c_str(),
                     status < 0 ? "no connection" : absl::StrCat("HTTP ", status).c_str(),
                     response.substr(0, 300).c_str());
      }
    }
    return status;
  }

  RuntimeOptions options_;
  std::string host_ = "127.0.0.1";
  int port_ = 0;
  std::thread drainer_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable drained_;
  bool stopping_ = false;
  bool wake_ = false;
  std::vector<std::shared_ptr<Ring>> rings_;
  std::vector<std::string> keys_;
  absl::flat_hash_map<std::string, uint32_t> key_ids_;
  std::vector<std::pair<std::string, std::string>> params_, tags_;
  uint64_t kv_done_ = 0;  // params and tags shipped (or refused) so far
  bool drop_tag_dirty_ = false;

  std::atomic<bool> wake_flag_{false};
  std::atomic<bool> urgent_{false};
  std::atomic<int64_t> logged_{0}, shipped_{0}, dropped_{0}, requests_{0}, failed_{0};
};

constexpr int kSignals[] = {SIGTERM, SIGINT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

void OnFatalSignal(int sig) {
  if (g_runtime != nullptr) g_runtime->FlushFromSignal(absl::Seconds(2));
  signal(sig, SIG_DFL);
  raise(sig);
}

void AtExit() {
  if (g_runtime == nullptr) return;
  if (g_runtime->has_endpoint()) (void)g_runtime->Flush(absl::Seconds(10));
  g_runtime->Stop();
}

Runtime& Get() {
  std::call_once(g_once, [] {
    RuntimeOptions options;
    {
      std::lock_guard<std::mutex> lock(g_init_mu);
      if (g_pending_options != nullptr) options = *g_pending_options;
    }
    g_runtime = new Runtime(options);  // lives until the process ends
    std::atexit(AtExit);
    if (options.install_signal_handlers) {
      for (int sig : kSignals) {
        struct sigaction old;
        if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_DFL &&
            (old.sa_flags & SA_SIGINFO) == 0) {
          struct sigaction sa;
          std::memset(&sa, 0, sizeof(sa));
          sa.sa_handler = OnFatalSignal;
          sigemptyset(&sa.sa_mask);
          sa.sa_flags = SA_RESETHAND;
          sigaction(sig, &sa, nullptr);
        }
      }
    }
  });
  return *g_runtime;
}

thread_local Runtime::ThreadState t_state;

}  // namespace

const RankInfo& GetRankInfo() {
  static const RankInfo info = [] {
    absl::StatusOr<RankInfo> r = RankInfo::FromEnvironment();
    if (r.ok()) return *std::move(r);
    if (!absl::IsNotFound(r.status())) {
      std::fprintf(stderr, "kubetrain runtime: %s; logging as rank 0 of 1\n",
                   std::string(r.status().message()).c_str());
    }
    return RankInfo::SingleProcess();
  }();
  return info;
}

absl::Status InitRuntime(const RuntimeOptions& options) {
  std::lock_guard<std::mutex> lock(g_init_mu);
  if (g_runtime != nullptr) {
    return absl::FailedPreconditionError(
        "kubetrain runtime: InitRuntime must come before the first Log call");
  }
  delete g_pending_options;
  g_pending_options = new RuntimeOptions(options);
  return absl::OkStatus();
}

void LogMetric(absl::string_view key, double value, int64_t step) {
  Get().Log(t_state, key, value, step);
}

void LogParam(absl::string_view key, absl::string_view value) {
  Get().AddKeyValue(true, key, value);
}

void SetTag(absl::string_view key, absl::string_view value) {
  Get().AddKeyValue(false, key, value);
}

absl::Status Flush(absl::Duration timeout) { return Get().Flush(timeout); }

RuntimeStats GetRuntimeStats() { return Get().Stats(); }

}  // namespace kubetrain::runtime
