// CowSnapshot: a copy-on-write snapshot of host buffers into a staging buffer, for
// Checkpointer::SaveAsync with AsyncSnapshot::kCopyOnWrite (kubetrain/rank/checkpoint.h).
//
// Start() copies each buffer's unaligned head and tail at once, write-protects the page-aligned
// interior (mprotect PROT_READ) and returns. From then on, the first write by this process to a
// protected chunk faults; a SIGSEGV handler copies that chunk to the staging buffer, makes it
// writable again and lets the write go on. Finish() (the background thread) copies every chunk no
// write has touched, unprotecting it as it goes. Either way each chunk is copied exactly once,
// before anybody can change it, so the staging buffer holds the buffers as they were at Start().
//
// Limits (why it is opt-in): only CPU writes of this process fault. Memory written by the kernel
// (read(2) into a buffer fails with EFAULT while it is protected), by another process (MPI
// shared-memory / CMA transfers) or by a device (DMA into registered host memory) must not be
// snapshot this way. A SIGSEGV handler installed after ours (ASan, a JVM) bypasses it. Faults at
// addresses outside every snapshot go to the handler that was installed before ours (an access
// fault no snapshot claims is first retried once: the write may have faulted just before the
// background thread unprotected its chunk and retired the snapshot).
//
// Thread-safety: Start/Finish/destruction from the owner; faults may come from any thread.
#ifndef KUBETRAIN_RANK_CHECKPOINT_COW_SNAPSHOT_H_
#define KUBETRAIN_RANK_CHECKPOINT_COW_SNAPSHOT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace kubetrain::checkpoint_internal {

class CowSnapshot {
 public:
  // One buffer: `size` bytes at `src` are to end up at `dst` (in the staging buffer).
  struct Part {
    const uint8_t* src = nullptr;
    uint8_t* dst = nullptr;
    size_t size = 0;
  };

  // Snapshots `parts`. FailedPrecondition (nothing protected, nothing copied) when the interiors
  // overlap, when too many snapshots are active, or when mprotect refuses: copy eagerly instead.
  static absl::StatusOr<std::unique_ptr<CowSnapshot>> Start(const std::vector<Part>& parts,
                                                            size_t chunk_bytes);

  ~CowSnapshot();  // Finish(), then unregisters (waiting for fault handlers in flight)
  CowSnapshot(const CowSnapshot&) = delete;
  CowSnapshot& operator=(const CowSnapshot&) = delete;

  // Copies and unprotects every chunk not yet copied. Idempotent.
  void Finish();

  // Chunks copied by a write fault rather than by Finish (for tests and the benchmark).
  int64_t faulted_chunks() const { return faulted_.load(std::memory_order_relaxed); }

  // Called from the SIGSEGV handler: true when `addr` lies in one of this snapshot's regions
  // (the chunk is then copied and writable when it returns).
  bool HandleFault(uintptr_t addr);

 private:
  struct Region {
    uintptr_t begin = 0;  // page-aligned, protected
    size_t size = 0;
    uint8_t* dst = nullptr;
    size_t chunks = 0;
    std::unique_ptr<std::atomic<uint8_t>[]> state;  // 0 protected, 1 copying, 2 copied
  };
  CowSnapshot() = default;
  void CopyChunk(Region& r, size_t chunk, bool by_fault);

  std::vector<Region> regions_;
  size_t chunk_bytes_ = 0;
  int slot_ = -1;
  std::atomic<int64_t> faulted_{0};
};

}  // namespace kubetrain::checkpoint_internal

#endif  // KUBETRAIN_RANK_CHECKPOINT_COW_SNAPSHOT_H_
