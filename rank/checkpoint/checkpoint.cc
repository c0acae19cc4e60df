// Checkpointer implementation; see kubetrain/rank/checkpoint.h for the layout and protocol.
#include "kubetrain/rank/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "cow_snapshot.h"
#include "device_memory.h"
#include "kubetrain/common/status_macros.h"
#include "kubetrain/rank/rank_info.h"
#include "kubetrain/v1/checkpoint.pb.h"

namespace kubetrain::checkpoint {
namespace {

using ::kubetrain::v1::CheckpointManifest;
using ::kubetrain::v1::ShardInfo;

constexpr char kManifest[] = "manifest.pb";
constexpr char kKeepMarker[] = "keep";
constexpr char kAbort[] = "abort";
constexpr char kAttemptKey[] = "kubetrain.attempt";
constexpr char kJournal[] = "checkpoints.journal";
// Copy-on-write granularity: what one write fault copies.
constexpr size_t kCowChunkBytes = 1 << 20;

absl::StatusCode CodeForErrno(int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::StatusCode::kNotFound;
    case EEXIST:
    case ENOTEMPTY:
      return absl::StatusCode::kAlreadyExists;
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::StatusCode::kPermissionDenied;
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
      return absl::StatusCode::kResourceExhausted;
    case EINVAL:
    case ENAMETOOLONG:
      return absl::StatusCode::kInvalidArgument;
    case EAGAIN:
    case EINTR:
    case EBUSY:
      return absl::StatusCode::kUnavailable;
    case EIO:
      return absl::StatusCode::kDataLoss;
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::Status ErrnoStatus(int err, absl::string_view op, absl::string_view path) {
  return absl::Status(CodeForErrno(err), absl::StrCat(op, " ", path, ": ", std::strerror(err)));
}

std::string JoinPath(absl::string_view a, absl::string_view b) {
  if (!a.empty() && a.back() == '/') return absl::StrCat(a, b);
  return absl::StrCat(a, "/", b);
}

std::string ShardFile(int rank) { return absl::StrCat("shard-", rank, ".bin"); }
std::string MetaFile(int rank) { return absl::StrCat("shard-", rank, ".meta"); }

// An fd closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes, reporting the error (close can report a deferred write error).
  absl::Status Close(absl::string_view path) {
    int fd = fd_;
    fd_ = -1;
    if (fd >= 0 && ::close(fd) != 0) return ErrnoStatus(errno, "close", path);
    return absl::OkStatus();
  }

 private:
  int fd_;
};

absl::StatusOr<int> OpenFile(const std::string& path, int flags, mode_t mode = 0644) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoStatus(errno, "open", path);
  return fd;
}

absl::Status FsyncPath(const std::string& path) {
  KT_ASSIGN_OR_RETURN(int raw, OpenFile(path, O_RDONLY | O_DIRECTORY));
  Fd fd(raw);
  if (::fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync", path);
  return fd.Close(path);
}

absl::Status PwriteAll(int fd, const uint8_t* data, size_t size, off_t offset,
                       const std::string& path) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write", path);
    }
    data += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
  return absl::OkStatus();
}

absl::Status PreadAll(int fd, uint8_t* data, size_t size, off_t offset, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::pread(fd, data, size, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", path);
    }
    if (n == 0) return absl::DataLossError(absl::StrCat("read ", path, ": unexpected end of file"));
    data += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  KT_ASSIGN_OR_RETURN(int raw, OpenFile(path, O_RDONLY));
  Fd fd(raw);
  std::string out;
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Writes `contents` to `dir`/`name` atomically and durably: temporary file, fsync, rename, fsync
// of `dir`.
absl::Status WriteFileDurably(const std::string& dir, const std::string& name,
                              absl::string_view contents) {
  const std::string final_path = JoinPath(dir, name);
  const std::string part = absl::StrCat(final_path, ".part");
  {
    KT_ASSIGN_OR_RETURN(int raw, OpenFile(part, O_WRONLY | O_CREAT | O_TRUNC));
    Fd fd(raw);
    KT_RETURN_IF_ERROR(PwriteAll(fd.get(), reinterpret_cast<const uint8_t*>(contents.data()),
                                 contents.size(), 0, part));
    if (::fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync", part);
    KT_RETURN_IF_ERROR(fd.Close(part));
  }
  if (::rename(part.c_str(), final_path.c_str()) != 0) {
    return ErrnoStatus(errno, "rename", absl::StrCat(part, " -> ", final_path));
  }
  return FsyncPath(dir);
}

// Appends "<step> <bytes> <save ms> <created unix ms> <attempt>" for a published checkpoint to
// `dir`/checkpoints.journal with one O_APPEND write. Best effort: the checkpoint is already
// published, and ListPublishedCheckpoints also finds it by its directory.
void AppendJournal(const std::string& dir, const CheckpointManifest& m) {
  int64_t bytes = 0;
  for (const ShardInfo& s : m.shards()) bytes += s.size();
  std::string attempt = m.attempt().empty() ? "0" : m.attempt();
  for (char& c : attempt) {
    if (c == ' ' || c == '\n') c = '_';
  }
  const std::string line = absl::StrCat(m.step(), " ", bytes, " ", m.save_duration_ms(), " ",
                                        m.created_unix_ms(), " ", attempt, "\n");
  const std::string path = JoinPath(dir, kJournal);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0 || ::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    std::fprintf(stderr, "kubetrain checkpoint: cannot append to %s: %s\n", path.c_str(),
                 std::strerror(errno));
  }
  if (fd >= 0) ::close(fd);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

absl::Status MakeDir(const std::string& path, bool exist_ok) {
  if (::mkdir(path.c_str(), 0755) == 0) return absl::OkStatus();
  if (errno == EEXIST && exist_ok) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return absl::OkStatus();
  }
  return ErrnoStatus(errno, "mkdir", path);
}

absl::Status MakeDirs(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("empty checkpoint directory");
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos == path.size() || path[pos] == '/') {
      KT_RETURN_IF_ERROR(MakeDir(path.substr(0, pos), /*exist_ok=*/true));
    }
  }
  return absl::OkStatus();
}

// rm -rf `path` (no symlink following).
absl::Status RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, "stat", path);
  }
  if (S_ISDIR(st.st_mode)) {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return ErrnoStatus(errno, "opendir", path);
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      names.emplace_back(e->d_name);
    }
    ::closedir(d);
    for (const auto& n : names) KT_RETURN_IF_ERROR(RemoveTree(JoinPath(path, n)));
    if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, "rmdir", path);
    return absl::OkStatus();
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, "unlink", path);
  return absl::OkStatus();
}

absl::Status Unlink(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, "unlink", path);
  return absl::OkStatus();
}

// Parses "step-<N>" + `suffix`.
std::optional<int64_t> ParseStepName(absl::string_view name, absl::string_view suffix) {
  if (!absl::ConsumePrefix(&name, "step-")) return std::nullopt;
  if (!absl::ConsumeSuffix(&name, suffix)) return std::nullopt;
  if (name.empty() || name.size() > 18) return std::nullopt;
  for (char c : name) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  int64_t step;
  if (!absl::SimpleAtoi(name, &step)) return std::nullopt;
  return step;
}

absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus(errno, "opendir", dir);
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
  ::closedir(d);
  return names;
}

absl::StatusOr<CheckpointManifest> ParseManifestFile(const std::string& path) {
  KT_ASSIGN_OR_RETURN(std::string bytes, ReadSmallFile(path));
  CheckpointManifest m;
  if (!m.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat("cannot parse checkpoint manifest ", path));
  }
  return m;
}

std::string CrcString(uint32_t crc) { return absl::StrFormat("crc32c:%08x", crc); }

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? std::string(v) : fallback;
}

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
  if (options.dir.empty()) options.dir = EnvOr("KUBETRAIN_CHECKPOINT_DIR", "");
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
  if (options.attempt.empty()) {
    options.attempt = EnvOr("KUBETRAIN_RESTART_COUNT", EnvOr("TORCHELASTIC_RESTART_COUNT", "0"));
  }
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

namespace {

// Validates step-<N>/: manifest parses and matches, every shard file exists with its size.
absl::StatusOr<CheckpointManifest> ReadCompleteManifest(const std::string& step_dir, int64_t step) {
  KT_ASSIGN_OR_RETURN(CheckpointManifest m, ParseManifestFile(JoinPath(step_dir, kManifest)));
  if (m.step() != step || m.world_size() <= 0 || m.shards_size() != m.world_size()) {
    return absl::DataLossError(absl::StrCat("inconsistent checkpoint manifest in ", step_dir));
  }
  for (int r = 0; r < m.shards_size(); ++r) {
    const ShardInfo& s = m.shards(r);
    if (s.rank() != r || s.file().empty() || absl::StrContains(s.file(), "/")) {
      return absl::DataLossError(
          absl::StrCat("checkpoint manifest in ", step_dir, ": bad shard entry ", r));
    }
    const std::string path = JoinPath(step_dir, s.file());
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "stat", path);
    if (st.st_size != s.size()) {
      return absl::DataLossError(absl::StrCat("checkpoint step ", step, ": shard of rank ", r, " (",
                                              path, ") has ", st.st_size, " bytes, manifest says ",
                                              s.size()));
    }
  }
  return m;
}

}  // namespace

absl::StatusOr<std::vector<PublishedCheckpoint>> ListPublishedCheckpoints(const std::string& dir) {
  std::map<int64_t, PublishedCheckpoint> found;
  if (absl::StatusOr<std::string> journal = ReadSmallFile(JoinPath(dir, kJournal)); journal.ok()) {
    for (absl::string_view line : absl::StrSplit(*journal, '\n')) {
      std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
      PublishedCheckpoint c;
      if (f.size() != 5 || !absl::SimpleAtoi(f[0], &c.step) ||
          !absl::SimpleAtoi(f[1], &c.size_bytes) || !absl::SimpleAtoi(f[2], &c.save_duration_ms) ||
          !absl::SimpleAtoi(f[3], &c.created_unix_ms) || c.step < 0) {
        continue;  // a torn last line of a crashed append
      }
      c.attempt = std::string(f[4]);
      c.location = JoinPath(dir, absl::StrCat("step-", c.step));
      found[c.step] = std::move(c);
    }
  } else if (!absl::IsNotFound(journal.status())) {
    return journal.status();
  }
  absl::StatusOr<std::vector<std::string>> names = ListDir(dir);
  if (!names.ok()) {
    if (absl::IsNotFound(names.status())) return std::vector<PublishedCheckpoint>();
    return names.status();
  }
  for (const auto& n : *names) {
    std::optional<int64_t> step = ParseStepName(n, "");
    if (!step) continue;
    absl::StatusOr<CheckpointManifest> m = ReadCompleteManifest(JoinPath(dir, n), *step);
    if (!m.ok()) continue;
    if (auto it = found.find(*step); it != found.end()) {
      it->second.present = true;
      continue;
    }
    PublishedCheckpoint c;
    c.step = *step;
    for (const ShardInfo& shard : m->shards()) c.size_bytes += shard.size();
    c.save_duration_ms = m->save_duration_ms();
    c.created_unix_ms = m->created_unix_ms();
    c.attempt = m->attempt();
    c.location = JoinPath(dir, n);
    c.present = true;
    found[c.step] = std::move(c);
  }
  std::vector<PublishedCheckpoint> out;
  for (auto& [step, c] : found) out.push_back(std::move(c));
  return out;
}

absl::StatusOr<std::vector<int64_t>> Checkpointer::CompleteSteps() const {
  KT_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(options_.dir));
  std::vector<int64_t> steps;
  for (const auto& n : names) {
    std::optional<int64_t> step = ParseStepName(n, "");
    if (!step) continue;
    if (ReadCompleteManifest(JoinPath(options_.dir, n), *step).ok()) steps.push_back(*step);
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

absl::StatusOr<int64_t> Checkpointer::LatestStep() const {
  KT_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(options_.dir));
  std::vector<int64_t> steps;
  for (const auto& n : names) {
    if (std::optional<int64_t> step = ParseStepName(n, "")) steps.push_back(*step);
  }
  std::sort(steps.rbegin(), steps.rend());
  for (int64_t step : steps) {
    if (ReadCompleteManifest(StepDir(step), step).ok()) return step;
  }
  return absl::NotFoundError(absl::StrCat("no complete checkpoint in ", options_.dir));
}

absl::StatusOr<LoadedCheckpoint> Checkpointer::Load(int64_t step) const {
  return LoadShard(step, options_.rank);
}

absl::StatusOr<LoadedCheckpoint> Checkpointer::LoadShard(int64_t step, int rank) const {
  const std::string step_dir = StepDir(step);
  KT_ASSIGN_OR_RETURN(CheckpointManifest m, ReadCompleteManifest(step_dir, step));
  if (rank == options_.rank && m.world_size() != options_.world_size) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint ", step_dir, " was saved by ",
                                                      m.world_size(), " ranks, this job has ",
                                                      options_.world_size));
  }
  if (rank < 0 || rank >= m.world_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " not in checkpoint ", step_dir, " of ", m.world_size()));
  }
  const ShardInfo& info = m.shards(rank);
  const std::string path = JoinPath(step_dir, info.file());
  LoadedCheckpoint out;
  out.step = step;
  out.world_size = m.world_size();
  out.rank = rank;
  out.size = static_cast<size_t>(info.size());
  out.bytes.reset(new uint8_t[std::max<size_t>(out.size, 1)]);
  {
    KT_ASSIGN_OR_RETURN(int raw, OpenFile(path, O_RDONLY));
    Fd fd(raw);
    ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    // A reader thread issues the large pread()s back to back, as a plain sequential read would;
    // this thread checksums what has arrived behind it.
    const size_t chunk = options_.chunk_bytes;
    std::mutex mu;
    std::condition_variable cv;
    size_t arrived = 0;
    absl::Status read_status;
    std::thread reader([&] {
      for (size_t off = 0; off < out.size;) {
        size_t n = std::min(chunk, out.size - off);
        absl::Status s =
            PreadAll(fd.get(), out.bytes.get() + off, n, static_cast<off_t>(off), path);
        std::lock_guard<std::mutex> lock(mu);
        if (!s.ok()) {
          read_status = std::move(s);
          cv.notify_all();
          return;
        }
        off += n;
        arrived = off;
        cv.notify_all();
      }
    });
    uint32_t crc = 0;
    for (size_t checked = 0; checked < out.size;) {
      size_t until;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return arrived > checked || !read_status.ok(); });
        if (!read_status.ok()) break;
        until = arrived;
      }
      crc = Crc32c(out.bytes.get() + checked, until - checked, crc);
      checked = until;
    }
    reader.join();
    KT_RETURN_IF_ERROR(read_status);
    if (CrcString(crc) != info.checksum()) {
      return absl::DataLossError(absl::StrCat("checkpoint step ", step, ": shard of rank ", rank,
                                              " (", path, ") is corrupt: ", CrcString(crc),
                                              ", manifest says ", info.checksum()));
    }
  }
  for (const auto& e : info.entries()) {
    if (e.offset() < 0 || e.size() < 0 ||
        static_cast<uint64_t>(e.offset()) + static_cast<uint64_t>(e.size()) > out.size) {
      return absl::DataLossError(absl::StrCat("checkpoint step ", step, ": tensor '", e.name(),
                                              "' of rank ", rank, " is outside ", path));
    }
    out.tensors.push_back(LoadedTensor{
        e.name(),
        absl::Span<const uint8_t>(out.bytes.get() + e.offset(), static_cast<size_t>(e.size()))});
  }
  for (const auto& [k, v] : m.metadata()) out.metadata[k] = v;
  return out;
}

absl::Status Checkpointer::VerifyAll(int64_t step) const {
  KT_ASSIGN_OR_RETURN(CheckpointManifest m, ReadCompleteManifest(StepDir(step), step));
  for (int r = 0; r < m.world_size(); ++r) {
    KT_RETURN_IF_ERROR(LoadShard(step, r).status());
  }
  return absl::OkStatus();
}

absl::Status Checkpointer::MarkKeep(int64_t step) {
  const std::string step_dir = StepDir(step);
  KT_RETURN_IF_ERROR(ReadCompleteManifest(step_dir, step).status());
  return WriteFileDurably(step_dir, kKeepMarker, "");
}

absl::Status Checkpointer::ApplyRetention() {
  KT_ASSIGN_OR_RETURN(std::vector<int64_t> complete, CompleteSteps());
  KT_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(options_.dir));
  const int64_t newest = complete.empty() ? -1 : complete.back();
  std::vector<std::string> doomed;  // names under dir to remove
  const size_t keep = static_cast<size_t>(options_.keep_last);
  for (size_t i = 0; i + keep < complete.size(); ++i) {  // all but the newest `keep`
    int64_t step = complete[i];
    if (step == newest) continue;
    if (Exists(JoinPath(StepDir(step), kKeepMarker))) continue;
    const std::string from = StepDir(step);
    const std::string to = absl::StrCat(from, ".deleting");
    KT_RETURN_IF_ERROR(RemoveTree(to));  // left by a crash mid-delete of an earlier save
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoStatus(errno, "rename", absl::StrCat(from, " -> ", to));
    }
    doomed.push_back(to);
  }
  if (!doomed.empty()) KT_RETURN_IF_ERROR(FsyncPath(options_.dir));
  for (const auto& n : names) {
    if (ParseStepName(n, ".deleting")) {
      doomed.push_back(JoinPath(options_.dir, n));
    } else if (std::optional<int64_t> s = ParseStepName(n, ".tmp"); s && *s < newest) {
      doomed.push_back(JoinPath(options_.dir, n));  // abandoned: every rank has moved past it
    }
  }
  for (const auto& path : doomed) KT_RETURN_IF_ERROR(RemoveTree(path));
  return absl::OkStatus();
}

}  // namespace kubetrain::checkpoint
