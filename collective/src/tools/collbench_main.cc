// kubetrain-collbench: an nccl-tests style bandwidth table for any kubetrain backend.
//
//   kubetrain-collbench --backend cpu --nranks 4 -b 8 -e 1G          # forks 4 local ranks
//   mpirun -np 2 kubetrain-collbench --backend mpi                    # ranks from mpirun
//   RANK=.. WORLD_SIZE=.. MASTER_ADDR=.. MASTER_PORT=.. kubetrain-collbench --backend nccl
//
// Per row: size (bytes; for allgather the gathered size, for reducescatter the input size, as
// in nccl-tests), count, type, op, time per operation (rank 0, averaged over --iters after
// --warmup), algbw = size / time, busbw = algbw * factor (allreduce 2(n-1)/n, allgather and
// reducescatter (n-1)/n, broadcast 1) and a correctness check of the first iteration's result.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "kubetrain/collective/communicator.h"
#include "kubetrain/collective/env.h"
#include "kubetrain/collective/types.h"
#if KUBETRAIN_COLLECTIVE_HAVE_MPI
#include "kubetrain/collective/mpi.h"
#endif
#if KUBETRAIN_COLLECTIVE_HAVE_NCCL
#include <cuda_runtime.h>
#endif

namespace kc = kubetrain::collective;

namespace {

struct Flags {
  std::string backend = "cpu";
  int nranks = 0;
  std::string min_bytes = "8";
  std::string max_bytes = "1G";
  double factor = 2;
  std::string collective = "allreduce";
  std::string dtype = "float32";
  std::string op = "sum";
  int iters = 20;
  int warmup = 5;
  bool check = true;
  bool inplace = false;
  bool csv = false;
  double timeout_s = 30;
  std::string transport = "auto";
  std::string sizes;     // explicit comma list, overrides min/max
  std::string shm_slot;  // empty: CommunicatorOptions default
  std::string one_shot;  // empty: CommunicatorOptions default
};

bool ParseBytes(const std::string& s, size_t* out) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || v < 0) return false;
  std::string unit(end);
  double mult = 1;
  if (unit == "K" || unit == "KiB" || unit == "k")
    mult = 1024.0;
  else if (unit == "M" || unit == "MiB")
    mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB")
    mult = 1024.0 * 1024 * 1024;
  else if (!unit.empty() && unit != "B")
    return false;
  *out = static_cast<size_t>(v * mult);
  return true;
}

// Buffers in the communicator's memory (host, or device for NCCL).
struct Buffer {
  bool device = false;
  void* ptr = nullptr;
  size_t bytes = 0;
  Buffer(size_t n, bool dev) : device(dev), bytes(n) {
    if (n == 0) return;
#if KUBETRAIN_COLLECTIVE_HAVE_NCCL
    if (device) {
      cudaMalloc(&ptr, n);
      return;
    }
#endif
    ptr = std::malloc(n);
    std::memset(ptr, 0, n);
  }
  ~Buffer() {
#if KUBETRAIN_COLLECTIVE_HAVE_NCCL
    if (device) {
      cudaFree(ptr);
      return;
    }
#endif
    std::free(ptr);
  }
  void CopyIn(const std::vector<char>& h) {
    if (h.empty()) return;
#if KUBETRAIN_COLLECTIVE_HAVE_NCCL
    if (device) {
      cudaMemcpy(ptr, h.data(), h.size(), cudaMemcpyHostToDevice);
      return;
    }
#endif
    std::memcpy(ptr, h.data(), h.size());
  }
  std::vector<char> CopyOut() const {
    std::vector<char> h(bytes);
    if (bytes == 0) return h;
#if KUBETRAIN_COLLECTIVE_HAVE_NCCL
    if (device) {
      cudaMemcpy(h.data(), ptr, bytes, cudaMemcpyDeviceToHost);
      return h;
    }
#endif
    std::memcpy(h.data(), ptr, bytes);
    return h;
  }
};

// Value rank r contributes at element i: small integers, exact in every type.
double Value(int r, size_t i) { return static_cast<double>((r + 1) * static_cast<int>(i % 7 + 1)); }

void Store(kc::DataType t, void* base, size_t i, double v) {
  switch (t) {
    case kc::DataType::kFloat32:
      static_cast<float*>(base)[i] = static_cast<float>(v);
      break;
    case kc::DataType::kFloat64:
      static_cast<double*>(base)[i] = v;
      break;
    case kc::DataType::kInt32:
      static_cast<int32_t*>(base)[i] = static_cast<int32_t>(v);
      break;
    case kc::DataType::kInt64:
      static_cast<int64_t*>(base)[i] = static_cast<int64_t>(v);
      break;
    case kc::DataType::kBFloat16:
      static_cast<uint16_t*>(base)[i] = kc::FloatToBFloat16(static_cast<float>(v));
      break;
    case kc::DataType::kFloat16:
      static_cast<uint16_t*>(base)[i] = kc::FloatToFloat16(static_cast<float>(v));
      break;
  }
}

double Load(kc::DataType t, const void* base, size_t i) {
  switch (t) {
    case kc::DataType::kFloat32:
      return static_cast<const float*>(base)[i];
    case kc::DataType::kFloat64:
      return static_cast<const double*>(base)[i];
    case kc::DataType::kInt32:
      return static_cast<const int32_t*>(base)[i];
    case kc::DataType::kInt64:
      return static_cast<const int64_t*>(base)[i];
    case kc::DataType::kBFloat16:
      return kc::BFloat16ToFloat(static_cast<const uint16_t*>(base)[i]);
    case kc::DataType::kFloat16:
      return kc::Float16ToFloat(static_cast<const uint16_t*>(base)[i]);
  }
  return 0;
}

double Expected(kc::ReduceOp op, kc::DataType t, int n, size_t i) {
  double sum = 0, mx = -1e300, mn = 1e300;
  for (int r = 0; r < n; ++r) {
    sum += Value(r, i);
    mx = std::max(mx, Value(r, i));
    mn = std::min(mn, Value(r, i));
  }
  switch (op) {
    case kc::ReduceOp::kSum:
      return sum;
    case kc::ReduceOp::kMax:
      return mx;
    case kc::ReduceOp::kMin:
      return mn;
    case kc::ReduceOp::kAvg:
      if (t == kc::DataType::kInt32 || t == kc::DataType::kInt64) {
        // Integer averages truncate, as the collective computes them.
        const int64_t avg = static_cast<int64_t>(sum) / n;
        return static_cast<double>(avg);
      }
      return sum / n;
  }
  return 0;
}

bool Close(double got, double want, kc::DataType t) {
  const double tol = (t == kc::DataType::kBFloat16)  ? 1e-2
                     : (t == kc::DataType::kFloat16) ? 1e-3
                                                     : 1e-6;
  return std::fabs(got - want) <= tol * std::max(1.0, std::fabs(want));
}

int Run(const Flags& f, kc::Communicator& comm) {
  const int rank = comm.rank(), n = comm.world_size();
  const bool dev = comm.memory_kind() == kc::MemoryKind::kDevice;
  auto dtype = kc::ParseDataType(f.dtype);
  auto op = kc::ParseReduceOp(f.op);
  if (!dtype.ok() || !op.ok()) {
    std::fprintf(stderr, "%s\n", (!dtype.ok() ? dtype.status() : op.status()).ToString().c_str());
    return 2;
  }
  const kc::DataType t = *dtype;
  const size_t es = kc::DataTypeSize(t);
  std::vector<size_t> sizes;
  std::vector<int> iters;  // per size; f.iters unless given as SIZE:ITERS
  if (!f.sizes.empty()) {
    size_t start = 0;
    while (start <= f.sizes.size()) {
      size_t comma = f.sizes.find(',', start);
      if (comma == std::string::npos) comma = f.sizes.size();
      std::string item = f.sizes.substr(start, comma - start);
      int it = f.iters;
      if (size_t colon = item.find(':'); colon != std::string::npos) {
        it = std::atoi(item.c_str() + colon + 1);
        item.resize(colon);
      }
      size_t b = 0;
      if (!ParseBytes(item, &b) || it <= 0) {
        std::fprintf(stderr, "bad size in --sizes: '%s'\n", item.c_str());
        return 2;
      }
      sizes.push_back(b);
      iters.push_back(it);
      start = comma + 1;
    }
  } else {
    size_t lo = 0, hi = 0;
    if (!ParseBytes(f.min_bytes, &lo) || !ParseBytes(f.max_bytes, &hi) || f.factor <= 1) {
      std::fprintf(stderr, "bad -b/-e/-f\n");
      return 2;
    }
    for (double b = std::max<size_t>(lo, es); b <= hi; b *= f.factor) {
      sizes.push_back(size_t(b));
      iters.push_back(f.iters);
    }
  }
  const std::string coll = f.collective;
  const double bus_factor = coll == "allreduce"   ? 2.0 * (n - 1) / n
                            : coll == "broadcast" ? 1.0
                                                  : static_cast<double>(n - 1) / n;
  if (rank == 0) {
    if (f.csv) {
      std::printf("size,count,type,op,time_us,algbw_gbs,busbw_gbs,check\n");
    } else {
      std::printf("# kubetrain-collbench: backend %s, %d ranks, %s, %s%s, %d iters (warmup %d)\n",
                  f.backend.c_str(), n, coll.c_str(), f.inplace ? "in-place" : "out-of-place",
                  f.backend == "cpu" ? (", transport " + f.transport).c_str() : "", f.iters,
                  f.warmup);
      std::printf("%12s %12s %9s %6s %11s %12s %12s %6s\n", "size(B)", "count", "type", "redop",
                  "time(us)", "algbw(GB/s)", "busbw(GB/s)", "check");
    }
    std::fflush(stdout);
  }
  int failures = 0;
  for (size_t row = 0; row < sizes.size(); ++row) {
    const size_t size = sizes[row];
    const int row_iters = iters[row];
    // nccl-tests: size is the largest buffer; per-rank counts follow from it.
    size_t count = size / es;
    if (coll == "allgather" || coll == "reducescatter") count = count / n * n;
    const size_t per_rank = (coll == "allgather" || coll == "reducescatter") ? count / n : count;
    const size_t send_elems = coll == "allgather" ? per_rank : count;
    const size_t recv_elems = coll == "reducescatter" ? per_rank : count;
    Buffer send(send_elems * es, dev), recv(recv_elems * es, dev);
    std::vector<char> host(send_elems * es);
    for (size_t i = 0; i < send_elems; ++i) {
      const size_t gi = coll == "allgather" ? rank * per_rank + i : i;
      Store(t, host.data(), i, Value(rank, gi));
    }
    auto launch = [&]() -> std::shared_ptr<kc::Work> {
      void* out = f.inplace && coll == "allreduce" ? send.ptr : recv.ptr;
      if (coll == "allreduce") return comm.AllReduce(send.ptr, out, count, t, *op);
      if (coll == "broadcast") return comm.Broadcast(send.ptr, recv.ptr, count, t, 0);
      if (coll == "allgather") return comm.AllGather(send.ptr, recv.ptr, per_rank, t);
      return comm.ReduceScatter(send.ptr, recv.ptr, per_rank, t, *op);
    };
    // Correctness pass.
    send.CopyIn(host);
    absl::Status s = launch()->Wait();
    bool ok = s.ok();
    if (ok && f.check) {
      std::vector<char> out = (f.inplace && coll == "allreduce") ? send.CopyOut() : recv.CopyOut();
      for (size_t i = 0; i < recv_elems && ok; ++i) {
        double want;
        if (coll == "allreduce")
          want = Expected(*op, t, n, i);
        else if (coll == "broadcast")
          want = Value(0, i);
        else if (coll == "allgather")
          want = Value(static_cast<int>(i / per_rank), i);
        else
          want = Expected(*op, t, n, rank * per_rank + i);
        ok = Close(Load(t, out.data(), i), want, t);
      }
    }
    for (int i = 0; i < f.warmup && s.ok(); ++i) s = launch()->Wait();
    if (s.ok()) s = comm.Barrier()->Wait();
    const absl::Time start = absl::Now();
    for (int i = 0; i < row_iters && s.ok(); ++i) s = launch()->Wait();
    const double us = absl::ToDoubleMicroseconds(absl::Now() - start) / row_iters;
    if (!s.ok()) {
      std::fprintf(stderr, "rank %d: %s at %zu bytes: %s\n", rank, coll.c_str(), size,
                   s.ToString().c_str());
      return 1;
    }
    if (!ok) ++failures;
    const double algbw = static_cast<double>(count * es) / us / 1e3;
    if (rank == 0) {
      const char* check = !f.check ? "-" : ok ? "OK" : "FAIL";
      if (f.csv) {
        std::printf("%zu,%zu,%s,%s,%.3f,%.4f,%.4f,%s\n", count * es, count,
                    std::string(kc::DataTypeName(t)).c_str(), f.op.c_str(), us, algbw,
                    algbw * bus_factor, check);
      } else {
        std::printf("%12zu %12zu %9s %6s %11.2f %12.3f %12.3f %6s\n", count * es, count,
                    std::string(kc::DataTypeName(t)).c_str(),
                    coll == "allgather" || coll == "broadcast" ? "none" : f.op.c_str(), us, algbw,
                    algbw * bus_factor, check);
      }
      std::fflush(stdout);
    } else if (!ok) {
      std::fprintf(stderr, "rank %d: wrong result at %zu bytes\n", rank, size);
    }
  }
  if (rank == 0 && !f.csv) std::printf("# %s\n", failures ? "some rows FAILED" : "all rows OK");
  return failures ? 1 : 0;
}

int FreePort() {
  // Bind port 0, read it, close; the small race is fine for a local benchmark.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return 0;  // what getsockname reports for the unbound socket
  }
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"kubetrain-collbench: collective bandwidth table (nccl-tests style)"};
  app.add_option("--backend", f.backend, "cpu, mpi or nccl")->capture_default_str();
  app.add_option("-n,--nranks", f.nranks,
                 "fork this many local ranks (cpu/nccl); default: ranks from the environment");
  app.add_option("-b,--minbytes", f.min_bytes, "smallest size, e.g. 8, 64K, 1M")
      ->capture_default_str();
  app.add_option("-e,--maxbytes", f.max_bytes, "largest size (up to 1G or more)")
      ->capture_default_str();
  app.add_option("-f,--stepfactor", f.factor, "size multiplier per row")->capture_default_str();
  app.add_option(
      "--sizes", f.sizes,
      "explicit comma-separated SIZE[:ITERS] list, e.g. 64K:500,1M:100 (overrides -b/-e)");
  app.add_option("-c,--collective", f.collective, "allreduce, allgather, reducescatter, broadcast")
      ->capture_default_str();
  app.add_option("-d,--dtype", f.dtype, "float32, bfloat16, float16, float64, int32, int64")
      ->capture_default_str();
  app.add_option("-o,--op", f.op, "sum, avg, max, min")->capture_default_str();
  app.add_option("-i,--iters", f.iters, "timed iterations per size")->capture_default_str();
  app.add_option("-w,--warmup", f.warmup, "untimed iterations per size")->capture_default_str();
  app.add_option("--check", f.check, "verify results (1/0)")->capture_default_str();
  app.add_flag("--inplace", f.inplace, "in-place allreduce");
  app.add_flag("--csv", f.csv, "machine-readable output");
  app.add_option("--timeout", f.timeout_s, "communicator timeout in seconds")
      ->capture_default_str();
  app.add_option("--transport", f.transport, "cpu backend transport: auto, shm, tcp")
      ->capture_default_str();
  app.add_option("--shm-slot", f.shm_slot,
                 "cpu backend shared-memory slot size per rank (default 256K)");
  app.add_option("--one-shot", f.one_shot,
                 "cpu backend: largest allreduce using the one-shot algorithm (default 8K)");
  CLI11_PARSE(app, argc, argv);

  auto backend = kc::ParseBackend(f.backend);
  if (!backend.ok()) {
    std::fprintf(stderr, "%s\n", backend.status().ToString().c_str());
    return 2;
  }
  kc::CommunicatorOptions options;
  if (*backend == kc::Backend::kMpi) {
#if KUBETRAIN_COLLECTIVE_HAVE_MPI
    MPI_Init(&argc, &argv);
    int rc;
    {
      options.timeout = absl::Seconds(f.timeout_s);
      auto comm = kc::CreateMpiCommunicator(MPI_COMM_WORLD, options);
      if (!comm.ok()) {
        std::fprintf(stderr, "%s\n", comm.status().ToString().c_str());
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
      rc = Run(f, **comm);
    }
    MPI_Finalize();
    return rc;
#else
    std::fprintf(stderr, "this build has no MPI backend\n");
    return 2;
#endif
  }
  if (f.nranks > 0) {
    options.world_size = f.nranks;
    options.master_port = FreePort();
  } else {
    auto env = kc::OptionsFromEnvironment();
    if (!env.ok()) {
      std::fprintf(stderr, "%s\n", env.status().ToString().c_str());
      return 2;
    }
    options = *env;
  }
  options.timeout = absl::Seconds(f.timeout_s);
  if (!f.one_shot.empty() && !ParseBytes(f.one_shot, &options.cpu_shm_one_shot_bytes)) {
    std::fprintf(stderr, "bad --one-shot\n");
    return 2;
  }
  if (!f.shm_slot.empty() && !ParseBytes(f.shm_slot, &options.cpu_shm_slot_bytes)) {
    std::fprintf(stderr, "bad --shm-slot\n");
    return 2;
  }
  options.cpu_transport = f.transport == "shm"   ? kc::CpuTransport::kShm
                          : f.transport == "tcp" ? kc::CpuTransport::kTcp
                                                 : kc::CpuTransport::kAuto;
  std::vector<pid_t> children;
  if (f.nranks > 1) {
    for (int r = 1; r < f.nranks; ++r) {
      pid_t pid = fork();
      if (pid == 0) {
        options.rank = r;
        options.local_rank = r;
        children.clear();
        break;
      }
      children.push_back(pid);
    }
  }
  int rc;
  {
    auto comm = kc::CreateCommunicator(*backend, options);
    if (!comm.ok()) {
      std::fprintf(stderr, "rank %d: %s\n", options.rank, comm.status().ToString().c_str());
      rc = 1;
    } else {
      rc = Run(f, **comm);
    }
  }
  if (options.rank != 0 && f.nranks > 1) _exit(rc);
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = rc ? rc : 1;
  }
  return rc;
}
