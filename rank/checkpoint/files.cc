// POSIX file helpers of the checkpoint library; see files.h.
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "kubetrain/common/status_macros.h"

namespace kubetrain::checkpoint_internal {

using ::kubetrain::v1::CheckpointManifest;
using ::kubetrain::v1::ShardInfo;

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

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status Fd::Close(absl::string_view path) {
  int fd = fd_;
  fd_ = -1;
  if (fd >= 0 && ::close(fd) != 0) return ErrnoStatus(errno, "close", path);
  return absl::OkStatus();
}

absl::StatusOr<int> OpenFile(const std::string& path, int flags, mode_t mode) {
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

}  // namespace kubetrain::checkpoint_internal
