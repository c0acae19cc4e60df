// Files of a checkpoint directory (kubetrain/rank/checkpoint.h describes the layout): the POSIX
// calls the Checkpointer makes, with errno turned into absl::Status (the code from the errno, the
// message naming the call and the path), retried on EINTR, and durable where it matters.
//
// Thread-safety: free functions without shared state; concurrent calls on different paths are
// safe, and concurrent calls on one path behave as the underlying system calls do. Fd is not
// thread-safe (one owner).
#ifndef KUBETRAIN_RANK_CHECKPOINT_FILES_H_
#define KUBETRAIN_RANK_CHECKPOINT_FILES_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kubetrain/v1/checkpoint.pb.h"

namespace kubetrain::checkpoint_internal {

// Names in a checkpoint directory.
inline constexpr char kManifest[] = "manifest.pb";         // in step-<N>/, written last by rank 0
inline constexpr char kJournal[] = "checkpoints.journal";  // in the checkpoint directory

// The absl::StatusCode for an errno value (ENOENT: NotFound, ENOSPC: ResourceExhausted, ...).
absl::StatusCode CodeForErrno(int err);

// "<op> <path>: <strerror(err)>" with the code CodeForErrno(err).
absl::Status ErrnoStatus(int err, absl::string_view op, absl::string_view path);

// `a`/`b`, without doubling a trailing '/' of `a`.
std::string JoinPath(absl::string_view a, absl::string_view b);

// An fd closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd();
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes, reporting the error (close can report a deferred write error).
  absl::Status Close(absl::string_view path);

 private:
  int fd_;
};

// open(2) with O_CLOEXEC added; the raw fd, for an Fd to own.
absl::StatusOr<int> OpenFile(const std::string& path, int flags, mode_t mode = 0644);

// fsyncs the directory `path` (after a rename or a create in it).
absl::Status FsyncPath(const std::string& path);

// Writes all `size` bytes at `offset` of `fd`; errors name `path`.
absl::Status PwriteAll(int fd, const uint8_t* data, size_t size, off_t offset,
                       const std::string& path);

// Reads exactly `size` bytes at `offset` of `fd`; DataLoss at an early end of file.
absl::Status PreadAll(int fd, uint8_t* data, size_t size, off_t offset, const std::string& path);

// The whole file at `path`.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path);

// Writes `contents` to `dir`/`name` atomically and durably: temporary file, fsync, rename, fsync
// of `dir`.
absl::Status WriteFileDurably(const std::string& dir, const std::string& name,
                              absl::string_view contents);

// Appends "<step> <bytes> <save ms> <created unix ms> <attempt>" for a published checkpoint to
// `dir`/checkpoints.journal with one O_APPEND write. Best effort: the checkpoint is already
// published, and ListPublishedCheckpoints also finds it by its directory.
void AppendJournal(const std::string& dir, const kubetrain::v1::CheckpointManifest& m);

// Whether `path` exists (stat succeeds).
bool Exists(const std::string& path);

// mkdir `path` (0755); with `exist_ok`, an existing directory is fine.
absl::Status MakeDir(const std::string& path, bool exist_ok);

// mkdir -p `path`; InvalidArgument when it is empty.
absl::Status MakeDirs(const std::string& path);

// rm -rf `path` (no symlink following); OK when it does not exist.
absl::Status RemoveTree(const std::string& path);

// unlink `path`; OK when it does not exist.
absl::Status Unlink(const std::string& path);

// Parses "step-<N>" + `suffix`: N, or nullopt for any other name.
std::optional<int64_t> ParseStepName(absl::string_view name, absl::string_view suffix);

// The names in directory `dir` ("." and ".." included).
absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir);

// Reads and parses a CheckpointManifest (manifest.pb or a shard's .meta); DataLoss if it does not
// parse.
absl::StatusOr<kubetrain::v1::CheckpointManifest> ParseManifestFile(const std::string& path);

// A shard checksum as recorded in ShardInfo.checksum: "crc32c:<8 hex digits>".
std::string CrcString(uint32_t crc);

}  // namespace kubetrain::checkpoint_internal

#endif  // KUBETRAIN_RANK_CHECKPOINT_FILES_H_
