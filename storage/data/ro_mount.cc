// ro_mount's read-only view: a read-only bind mount where permitted, else a symlink and a warning.
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kubetrain/storage/data_stage.h"

namespace kubetrain::storage {
namespace fs = std::filesystem;

absl::StatusOr<std::string> MakeReadOnlyView(const std::string& source, const std::string& target,
                                             bool try_mount) {
  std::error_code ec;
  if (!fs::exists(source, ec)) {
    return absl::NotFoundError(absl::StrCat("ro_mount: ", source, " does not exist"));
  }
  const bool is_dir = fs::is_directory(source, ec);
  fs::create_directories(fs::path(target).parent_path(), ec);
  if (try_mount) umount2(target.c_str(), MNT_DETACH);  // a view left by an earlier try
  if (fs::is_symlink(target, ec) || (fs::exists(target, ec) && !fs::is_directory(target, ec))) {
    fs::remove(target, ec);
  } else if (fs::is_directory(target, ec)) {
    fs::remove(target, ec);  // only an empty folder goes; anything else is reported below
  }
  if (fs::exists(target, ec) || fs::is_symlink(target, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "ro_mount: ", target, " already exists and is not empty; remove it and try again"));
  }
  std::string why = "this process has no mount namespace of its own";
  if (try_mount) {
    if (is_dir) {
      fs::create_directory(target, ec);
    } else {
      std::ofstream(target).close();
    }
    if (mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) == 0) {
      if (mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) == 0) {
        return std::string();
      }
      why = absl::StrCat("remounting read-only failed: ", std::strerror(errno));
      umount2(target.c_str(), MNT_DETACH);
    } else {
      why = absl::StrCat("bind mount failed: ", std::strerror(errno));
    }
    fs::remove(target, ec);
  }
  if (symlink(source.c_str(), target.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("ro_mount: cannot link ", target, " to ", source, ": ", std::strerror(errno)));
  }
  return absl::StrCat("ro_mount: a read-only bind mount is not possible here (", why, "); ", target,
                      " is a symlink to ", source,
                      ", which the job can write to — treat it as read-only");
}

absl::StatusOr<std::string> MakeWritableView(const std::string& source, const std::string& target,
                                             bool try_mount) {
  std::error_code ec;
  if (!fs::exists(source, ec)) {
    return absl::NotFoundError(absl::StrCat("rw_mount: ", source, " does not exist"));
  }
  const bool is_dir = fs::is_directory(source, ec);
  fs::create_directories(fs::path(target).parent_path(), ec);
  if (try_mount) umount2(target.c_str(), MNT_DETACH);
  if (fs::is_symlink(target, ec) || (fs::exists(target, ec) && !fs::is_directory(target, ec))) {
    fs::remove(target, ec);
  } else if (fs::is_directory(target, ec)) {
    fs::remove(target, ec);
  }
  if (try_mount) {
    if (is_dir) {
      fs::create_directory(target, ec);
    } else {
      std::ofstream(target).close();
    }
    if (mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) == 0) {
      return std::string("bind mount");
    }
    fs::remove(target, ec);
  }
  if (symlink(source.c_str(), target.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("rw_mount: cannot link ", target, " to ", source, ": ", std::strerror(errno)));
  }
  return std::string("symlink");
}

}  // namespace kubetrain::storage
