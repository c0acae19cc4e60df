#include "tests/collective/rank_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "kubetrain/collective/types.h"

namespace kubetrain::collective::testing {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return 0;  // what getsockname reports for the unbound socket
  }
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

std::vector<RankOutcome> RunRanks(int n, const std::function<std::string(int rank)>& body,
                                  const RunOptions& options) {
  std::vector<RankOutcome> out(n);
  std::vector<pid_t> pids(n, -1);
  std::vector<int> pipes(n, -1);
  for (int r = 0; r < n; ++r) {
    int fds[2];
    if (pipe(fds) != 0) abort();
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      std::string text = body(r);
      size_t off = 0;
      while (off < text.size()) {
        ssize_t w = write(fds[1], text.data() + off, text.size() - off);
        if (w <= 0) break;
        off += static_cast<size_t>(w);
      }
      close(fds[1]);
      _exit(text.rfind("FAIL", 0) == 0 ? 1 : 0);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    pids[r] = pid;
    pipes[r] = fds[0];
  }
  const absl::Time start = absl::Now();
  int alive = n;
  bool killed = false;
  while (alive > 0) {
    for (int r = 0; r < n; ++r) {  // drain pipes so children never block on write
      char buf[4096];
      ssize_t got;
      while (pipes[r] >= 0 && (got = read(pipes[r], buf, sizeof(buf))) > 0) {
        out[r].output.append(buf, static_cast<size_t>(got));
      }
    }
    if (!killed && options.kill_rank >= 0 && absl::Now() - start >= options.kill_after) {
      kill(pids[options.kill_rank], SIGKILL);
      if (options.killed_at != nullptr) *options.killed_at = absl::Now();
      killed = true;
    }
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      for (int r = 0; r < n; ++r) {
        if (pids[r] != pid) continue;
        out[r].exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        out[r].signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        pids[r] = -1;
        --alive;
      }
      continue;
    }
    if (absl::Now() - start > options.timeout) {
      for (int r = 0; r < n; ++r) {
        if (pids[r] > 0) {
          kill(pids[r], SIGKILL);
          out[r].output += " [harness: killed after the test timeout]";
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (int r = 0; r < n; ++r) {
    char buf[4096];
    ssize_t got;
    while ((got = read(pipes[r], buf, sizeof(buf))) > 0) out[r].output.append(buf, got);
    close(pipes[r]);
  }
  return out;
}

MemoryOps HostMemory() {
  MemoryOps m;
  m.alloc = [](size_t n) { return std::malloc(std::max<size_t>(n, 1)); };
  m.free = [](void* p) { std::free(p); };
  m.to_device = [](void* dst, const void* src, size_t n) {
    if (n > 0) std::memcpy(dst, src, n);
  };
  m.to_host = [](void* dst, const void* src, size_t n) {
    if (n > 0) std::memcpy(dst, src, n);
  };
  return m;
}

namespace {

// Rank r's value at element i: small signed integers, exact in every type.
int64_t Value(int r, size_t i) { return static_cast<int64_t>((r * 31 + i * 7) % 19) - 9; }

void Put(DataType t, void* base, size_t i, double v) {
  switch (t) {
    case DataType::kFloat32:
      static_cast<float*>(base)[i] = static_cast<float>(v);
      break;
    case DataType::kFloat64:
      static_cast<double*>(base)[i] = v;
      break;
    case DataType::kInt32:
      static_cast<int32_t*>(base)[i] = static_cast<int32_t>(v);
      break;
    case DataType::kInt64:
      static_cast<int64_t*>(base)[i] = static_cast<int64_t>(v);
      break;
    case DataType::kBFloat16:
      static_cast<uint16_t*>(base)[i] = FloatToBFloat16(static_cast<float>(v));
      break;
    case DataType::kFloat16:
      static_cast<uint16_t*>(base)[i] = FloatToFloat16(static_cast<float>(v));
      break;
  }
}

double Get(DataType t, const void* base, size_t i) {
  switch (t) {
    case DataType::kFloat32:
      return static_cast<const float*>(base)[i];
    case DataType::kFloat64:
      return static_cast<const double*>(base)[i];
    case DataType::kInt32:
      return static_cast<const int32_t*>(base)[i];
    case DataType::kInt64:
      return static_cast<const int64_t*>(base)[i];
    case DataType::kBFloat16:
      return BFloat16ToFloat(static_cast<const uint16_t*>(base)[i]);
    case DataType::kFloat16:
      return Float16ToFloat(static_cast<const uint16_t*>(base)[i]);
  }
  return 0;
}

bool IsInt(DataType t) { return t == DataType::kInt32 || t == DataType::kInt64; }

double Reduced(ReduceOp op, DataType t, int n, size_t i) {
  int64_t sum = 0, mx = INT64_MIN, mn = INT64_MAX;
  for (int r = 0; r < n; ++r) {
    sum += Value(r, i);
    mx = std::max(mx, Value(r, i));
    mn = std::min(mn, Value(r, i));
  }
  switch (op) {
    case ReduceOp::kSum:
      return static_cast<double>(sum);
    case ReduceOp::kMax:
      return static_cast<double>(mx);
    case ReduceOp::kMin:
      return static_cast<double>(mn);
    case ReduceOp::kAvg:
      if (IsInt(t)) {
        const int64_t avg = sum / n;  // integer averages truncate
        return static_cast<double>(avg);
      }
      return static_cast<double>(sum) / n;
  }
  return 0;
}

bool Near(double got, double want, DataType t) {
  const double tol = t == DataType::kBFloat16 ? 8e-3 : t == DataType::kFloat16 ? 1e-3 : 1e-6;
  return std::fabs(got - want) <= tol * std::max(1.0, std::fabs(want));
}

class Checker {
 public:
  Checker(Communicator& comm, const CheckOptions& o) : comm_(comm), o_(o) {}

  void Fail(const std::string& what) {
    ++failures_;
    if (failures_ <= 10) absl::StrAppend(&text_, "\n  ", what);
  }

  std::string Result() const {
    if (failures_ == 0) return "";
    return absl::StrCat("FAIL: rank ", comm_.rank(), " of ", comm_.world_size(), ": ", failures_,
                        " failures:", text_);
  }

  // Device buffer filled from a host vector.
  void* Upload(const std::vector<char>& host) {
    void* d = o_.memory.alloc(host.size());
    o_.memory.to_device(d, host.data(), host.size());
    return d;
  }
  std::vector<char> Download(const void* d, size_t bytes) {
    std::vector<char> h(bytes);
    o_.memory.to_host(h.data(), d, bytes);
    return h;
  }

  void Expect(const std::string& what, DataType t, const std::vector<char>& got,
              const std::function<double(size_t)>& want, size_t count) {
    for (size_t i = 0; i < count; ++i) {
      const double g = Get(t, got.data(), i), w = want(i);
      if (!Near(g, w, t)) {
        Fail(absl::StrCat(what, ": element ", i, " is ", g, ", want ", w));
        return;
      }
    }
  }

  void Run() {
    const int n = comm_.world_size(), rank = comm_.rank();
    for (DataType t : o_.types) {
      const size_t es = DataTypeSize(t);
      for (size_t count : o_.counts) {
        const std::string tc = absl::StrCat(DataTypeName(t), " count ", count);
        std::vector<char> mine(count * es), full(count * n * es);
        for (size_t i = 0; i < count; ++i) Put(t, mine.data(), i, Value(rank, i));
        // full: n blocks, block b element j has value Value(rank, b * count + j)
        for (size_t i = 0; i < count * n; ++i) Put(t, full.data(), i, Value(rank, i));

        for (ReduceOp op : o_.ops) {
          const std::string w = absl::StrCat("AllReduce ", ReduceOpName(op), " ", tc);
          auto want = [&](size_t i) { return Reduced(op, t, n, i); };
          void* in = Upload(mine);
          void* out = o_.memory.alloc(count * es);
          Status(w, comm_.AllReduce(in, out, count, t, op)->Wait());
          Expect(w + " out-of-place", t, Download(out, count * es), want, count);
          Expect(
              w + " (input untouched)", t, Download(in, count * es),
              [&](size_t i) { return static_cast<double>(Value(rank, i)); }, count);
          if (o_.in_place) {
            Status(w, comm_.AllReduce(in, count, t, op)->Wait());
            Expect(w + " in-place", t, Download(in, count * es), want, count);
          }
          o_.memory.free(in);
          o_.memory.free(out);

          const std::string rs = absl::StrCat("ReduceScatter ", ReduceOpName(op), " ", tc);
          auto want_rs = [&](size_t i) { return Reduced(op, t, n, rank * count + i); };
          void* fin = Upload(full);
          void* rout = o_.memory.alloc(count * es);
          Status(rs, comm_.ReduceScatter(fin, rout, count, t, op)->Wait());
          Expect(rs + " out-of-place", t, Download(rout, count * es), want_rs, count);
          if (o_.in_place) {
            char* slot = static_cast<char*>(fin) + rank * count * es;
            Status(rs, comm_.ReduceScatter(fin, slot, count, t, op)->Wait());
            Expect(rs + " in-place", t, Download(slot, count * es), want_rs, count);
          }
          o_.memory.free(fin);
          o_.memory.free(rout);
        }

        const std::string ag = absl::StrCat("AllGather ", tc);
        auto want_ag = [&](size_t i) {
          return static_cast<double>(Value(static_cast<int>(i / std::max<size_t>(count, 1)),
                                           i % std::max<size_t>(count, 1)));
        };
        void* gin = Upload(mine);
        void* gout = o_.memory.alloc(count * n * es);
        Status(ag, comm_.AllGather(gin, gout, count, t)->Wait());
        Expect(ag + " out-of-place", t, Download(gout, count * n * es), want_ag, count * n);
        if (o_.in_place) {
          std::vector<char> staged(count * n * es, 0);
          if (count > 0) std::memcpy(staged.data() + rank * count * es, mine.data(), count * es);
          void* buf = Upload(staged);
          Status(
              ag,
              comm_.AllGather(static_cast<char*>(buf) + rank * count * es, buf, count, t)->Wait());
          Expect(ag + " in-place", t, Download(buf, count * n * es), want_ag, count * n);
          o_.memory.free(buf);
        }
        o_.memory.free(gin);
        o_.memory.free(gout);

        for (int root = 0; root < n; ++root) {
          const std::string bc = absl::StrCat("Broadcast root ", root, " ", tc);
          auto want_bc = [&](size_t i) { return static_cast<double>(Value(root, i)); };
          void* bin = Upload(mine);
          void* bout = o_.memory.alloc(count * es);
          Status(bc, comm_.Broadcast(bin, bout, count, t, root)->Wait());
          Expect(bc + " out-of-place", t, Download(bout, count * es), want_bc, count);
          if (o_.in_place) {
            Status(bc, comm_.Broadcast(bin, count, t, root)->Wait());
            Expect(bc + " in-place", t, Download(bin, count * es), want_bc, count);
          }
          o_.memory.free(bin);
          o_.memory.free(bout);
        }
      }
    }
    Status("Barrier", comm_.Barrier()->Wait());
  }

  void Status(const std::string& what, const absl::Status& s) {
    if (!s.ok()) Fail(absl::StrCat(what, ": ", s.ToString()));
  }

 private:
  Communicator& comm_;
  const CheckOptions& o_;
  int failures_ = 0;
  std::string text_;
};

}  // namespace

std::string CheckAllOps(Communicator& comm, const CheckOptions& options) {
  Checker c(comm, options);
  c.Run();
  return c.Result();
}

}  // namespace kubetrain::collective::testing
