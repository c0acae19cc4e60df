// Checkpointer: sharded, crash-consistent, optionally asynchronous checkpoints for a rank.
//
// Layout under `dir` (default $KUBETRAIN_CHECKPOINT_DIR):
//
//   step-<N>/                 a complete checkpoint (only ever created by an atomic rename)
//     shard-<rank>.bin        the rank's tensors, concatenated in the order given to Save
//     shard-<rank>.meta       the rank's ShardInfo (size, crc32c, tensor offsets) as a one-shard
//                             CheckpointManifest carrying the attempt token
//     manifest.pb             kubetrain.v1.CheckpointManifest (binary), written last by rank 0
//     keep                    optional marker: retention never deletes this checkpoint
//   step-<N>.tmp/             a checkpoint being written; never read
//   checkpoints.journal       one line per published checkpoint, appended by rank 0 after the
//                             rename: "<step> <bytes> <save ms> <created unix ms> <attempt>";
//                             read by ListPublishedCheckpoints (the agent records them)
//
// Save protocol (every rank calls Save(N) with its own buffers):
//   1. each rank writes shard-<rank>.bin into step-<N>.tmp/ with large pwrite()s, fsyncs it, then
//      publishes shard-<rank>.meta (written to a temporary name, fsynced, renamed, directory
//      fsynced);
//   2. barrier: all ranks have finished their shard;
//   3. rank 0 reads every rank's meta, writes manifest.pb (fsynced), renames step-<N>.tmp to
//      step-<N> and fsyncs `dir`, then applies retention;
//   4. barrier: the checkpoint is visible; Save returns on every rank.
// A crash (of any rank, at any instant) therefore leaves step-<N> either absent or complete, and
// the previous complete checkpoint untouched. LatestStep() only returns directories named exactly
// step-<N> whose manifest parses, matches N, and whose shard files exist with the recorded sizes;
// Load() additionally verifies the crc32c of the shard it reads (VerifyAll() of every shard).
//
// Barrier: when `options.barrier` is empty, a file-based barrier in the step directory is used,
// which needs every rank to see the same filesystem: rank 0 waits for every rank's shard meta
// (carrying the same attempt token), the other ranks wait until step-<N>.tmp has been renamed.
// A user barrier (e.g. a collective barrier) is called twice per save, at steps 2 and 4, on every
// rank; the directory must still be shared, since rank 0 renames the directory holding all shards.
//
// Attempt token: meta files carry `options.attempt` (default $KUBETRAIN_RESTART_COUNT, else
// $TORCHELASTIC_RESTART_COUNT, else "0"), so a stale step-<N>.tmp left by a killed earlier attempt
// of the job is never mistaken for the current one. Within one attempt, each step is saved once.
//
// Retention (rank 0, after each publish): keeps the newest `keep_last` complete checkpoints plus
// any with a `keep` marker (MarkKeep); the newest complete checkpoint is never deleted. Deletion
// renames step-<N> to step-<N>.deleting first, so a crash mid-delete never leaves a torn step-<N>.
// Stale step-<M>.tmp directories with M below the newest complete step are removed too.
//
// Asynchronous saves: SaveAsync snapshots the buffers into a host staging buffer owned by the
// Checkpointer (reused across saves), returns, and persists on a background thread. At most one
// save is in flight: SaveAsync and Save first wait for the previous one. Wait() returns its status.
// Device buffers (Memory::kCuda) are copied into the staging buffer, page-locked with
// cudaHostRegister so the copy runs at DMA speed, before SaveAsync returns (Save stages them the
// same way); host buffers are snapshot as follows (CheckpointOptions::async_snapshot):
//   kCopy (default): SaveAsync copies every byte before it returns; the buffers are only borrowed
//     for the call. Works for any host memory.
//   kCopyOnWrite: SaveAsync write-protects the buffers' pages and returns at once; the background
//     thread copies them, and a write by the program to a page not yet copied first copies that
//     1 MiB chunk (in a SIGSEGV handler) and then proceeds. SaveAsync then blocks for a fraction of
//     a copy, and the copy is paid by the background thread or, for chunks written at once, by
//     those writes. Only for buffers that this process writes with the CPU: memory written by the
//     kernel (read(2) fails with EFAULT on a protected page), by other processes (MPI shared
//     memory) or by devices (DMA) must use kCopy; the buffers must stay allocated until Wait() or
//     the next save returns; a SIGSEGV handler installed later (ASan) defeats it. When the pages
//     cannot be protected SaveAsync falls back to kCopy (and says so once on stderr).
//
// Errors: absl::Status; system call failures name the path and the errno text.
//
// Ownership: Save/SaveAsync borrow the buffers for the duration of the call only. Loaded data is
// owned by the returned LoadedCheckpoint. Thread-safety: a Checkpointer is used from one thread
// (plus its own background thread); the const methods (LatestStep, Load, ...) only read the
// filesystem and may run while a SaveAsync is in flight (a step that retention removes meanwhile
// reads as NotFound). Different processes (ranks) use their own Checkpointer.
#ifndef KUBETRAIN_RANK_CHECKPOINT_H_
#define KUBETRAIN_RANK_CHECKPOINT_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace kubetrain::checkpoint {

// Where a buffer's bytes are.
enum class Memory {
  kHost,  // host memory of this process
  kCuda,  // CUDA device memory (builds with CUDA; else Save/SaveAsync fail with FailedPrecondition)
};

// A named byte buffer to save; borrowed for the duration of Save / SaveAsync (see kCopyOnWrite).
struct NamedBuffer {
  std::string name;
  const void* data = nullptr;
  size_t size = 0;
  Memory memory = Memory::kHost;
};

// How SaveAsync snapshots the buffers (see above).
enum class AsyncSnapshot { kCopy, kCopyOnWrite };

struct CheckpointOptions {
  std::string dir;      // empty: $KUBETRAIN_CHECKPOINT_DIR
  int rank = -1;        // <0: RankInfo::FromEnvironment() (kubetrain/rank/rank_info.h)
  int world_size = -1;  // <=0: RankInfo::FromEnvironment(); neither set nor given: an error
  int keep_last = 3;    // complete checkpoints retained (besides `keep`-marked ones); >= 1
  // Called on every rank, twice per save (see above). Empty: the file-based barrier.
  std::function<absl::Status()> barrier;
  std::string attempt;                                  // empty: from the environment (see above)
  absl::Duration barrier_timeout = absl::Minutes(30);   // file barrier only
  size_t chunk_bytes = 8 << 20;                         // pwrite()/pread() size
  AsyncSnapshot async_snapshot = AsyncSnapshot::kCopy;  // SaveAsync's snapshot (see above)
};

// One tensor of a loaded shard: a view into LoadedCheckpoint::bytes.
struct LoadedTensor {
  std::string name;
  absl::Span<const uint8_t> data;
};

struct LoadedCheckpoint {
  int64_t step = 0;
  int world_size = 0;
  int rank = 0;
  std::map<std::string, std::string> metadata;
  std::vector<LoadedTensor> tensors;  // in the order they were saved
  std::unique_ptr<uint8_t[]> bytes;   // the whole shard; owns what `tensors` point into
  size_t size = 0;

  // The tensor called `name`, or nullptr.
  const LoadedTensor* Find(absl::string_view name) const;
};

// crc32c (Castagnoli) of `data`, continuing from `crc` (0 for a fresh checksum). Uses SSE4.2 with
// three interleaved streams when the CPU has it, else a table.
uint32_t Crc32c(const void* data, size_t size, uint32_t crc = 0);

// A checkpoint published in a checkpoint directory (see the layout above).
struct PublishedCheckpoint {
  int64_t step = 0;
  int64_t size_bytes = 0;        // all shards
  int64_t save_duration_ms = 0;  // rank 0's save, from its start to the publishing rename
  int64_t created_unix_ms = 0;
  std::string attempt;   // the attempt token of the ranks that saved it
  std::string location;  // `dir`/step-<N>
  bool present = false;  // step-<N>/ is still on disk (false: removed by retention)
};

// Every checkpoint published in `dir`: those in its journal (also ones retention has removed
// since) and every complete step-<N>/ (also one whose journal line a crash lost), ascending by
// step. Empty when `dir` does not exist. Reads only; safe while ranks save.
absl::StatusOr<std::vector<PublishedCheckpoint>> ListPublishedCheckpoints(const std::string& dir);

class Checkpointer {
 public:
  // Resolves the options against the environment and creates `dir` if needed.
  static absl::StatusOr<std::unique_ptr<Checkpointer>> Create(CheckpointOptions options);

  ~Checkpointer();  // waits for an in-flight SaveAsync (its error is logged to stderr)
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Saves this rank's shard of step `step` and returns once the checkpoint is complete and visible
  // (all ranks must call it). `metadata` is recorded in the manifest (rank 0's is used). Fails with
  // AlreadyExists when step-<step> exists. Waits for an in-flight SaveAsync first and returns its
  // error, if any, without saving.
  absl::Status Save(int64_t step, absl::Span<const NamedBuffer> buffers,
                    const std::map<std::string, std::string>& metadata = {});

  // Waits for the previous async save, copies `buffers` to host memory, and returns; the save
  // continues on a background thread. Returns the previous save's error if it failed (the new
  // save is then not started).
  absl::Status SaveAsync(int64_t step, absl::Span<const NamedBuffer> buffers,
                         const std::map<std::string, std::string>& metadata = {});

  // Waits for the in-flight async save, if any, and returns its status (OK when none).
  absl::Status Wait();

  // The newest complete checkpoint's step; NotFound when there is none.
  absl::StatusOr<int64_t> LatestStep() const;

  // All complete checkpoints' steps, ascending.
  absl::StatusOr<std::vector<int64_t>> CompleteSteps() const;

  // Reads and verifies this rank's shard of step `step` (the world size must match). A checksum or
  // size mismatch is DataLoss naming the rank and the file.
  absl::StatusOr<LoadedCheckpoint> Load(int64_t step) const;
  // The same for any rank's shard.
  absl::StatusOr<LoadedCheckpoint> LoadShard(int64_t step, int rank) const;
  // Verifies every shard's checksum of step `step`.
  absl::Status VerifyAll(int64_t step) const;

  // Marks step `step` to be kept by retention (creates step-<N>/keep, fsynced).
  absl::Status MarkKeep(int64_t step);

  // Applies retention now (rank 0 does this after each save).
  absl::Status ApplyRetention();

  const std::string& dir() const { return options_.dir; }
  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }
  std::string StepDir(int64_t step) const;

 private:
  struct AsyncState;
  explicit Checkpointer(CheckpointOptions options);

  // Copies the kCuda buffers into the pinned staging buffer; async_->views then holds every
  // buffer as host memory (host buffers in place).
  absl::Status StageDeviceBuffers(absl::Span<const NamedBuffer> buffers);

  // Writes the shard from `buffers` and runs the protocol.
  absl::Status SaveImpl(int64_t step, absl::Span<const NamedBuffer> buffers,
                        const std::map<std::string, std::string>& metadata);

  CheckpointOptions options_;
  std::unique_ptr<AsyncState> async_;
};

}  // namespace kubetrain::checkpoint

#endif  // KUBETRAIN_RANK_CHECKPOINT_H_
