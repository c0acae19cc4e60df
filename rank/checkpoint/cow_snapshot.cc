#include "cow_snapshot.h"

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace kubetrain::checkpoint_internal {
namespace {

constexpr int kSlots = 16;
std::atomic<CowSnapshot*> g_active[kSlots];
std::atomic<int> g_in_handler{0};
struct sigaction g_previous;
std::once_flag g_install_once;
absl::Status g_install_status;

size_t PageSize() {
  static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

// The address of this thread's last fault that no snapshot claimed (see OnSegv).
__attribute__((tls_model("initial-exec"))) thread_local uintptr_t t_unclaimed_fault = 0;

void OnSegv(int sig, siginfo_t* info, void* context) {
  // seq_cst pairs with the destructor's store-then-load: either it sees this handler running,
  // or this handler does not see the snapshot it is destroying.
  g_in_handler.fetch_add(1, std::memory_order_seq_cst);
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  bool handled = false;
  for (auto& slot : g_active) {
    CowSnapshot* s = slot.load(std::memory_order_seq_cst);
    if (s != nullptr && s->HandleFault(addr)) {
      handled = true;
      break;
    }
  }
  g_in_handler.fetch_sub(1, std::memory_order_seq_cst);
  if (handled) {
    t_unclaimed_fault = 0;
    return;  // the faulting write runs again, on a writable page
  }
  // A write can fault on a protected chunk and reach this handler only after the background
  // thread copied and unprotected that chunk and retired the snapshot. So the first time no
  // snapshot claims an access fault, run the write again; a second fault at the same address is
  // not ours.
  if (info->si_code == SEGV_ACCERR && t_unclaimed_fault != addr) {
    t_unclaimed_fault = addr;
    return;
  }
  t_unclaimed_fault = 0;
  // Not ours: what was there before us.
  if ((g_previous.sa_flags & SA_SIGINFO) != 0 && g_previous.sa_sigaction != nullptr) {
    g_previous.sa_sigaction(sig, info, context);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN &&
             g_previous.sa_handler != nullptr) {
    g_previous.sa_handler(sig);
  } else {
    ::signal(SIGSEGV, SIG_DFL);  // the fault repeats and takes the default action
  }
}

absl::Status InstallHandler() {
  std::call_once(g_install_once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = OnSegv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(SIGSEGV, &sa, &g_previous) != 0) {
      g_install_status = absl::InternalError(
          absl::StrCat("sigaction(SIGSEGV) for copy-on-write snapshots: ", std::strerror(errno)));
    }
  });
  return g_install_status;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CowSnapshot>> CowSnapshot::Start(const std::vector<Part>& parts,
                                                                size_t chunk_bytes) {
  const size_t page = PageSize();
  chunk_bytes = std::max(page, chunk_bytes / page * page);
  std::unique_ptr<CowSnapshot> snap(new CowSnapshot());
  snap->chunk_bytes_ = chunk_bytes;
  struct Plan {
    const Part* part;
    uintptr_t begin, end;  // the page-aligned interior
  };
  std::vector<Plan> plans;
  for (const Part& p : parts) {
    const auto start = reinterpret_cast<uintptr_t>(p.src);
    const uintptr_t begin = (start + page - 1) / page * page;
    const uintptr_t end = (start + p.size) / page * page;
    plans.push_back({&p, begin, end > begin ? end : begin});
  }
  // Interiors must not overlap (a page protected twice would be copied for only one of them).
  std::vector<std::pair<uintptr_t, uintptr_t>> spans;
  for (const Plan& p : plans) {
    if (p.end > p.begin) spans.emplace_back(p.begin, p.end);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].first < spans[i - 1].second) {
      return absl::FailedPreconditionError("checkpoint buffers overlap");
    }
  }
  if (spans.empty()) {  // nothing page-sized: plain copies
    for (const Part& p : parts) {
      if (p.size > 0) std::memcpy(p.dst, p.src, p.size);
    }
    return snap;
  }
  if (absl::Status s = InstallHandler(); !s.ok()) return absl::FailedPreconditionError(s.message());
  for (int i = 0; i < kSlots && snap->slot_ < 0; ++i) {
    CowSnapshot* expected = nullptr;
    if (g_active[i].compare_exchange_strong(expected, snap.get())) snap->slot_ = i;
  }
  if (snap->slot_ < 0) {
    return absl::FailedPreconditionError("too many copy-on-write snapshots at once");
  }
  // Heads and tails now; interiors are registered (the handler sees them) before protection.
  for (const Plan& p : plans) {
    const auto start = reinterpret_cast<uintptr_t>(p.part->src);
    const size_t head = std::min<size_t>(p.part->size, p.begin - start);
    if (head > 0) std::memcpy(p.part->dst, p.part->src, head);
    const size_t interior = p.end - p.begin;
    const size_t tail_off = head + interior;
    if (p.part->size > tail_off) {
      std::memcpy(p.part->dst + tail_off, p.part->src + tail_off, p.part->size - tail_off);
    }
    if (interior == 0) continue;
    Region r;
    r.begin = p.begin;
    r.size = interior;
    r.dst = p.part->dst + head;
    r.chunks = (interior + chunk_bytes - 1) / chunk_bytes;
    r.state.reset(new std::atomic<uint8_t>[r.chunks]);
    for (size_t c = 0; c < r.chunks; ++c) r.state[c].store(2);  // not protected yet
    snap->regions_.push_back(std::move(r));
  }
  for (Region& r : snap->regions_) {
    for (size_t c = 0; c < r.chunks; ++c) r.state[c].store(0, std::memory_order_release);
    if (::mprotect(reinterpret_cast<void*>(r.begin), r.size, PROT_READ) != 0) {
      const int err = errno;
      for (size_t c = 0; c < r.chunks; ++c) r.state[c].store(2);
      snap->Finish();  // copies nothing protected; unprotects what was
      // Fall back: the caller copies everything eagerly.
      return absl::FailedPreconditionError(
          absl::StrCat("mprotect for a copy-on-write snapshot: ", std::strerror(err)));
    }
  }
  return snap;
}

CowSnapshot::~CowSnapshot() {
  Finish();
  if (slot_ >= 0) {
    g_active[slot_].store(nullptr, std::memory_order_seq_cst);
    // A handler may still be reading this object (it loaded the pointer before the store).
    while (g_in_handler.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  }
}

void CowSnapshot::Finish() {
  for (Region& r : regions_) {
    for (size_t c = 0; c < r.chunks; ++c) CopyChunk(r, c, /*by_fault=*/false);
  }
}

bool CowSnapshot::HandleFault(uintptr_t addr) {
  for (Region& r : regions_) {
    if (addr < r.begin || addr >= r.begin + r.size) continue;
    CopyChunk(r, (addr - r.begin) / chunk_bytes_, /*by_fault=*/true);
    return true;
  }
  return false;
}

// Async-signal-safe: atomics, memcpy, mprotect, sched_yield.
void CowSnapshot::CopyChunk(Region& r, size_t chunk, bool by_fault) {
  std::atomic<uint8_t>& state = r.state[chunk];
  uint8_t expected = 0;
  if (state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
    const size_t off = chunk * chunk_bytes_;
    const size_t n = std::min(chunk_bytes_, r.size - off);
    std::memcpy(r.dst + off, reinterpret_cast<const void*>(r.begin + off), n);
    ::mprotect(reinterpret_cast<void*>(r.begin + off), n, PROT_READ | PROT_WRITE);
    if (by_fault) faulted_.fetch_add(1, std::memory_order_relaxed);
    state.store(2, std::memory_order_release);
    return;
  }
  while (state.load(std::memory_order_acquire) != 2) ::sched_yield();  // another copier
}

}  // namespace kubetrain::checkpoint_internal
