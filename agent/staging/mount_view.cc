#include "kubetrain/agent/staging/mount_view.h"

#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "kubetrain/storage/data_stage.h"

namespace kubetrain::agent {
namespace {
namespace fs = std::filesystem;

// Clears `target` (a mount left by an earlier try first) and puts a folder or an empty file there
// to mount onto, the same kind as `source`.
absl::Status MakeMountPoint(const std::string& source, const std::string& target,
                            storage::ViewKind kind) {
  umount2(target.c_str(), MNT_DETACH);  // a view left by an earlier try; fails when there is none
  absl::StatusOr<bool> is_dir = storage::PrepareViewTarget(source, target, kind);
  if (!is_dir.ok()) return is_dir.status();
  std::error_code ec;
  if (*is_dir) {
    fs::create_directory(target, ec);
  } else {
    std::ofstream(target).close();
  }
  return absl::OkStatus();
}

// A bind mount of `source` at the mount point `target`; on failure says why.
bool BindMount(const std::string& source, const std::string& target, std::string* why) {
  if (mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) == 0) return true;
  *why = absl::StrCat("bind mount failed: ", std::strerror(errno));
  return false;
}

// Removes the mount point and makes the symlink instead.
absl::StatusOr<std::string> FallBack(const std::string& source, const std::string& target,
                                     storage::ViewKind kind, const std::string& why) {
  std::error_code ec;
  fs::remove(target, ec);
  return storage::SymlinkView(source, target, kind, why);
}

}  // namespace

absl::StatusOr<std::string> MakeReadOnlyMountView(const std::string& source,
                                                  const std::string& target) {
  constexpr storage::ViewKind kKind = storage::ViewKind::kReadOnly;
  if (absl::Status s = MakeMountPoint(source, target, kKind); !s.ok()) return s;
  std::string why;
  if (BindMount(source, target, &why)) {
    if (mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) == 0) {
      return std::string();
    }
    why = absl::StrCat("remounting read-only failed: ", std::strerror(errno));
    umount2(target.c_str(), MNT_DETACH);
  }
  return FallBack(source, target, kKind, why);
}

absl::StatusOr<std::string> MakeWritableMountView(const std::string& source,
                                                  const std::string& target) {
  constexpr storage::ViewKind kKind = storage::ViewKind::kWritable;
  if (absl::Status s = MakeMountPoint(source, target, kKind); !s.ok()) return s;
  std::string why;
  if (BindMount(source, target, &why)) return std::string("bind mount");
  return FallBack(source, target, kKind, why);
}

}  // namespace kubetrain::agent
