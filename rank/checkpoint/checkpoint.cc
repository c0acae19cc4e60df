// Checkpointer implementation; see kubetrain/rank/checkpoint.h for the layout and protocol.
#include "kubetrain/rank/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cow_snapshot.h"
#include "device_memory.h"
#include "files.h"
#include "kubetrain/common/status_macros.h"
#include "kubetrain/rank/rank_info.h"
#include "kubetrain/v1/checkpoint.pb.h"

namespace kubetrain::checkpoint {
namespace {

using checkpoint_internal::AppendJournal;
using checkpoint_internal::CrcString;
using checkpoint_internal::ErrnoStatus;
using checkpoint_internal::Exists;
using checkpoint_internal::Fd;
using checkpoint_internal::FsyncPath;
using checkpoint_internal::JoinPath;
using checkpoint_internal::kManifest;
using checkpoint_internal::MakeDir;
using checkpoint_internal::MakeDirs;
using checkpoint_internal::OpenFile;
using checkpoint_internal::ParseManifestFile;
using checkpoint_internal::PwriteAll;
using checkpoint_internal::ReadSmallFile;
using checkpoint_internal::RemoveTree;
using checkpoint_internal::Unlink;
using checkpoint_internal::WriteFileDurably;
using ::kubetrain::v1::CheckpointManifest;
using ::kubetrain::v1::ShardInfo;

constexpr char kAbort[] = "abort";
constexpr char kAttemptKey[] = "kubetrain.attempt";
// Copy-on-write granularity: what one write fault copies.
constexpr size_t kCowChunkBytes = 1 << 20;

std::string ShardFile(int rank) { return absl::StrCat("shard-", rank, ".bin"); }
std::string MetaFile(int rank) { return absl::StrCat("shard-", rank, ".meta"); }

// Sleeps with a growing interval (50 us .. 2 ms) for polling loops: a poll is one stat() or a
// small read, and the wait it adds is part of every multi-rank save.
class Backoff {
 public:
  void Sleep() {
    std::this_thread::sleep_for(std::chrono::microseconds(us_));
    us_ = std::min(us_ * 2, 2000);
  }

 private:
  int us_ = 50;
};

// Host staging memory for SaveAsync: page-aligned, transparent huge pages where available.
struct Staging {
  uint8_t* data = nullptr;
  size_t capacity = 0;
  ~Staging() { Release(); }
  bool pinned = false;  // registered with CUDA for device copies
  void Release() {
    if (pinned) checkpoint_internal::UnpinHost(data);
    if (data != nullptr) ::munmap(data, capacity);
    data = nullptr;
    capacity = 0;
    pinned = false;
  }
  // Page-locks the buffer once, for copies out of device memory.
  absl::Status Pin() {
    if (pinned || capacity == 0) return absl::OkStatus();
    KT_RETURN_IF_ERROR(checkpoint_internal::PinHost(data, capacity));
    pinned = true;
    return absl::OkStatus();
  }
  absl::Status Reserve(size_t size) {
    if (size <= capacity) return absl::OkStatus();
    Release();
    size_t cap = std::max<size_t>(size, 1);
    cap = (cap + (2u << 20) - 1) & ~((size_t{2} << 20) - 1);
    void* p = ::mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "mmap of ", cap, " bytes for the checkpoint staging buffer: ", std::strerror(errno)));
    }
    ::madvise(p, cap, MADV_HUGEPAGE);
    data = static_cast<uint8_t*>(p);
    capacity = cap;
    return absl::OkStatus();
  }
};

// Copies device tensor `b` to `dst` inside `staging`, page-locking the staging buffer first (once);
// errors name the tensor.
absl::Status CopyTensorFromDevice(Staging& staging, uint8_t* dst, const NamedBuffer& b) {
  KT_RETURN_IF_ERROR(staging.Pin());
  if (absl::Status s = checkpoint_internal::CopyFromDevice(dst, b.data, b.size); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("tensor \"", b.name, "\": ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace

const LoadedTensor* LoadedCheckpoint::Find(absl::string_view name) const {
  for (const auto& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

struct Checkpointer::AsyncState {
  std::thread thread;
  absl::Status status;  // of the finished save, valid after join
  Staging staging;
  std::unique_ptr<checkpoint_internal::CowSnapshot> cow;  // kCopyOnWrite, until copied
  int64_t cow_faulted_chunks = 0;
  std::vector<NamedBuffer> views;
  std::map<std::string, std::string> metadata;
};

Checkpointer::Checkpointer(CheckpointOptions options)
    : options_(std::move(options)), async_(std::make_unique<AsyncState>()) {}

Checkpointer::~Checkpointer() {
  absl::Status s = Wait();
  if (!s.ok())
    std::fprintf(stderr, "kubetrain checkpoint: async save failed: %s\n", s.ToString().c_str());
}

absl::StatusOr<std::unique_ptr<Checkpointer>> Checkpointer::Create(CheckpointOptions options) {
  // The rank environment's KUBETRAIN_CHECKPOINT_DIR and restart count (KUBETRAIN_RESTART_COUNT,
  // else TORCHELASTIC_RESTART_COUNT, else "0").
  const rank::RankInfo env = rank::RankInfo::SingleProcess();
  if (options.dir.empty()) options.dir = env.checkpoint_dir;
  if (options.dir.empty()) {
    return absl::InvalidArgumentError(
        "no checkpoint directory: set CheckpointOptions.dir or KUBETRAIN_CHECKPOINT_DIR");
  }
  while (options.dir.size() > 1 && options.dir.back() == '/') options.dir.pop_back();
  if (options.rank < 0 || options.world_size <= 0) {
    absl::StatusOr<rank::RankInfo> me = rank::RankInfo::FromEnvironment();
    if (!me.ok()) {
      return absl::Status(
          me.status().code(),
          absl::StrCat("checkpoint: which shard is this rank's? ", me.status().message(),
                       " (or set CheckpointOptions.rank and .world_size)"));
    }
    if (options.rank < 0) options.rank = me->rank;
    if (options.world_size <= 0) options.world_size = me->world_size;
  }
  if (options.rank >= options.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", options.rank, " out of range for world size ", options.world_size));
  }
  if (options.keep_last < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("keep_last must be >= 1, got ", options.keep_last));
  }
  if (options.chunk_bytes == 0) options.chunk_bytes = 8 << 20;
  if (options.attempt.empty()) options.attempt = env.restart_count;
  KT_RETURN_IF_ERROR(MakeDirs(options.dir));
  return std::unique_ptr<Checkpointer>(new Checkpointer(std::move(options)));
}

std::string Checkpointer::StepDir(int64_t step) const {
  return JoinPath(options_.dir, absl::StrCat("step-", step));
}

absl::Status Checkpointer::Save(int64_t step, absl::Span<const NamedBuffer> buffers,
                                const std::map<std::string, std::string>& metadata) {
  KT_RETURN_IF_ERROR(Wait());
  bool any_device = false;
  for (const auto& b : buffers) any_device |= b.memory == Memory::kCuda && b.size > 0;
  if (!any_device) return SaveImpl(step, buffers, metadata);
  // Device buffers go through the (pinned) staging buffer; host buffers are written in place.
  KT_RETURN_IF_ERROR(StageDeviceBuffers(buffers));
  return SaveImpl(step, async_->views, metadata);
}

absl::Status Checkpointer::StageDeviceBuffers(absl::Span<const NamedBuffer> buffers) {
  size_t device_bytes = 0;
  for (const auto& b : buffers) device_bytes += b.memory == Memory::kCuda ? b.size : 0;
  KT_RETURN_IF_ERROR(async_->staging.Reserve(device_bytes));
  async_->views.clear();
  size_t off = 0;
  for (const auto& b : buffers) {
    if (b.memory != Memory::kCuda) {
      async_->views.push_back(NamedBuffer{b.name, b.data, b.size});
      continue;
    }
    uint8_t* dst = async_->staging.data + off;
    KT_RETURN_IF_ERROR(CopyTensorFromDevice(async_->staging, dst, b));
    async_->views.push_back(NamedBuffer{b.name, dst, b.size});
    off += b.size;
  }
  return absl::OkStatus();
}

absl::Status Checkpointer::SaveAsync(int64_t step, absl::Span<const NamedBuffer> buffers,
                                     const std::map<std::string, std::string>& metadata) {
  KT_RETURN_IF_ERROR(Wait());
  size_t total = 0;
  for (const auto& b : buffers) total += b.size;
  KT_RETURN_IF_ERROR(async_->staging.Reserve(total));
  async_->views.clear();
  std::vector<checkpoint_internal::CowSnapshot::Part> parts;  // host buffers
  size_t off = 0;
  for (const auto& b : buffers) {
    uint8_t* dst = async_->staging.data + off;
    async_->views.push_back(NamedBuffer{b.name, dst, b.size});
    off += b.size;
    if (b.memory != Memory::kCuda) {
      parts.push_back({static_cast<const uint8_t*>(b.data), dst, b.size});
      continue;
    }
    // Device buffers: a DMA copy into the pinned staging buffer, before returning.
    KT_RETURN_IF_ERROR(CopyTensorFromDevice(async_->staging, dst, b));
  }
  async_->cow.reset();
  if (options_.async_snapshot == AsyncSnapshot::kCopyOnWrite) {
    auto cow = checkpoint_internal::CowSnapshot::Start(parts, kCowChunkBytes);
    if (cow.ok()) {
      async_->cow = std::move(*cow);
    } else {
      static std::once_flag warn_once;
      std::call_once(warn_once, [&] {
        std::fprintf(stderr,
                     "kubetrain checkpoint: copy-on-write snapshot not possible (%s); "
                     "SaveAsync copies the buffers instead\n",
                     cow.status().ToString().c_str());
      });
    }
  }
  if (async_->cow == nullptr) {
    for (const auto& p : parts) {
      if (p.size > 0) std::memcpy(p.dst, p.src, p.size);
    }
  }
  async_->metadata = metadata;
  async_->thread = std::thread([this, step] {
    if (async_->cow != nullptr) {  // copy what no write has copied yet, then unprotect
      async_->cow->Finish();
      async_->cow_faulted_chunks = async_->cow->faulted_chunks();
      async_->cow.reset();
    }
    async_->status = SaveImpl(step, async_->views, async_->metadata);
  });
  return absl::OkStatus();
}

absl::Status Checkpointer::Wait() {
  if (!async_->thread.joinable()) return absl::OkStatus();
  async_->thread.join();
  absl::Status s = std::move(async_->status);
  async_->status = absl::OkStatus();
  return s;
}

absl::Status Checkpointer::SaveImpl(int64_t step, absl::Span<const NamedBuffer> buffers,
                                    const std::map<std::string, std::string>& metadata) {
  if (step < 0) return absl::InvalidArgumentError(absl::StrCat("negative step ", step));
  const absl::Time started = absl::Now();
  const int rank = options_.rank;
  const int world = options_.world_size;
  const std::string final_dir = StepDir(step);
  const std::string tmp_dir = absl::StrCat(final_dir, ".tmp");
  if (Exists(final_dir)) {
    return absl::AlreadyExistsError(absl::StrCat("checkpoint ", final_dir, " already exists"));
  }
  if (world == 1) KT_RETURN_IF_ERROR(RemoveTree(tmp_dir));  // stale: we are its only writer
  KT_RETURN_IF_ERROR(MakeDir(tmp_dir, /*exist_ok=*/true));
  const std::string meta_path = JoinPath(tmp_dir, MetaFile(rank));
  KT_RETURN_IF_ERROR(Unlink(meta_path));
  if (rank == 0) KT_RETURN_IF_ERROR(Unlink(JoinPath(tmp_dir, kAbort)));

  // 1. The shard: large pwrite()s, writeback started per chunk, crc32c computed on the way.
  ShardInfo info;
  info.set_rank(rank);
  info.set_file(ShardFile(rank));
  const std::string shard_path = JoinPath(tmp_dir, info.file());
  {
    KT_ASSIGN_OR_RETURN(int raw, OpenFile(shard_path, O_WRONLY | O_CREAT | O_TRUNC));
    Fd fd(raw);
    // Reserve the whole shard first: with writeback started per chunk (below), ranks writing at
    // once would otherwise get interleaved extents, and the restore would read a fragmented file.
    size_t total = 0;
    for (const auto& b : buffers) total += b.size;
    if (total > 0 && ::fallocate(fd.get(), 0, 0, static_cast<off_t>(total)) != 0 &&
        errno != EOPNOTSUPP && errno != ENOSYS) {
      return ErrnoStatus(errno, "fallocate", shard_path);
    }
    uint32_t crc = 0;
    off_t offset = 0;
    const size_t chunk = options_.chunk_bytes;
    for (const auto& b : buffers) {
      auto* entry = info.add_entries();
      entry->set_name(b.name);
      entry->set_offset(offset);
      entry->set_size(static_cast<int64_t>(b.size));
      const auto* p = static_cast<const uint8_t*>(b.data);
      for (size_t done = 0; done < b.size;) {
        size_t n = std::min(chunk, b.size - done);
        KT_RETURN_IF_ERROR(PwriteAll(fd.get(), p + done, n, offset, shard_path));
        // Start writeback of what was just written, so the disk works while we go on; the
        // checksum of the chunk (still in cache) is computed while its writeback is in flight.
        ::sync_file_range(fd.get(), offset, static_cast<off_t>(n), SYNC_FILE_RANGE_WRITE);
        crc = Crc32c(p + done, n, crc);
        offset += static_cast<off_t>(n);
        done += n;
      }
    }
    if (::fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync", shard_path);
    KT_RETURN_IF_ERROR(fd.Close(shard_path));
    info.set_size(offset);
    info.set_checksum(CrcString(crc));
  }
  {
    CheckpointManifest meta;
    meta.set_step(step);
    meta.set_world_size(world);
    *meta.add_shards() = info;
    (*meta.mutable_metadata())[kAttemptKey] = options_.attempt;
    KT_RETURN_IF_ERROR(WriteFileDurably(tmp_dir, MetaFile(rank), meta.SerializeAsString()));
  }

  // 2. Barrier: every rank's shard is durable.
  if (options_.barrier) {
    KT_RETURN_IF_ERROR(options_.barrier());
  }

  if (rank == 0) {
    // 3. Rank 0 collects the shards' metas (waiting for them with the file barrier), writes the
    // manifest and publishes.
    absl::Status publish = [&]() -> absl::Status {
      CheckpointManifest manifest;
      manifest.set_step(step);
      manifest.set_world_size(world);
      for (const auto& [k, v] : metadata) (*manifest.mutable_metadata())[k] = v;
      const absl::Time deadline = absl::Now() + options_.barrier_timeout;
      for (int r = 0; r < world; ++r) {
        const std::string path = JoinPath(tmp_dir, MetaFile(r));
        Backoff backoff;
        for (;;) {
          absl::StatusOr<CheckpointManifest> m = ParseManifestFile(path);
          if (m.ok() && m->shards_size() == 1 && m->step() == step && m->world_size() == world &&
              m->shards(0).rank() == r) {
            auto it = m->metadata().find(kAttemptKey);
            if (it != m->metadata().end() && it->second == options_.attempt) {
              *manifest.add_shards() = m->shards(0);
              break;
            }
          }
          if (!m.ok() && !absl::IsNotFound(m.status())) return m.status();
          if (options_.barrier) {  // the user barrier said every rank finished
            return absl::FailedPreconditionError(absl::StrCat(
                "checkpoint step ", step, ": rank ", r, " passed the barrier without a valid ",
                path, " for attempt ", options_.attempt));
          }
          if (absl::Now() > deadline) {
            return absl::DeadlineExceededError(absl::StrCat(
                "checkpoint step ", step, ": timed out waiting for rank ", r, " (", path, ")"));
          }
          backoff.Sleep();
        }
      }
      manifest.set_created_unix_ms(absl::ToUnixMillis(absl::Now()));
      manifest.set_save_duration_ms(absl::ToInt64Milliseconds(absl::Now() - started));
      manifest.set_attempt(options_.attempt);
      KT_RETURN_IF_ERROR(WriteFileDurably(tmp_dir, kManifest, manifest.SerializeAsString()));
      if (::rename(tmp_dir.c_str(), final_dir.c_str()) != 0) {
        return ErrnoStatus(errno, "rename", absl::StrCat(tmp_dir, " -> ", final_dir));
      }
      KT_RETURN_IF_ERROR(FsyncPath(options_.dir));
      AppendJournal(options_.dir, manifest);
      return absl::OkStatus();
    }();
    if (!publish.ok() && world > 1 && !options_.barrier) {
      (void)WriteFileDurably(tmp_dir, kAbort, options_.attempt);
    }
    if (options_.barrier) {
      absl::Status b = options_.barrier();  // 4. even on failure, so the others do not hang
      if (publish.ok() && !b.ok()) return b;
    }
    KT_RETURN_IF_ERROR(publish);
    return ApplyRetention();
  }

  // 4. The other ranks wait until rank 0 has published.
  if (options_.barrier) {
    KT_RETURN_IF_ERROR(options_.barrier());
  } else {
    const absl::Time deadline = absl::Now() + options_.barrier_timeout;
    Backoff backoff;
    while (Exists(meta_path)) {  // our meta leaves step-<N>.tmp/ when rank 0 renames it
      absl::StatusOr<std::string> abort = ReadSmallFile(JoinPath(tmp_dir, kAbort));
      if (abort.ok() && *abort == options_.attempt) {
        return absl::AbortedError(
            absl::StrCat("checkpoint step ", step, ": rank 0 failed to publish ", tmp_dir));
      }
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "checkpoint step ", step, ": timed out waiting for rank 0 to publish ", final_dir));
      }
      backoff.Sleep();
    }
  }
  if (Exists(JoinPath(final_dir, kManifest))) return absl::OkStatus();
  absl::StatusOr<int64_t> latest = LatestStep();
  if (latest.ok() && *latest > step) return absl::OkStatus();  // published, already retired
  return absl::AbortedError(
      absl::StrCat("checkpoint step ", step, ": not published by rank 0 (", final_dir, ")"));
}

}  // namespace kubetrain::checkpoint
