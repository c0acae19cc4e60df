#include "shm_transport.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kubetrain/common/status_macros.h"

namespace kubetrain::collective_internal {
namespace {

constexpr uint64_t kMagic = 0x6b74736d656d3031ull;  // "ktsmem01"
constexpr size_t kLine = 128;

struct alignas(kLine) Header {
  uint64_t magic;
  int32_t world_size;
  uint64_t slot_bytes;
  std::atomic<int32_t> aborted_by;  // 0 = healthy, else failing rank + 1
  char reason[512];
};

struct alignas(kLine) Control {
  std::atomic<uint64_t> arrive;
  int32_t pid;
};

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

bool ProcessAlive(int pid) {
  if (pid <= 0) return true;
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  // A killed child that its parent has not reaped yet still answers kill(); its state is Z.
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  std::ifstream stat(path);
  if (!stat) return true;  // no procfs: rely on kill()
  std::string line;
  std::getline(stat, line);
  size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return true;
  char state = line[close + 2];
  return state != 'Z' && state != 'X';
}

size_t AlignUp(size_t v, size_t a) { return (v + a - 1) / a * a; }

class ShmTransport : public CpuTransportImpl {
 public:
  ShmTransport(const ShmTransportOptions& options, void* base, size_t bytes)
      : rank_(options.rank),
        world_(options.world_size),
        slot_bytes_(options.slot_bytes),
        base_(static_cast<char*>(base)),
        bytes_(bytes),
        global_(options.global_ranks),
        one_shot_bytes_(options.one_shot_bytes) {
    if (global_.empty()) {
      for (int i = 0; i < world_; ++i) global_.push_back(i);
    }
    header_ = reinterpret_cast<Header*>(base_);
    controls_ = reinterpret_cast<Control*>(base_ + sizeof(Header));
    data_ = base_ + sizeof(Header) + AlignUp(sizeof(Control) * world_, 4096);
    seq_ = controls_[rank_].arrive.load();
  }
  ~ShmTransport() override { munmap(base_, bytes_); }

  const char* name() const override { return "shm"; }

  // Bytes of the segment for `world` ranks.
  static size_t SegmentBytes(int world, size_t slot_bytes) {
    return sizeof(Header) + AlignUp(sizeof(Control) * world, 4096) + 2 * slot_bytes * world;
  }
  static void Init(void* base, int world, size_t slot_bytes) {
    auto* h = new (base) Header();
    h->magic = kMagic;
    h->world_size = world;
    h->slot_bytes = slot_bytes;
    h->aborted_by.store(0);
    auto* c = reinterpret_cast<Control*>(static_cast<char*>(base) + sizeof(Header));
    for (int i = 0; i < world; ++i) {
      new (&c[i]) Control();
      c[i].arrive.store(0);
      c[i].pid = 0;
    }
  }
  absl::Status Validate(int world, size_t slot_bytes) {
    if (header_->magic != kMagic || header_->world_size != world ||
        header_->slot_bytes != slot_bytes) {
      return absl::FailedPreconditionError(
          "shared-memory segment does not match this communicator (world size or slot size "
          "differ between ranks?)");
    }
    controls_[rank_].pid = static_cast<int32_t>(getpid());
    return absl::OkStatus();
  }

  char* Slot(int rank, uint64_t k) { return data_ + (2 * rank + (k & 1)) * slot_bytes_; }

  // Publishes arrival at the next step and waits for every peer to reach it.
  absl::Status Sync(absl::Time deadline) {
    const uint64_t target = ++seq_;
    controls_[rank_].arrive.store(target, std::memory_order_release);
    for (int i = 1; i < world_; ++i) {
      const int p = (rank_ + i) % world_;
      std::atomic<uint64_t>& arrive = controls_[p].arrive;
      if (arrive.load(std::memory_order_acquire) >= target) continue;
      uint64_t iter = 0;
      absl::Time next_liveness = absl::InfinitePast();
      while (arrive.load(std::memory_order_acquire) < target) {
        ++iter;
        if (iter < 4096) {
          CpuRelax();
          continue;
        }
        sched_yield();
        if ((iter & 63) != 0) continue;
        if (int32_t by = header_->aborted_by.load(std::memory_order_acquire); by != 0) {
          return absl::AbortedError(
              absl::StrCat("rank ", global_[by - 1],
                           " aborted the communicator: ", std::string(header_->reason)));
        }
        absl::Time now = absl::Now();
        if (now >= next_liveness) {
          next_liveness = now + absl::Milliseconds(20);
          // Re-check the counter: the peer may have arrived and exited since the last load.
          if (!ProcessAlive(controls_[p].pid) && arrive.load(std::memory_order_acquire) < target) {
            return absl::UnavailableError(
                absl::StrCat("peer rank ", global_[p], " (pid ", controls_[p].pid,
                             ") died during a shared-memory collective on rank ", global_[rank_]));
          }
        }
        if (now >= deadline) {
          return absl::DeadlineExceededError(
              absl::StrCat("timed out on rank ", global_[rank_], " waiting for peer rank ",
                           global_[p], " (pid ", controls_[p].pid,
                           ", alive but not progressing: does every rank call the same "
                           "collectives in the same order?)"));
        }
      }
    }
    return absl::OkStatus();
  }

  absl::Status AllReduce(const void* send, void* recv, size_t count, DataType type, ReduceOp op,
                         absl::Time deadline) override {
    const size_t es = collective::DataTypeSize(type);
    const size_t chunk = slot_bytes_ / es;
    const char* in = static_cast<const char*>(send);
    char* out = static_cast<char*>(recv);
    const void* srcs[kMaxRanksOnStack];
    std::vector<const void*> heap_srcs;
    const void** src = srcs;
    if (world_ > kMaxRanksOnStack) {
      heap_srcs.resize(world_);
      src = heap_srcs.data();
    }
    uint64_t& k = chunk_seq_;  // global across ops: consecutive chunks alternate slots
    // One-shot for two ranks or small messages: every rank reduces the whole chunk from all
    // slots straight into its output (one sync per chunk instead of two, and for two ranks
    // less memory traffic). Sources go in rank order so every rank computes identical bits.
    if (count * es <= one_shot_bytes_) {
      for (int p = 0; p < world_; ++p) src[p] = nullptr;
      for (size_t off = 0; off < count; off += chunk, ++k) {
        const size_t n = std::min(chunk, count - off);
        std::memcpy(Slot(rank_, k), in + off * es, n * es);
        KT_RETURN_IF_ERROR(Sync(deadline));
        for (int p = 0; p < world_; ++p) src[p] = Slot(p, k);
        collective::ReduceHost(type, op, out + off * es, src, world_, n, world_);
      }
      return absl::OkStatus();
    }
    for (size_t off = 0; off < count; off += chunk, ++k) {
      const size_t n = std::min(chunk, count - off);
      char* mine = Slot(rank_, k);
      std::memcpy(mine, in + off * es, n * es);
      KT_RETURN_IF_ERROR(Sync(deadline));
      const size_t lo = n * rank_ / world_, hi = n * (rank_ + 1) / world_;
      if (hi > lo) {
        src[0] = mine + lo * es;  // the destination must be the first source
        for (int i = 1; i < world_; ++i) src[i] = Slot((rank_ + i) % world_, k) + lo * es;
        collective::ReduceHost(type, op, mine + lo * es, src, world_, hi - lo, world_);
      }
      KT_RETURN_IF_ERROR(Sync(deadline));
      for (int i = 0; i < world_; ++i) {
        const int p = (rank_ + i) % world_;
        const size_t plo = n * p / world_, phi = n * (p + 1) / world_;
        std::memcpy(out + (off + plo) * es, Slot(p, k) + plo * es, (phi - plo) * es);
      }
    }
    return absl::OkStatus();
  }

  absl::Status Broadcast(const void* send, void* recv, size_t count, DataType type, int root,
                         absl::Time deadline) override {
    const size_t es = collective::DataTypeSize(type);
    const size_t chunk = slot_bytes_ / es;
    if (rank_ == root && send != recv) std::memcpy(recv, send, count * es);
    uint64_t& k = chunk_seq_;  // global across ops: consecutive chunks alternate slots
    for (size_t off = 0; off < count; off += chunk, ++k) {
      const size_t n = std::min(chunk, count - off);
      if (rank_ == root)
        std::memcpy(Slot(root, k), static_cast<const char*>(send) + off * es, n * es);
      KT_RETURN_IF_ERROR(Sync(deadline));
      if (rank_ != root) std::memcpy(static_cast<char*>(recv) + off * es, Slot(root, k), n * es);
    }
    return absl::OkStatus();
  }

  absl::Status AllGather(const void* send, void* recv, size_t send_count, DataType type,
                         absl::Time deadline) override {
    const size_t es = collective::DataTypeSize(type);
    const size_t chunk = slot_bytes_ / es;
    char* out = static_cast<char*>(recv);
    uint64_t& k = chunk_seq_;  // global across ops: consecutive chunks alternate slots
    for (size_t off = 0; off < send_count; off += chunk, ++k) {
      const size_t n = std::min(chunk, send_count - off);
      std::memcpy(Slot(rank_, k), static_cast<const char*>(send) + off * es, n * es);
      KT_RETURN_IF_ERROR(Sync(deadline));
      for (int p = 0; p < world_; ++p) {
        char* dst = out + (p * send_count + off) * es;
        if (p == rank_ && dst == static_cast<const char*>(send) + off * es) continue;
        std::memcpy(dst, Slot(p, k), n * es);
      }
    }
    return absl::OkStatus();
  }

  absl::Status ReduceScatter(const void* send, void* recv, size_t recv_count, DataType type,
                             ReduceOp op, absl::Time deadline) override {
    const size_t es = collective::DataTypeSize(type);
    const size_t chunk = slot_bytes_ / es / world_;
    const char* in = static_cast<const char*>(send);
    std::vector<const void*> src(world_);
    uint64_t& k = chunk_seq_;  // global across ops: consecutive chunks alternate slots
    for (size_t off = 0; off < recv_count; off += chunk, ++k) {
      const size_t n = std::min(chunk, recv_count - off);
      char* mine = Slot(rank_, k);
      for (int b = 0; b < world_; ++b) {
        std::memcpy(mine + b * n * es, in + (b * recv_count + off) * es, n * es);
      }
      KT_RETURN_IF_ERROR(Sync(deadline));
      for (int p = 0; p < world_; ++p) src[p] = Slot(p, k) + rank_ * n * es;
      collective::ReduceHost(type, op, static_cast<char*>(recv) + off * es, src.data(), world_, n,
                             world_);
    }
    return absl::OkStatus();
  }

  absl::Status Barrier(absl::Time deadline) override { return Sync(deadline); }

  void Abort(const absl::Status& status) override {
    int32_t expected = 0;
    std::string reason(status.message());
    reason.resize(std::min(reason.size(), sizeof(header_->reason) - 1));
    // Write the reason first, then publish it.
    if (header_->aborted_by.load() == 0) {
      std::memcpy(header_->reason, reason.c_str(), reason.size() + 1);
      header_->aborted_by.compare_exchange_strong(expected, rank_ + 1);
    }
  }

 private:
  static constexpr int kMaxRanksOnStack = 64;
  const int rank_, world_;
  const size_t slot_bytes_;
  char* base_;
  size_t bytes_;
  Header* header_;
  Control* controls_;
  char* data_;
  uint64_t seq_ = 0;
  uint64_t chunk_seq_ = 0;
  std::vector<int> global_;
  const size_t one_shot_bytes_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CpuTransportImpl>> CreateShmTransport(
    const ShmTransportOptions& options, collective::TcpStoreClient* store, absl::Time deadline) {
  const int world = options.world_size;
  if (options.slot_bytes < static_cast<size_t>(world) * 64) {
    return absl::InvalidArgumentError("cpu_shm_slot_bytes is too small for this world size");
  }
  const size_t bytes = ShmTransport::SegmentBytes(world, options.slot_bytes);
  const std::string& name = options.segment_name;
  const std::string created_key = absl::StrCat(options.key_prefix, "/shm/created");
  int fd = -1;
  if (options.rank == 0) {
    shm_unlink(name.c_str());  // a leftover from a crashed run with the same name
    fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) {
      return absl::UnavailableError(absl::StrCat("shm_open(", name, "): ", std::strerror(errno)));
    }
    if (int err = posix_fallocate(fd, 0, static_cast<off_t>(bytes)); err != 0) {
      close(fd);
      shm_unlink(name.c_str());
      return absl::ResourceExhaustedError(absl::StrCat(
          "cannot allocate ", bytes, " bytes of shared memory in /dev/shm: ", std::strerror(err),
          " (raise the job's shm_size)"));
    }
  }
  void* base = nullptr;
  if (options.rank == 0) {
    base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
      shm_unlink(name.c_str());
      return absl::InternalError(absl::StrCat("mmap(", name, "): ", std::strerror(errno)));
    }
    ShmTransport::Init(base, world, options.slot_bytes);
    KT_RETURN_IF_ERROR(store->Set(created_key, name));
  } else {
    KT_RETURN_IF_ERROR(store->Get(created_key, /*wait=*/true, deadline - absl::Now()).status());
    fd = shm_open(name.c_str(), O_RDWR, 0600);
    if (fd < 0) {
      return absl::UnavailableError(absl::StrCat("shm_open(", name, ") on rank ", options.rank,
                                                 ": ", std::strerror(errno),
                                                 " (ranks on one node must share /dev/shm)"));
    }
    base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
      return absl::InternalError(absl::StrCat("mmap(", name, "): ", std::strerror(errno)));
    }
  }
  auto transport = std::make_unique<ShmTransport>(options, base, bytes);
  absl::Status valid = transport->Validate(world, options.slot_bytes);
  // Everyone has mapped the segment after this barrier; the name can go.
  absl::Status barrier = store->Barrier(absl::StrCat(options.key_prefix, "/shm/mapped"), world,
                                        deadline - absl::Now());
  if (options.rank == 0) shm_unlink(name.c_str());
  KT_RETURN_IF_ERROR(valid);
  KT_RETURN_IF_ERROR(barrier);
  // Pids are written before the barrier above, so liveness checks see them.
  return transport;
}

}  // namespace kubetrain::collective_internal
