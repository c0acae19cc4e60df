#include "kubetrain/storage/path_safety.h"

#include <algorithm>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace kubetrain::storage {
namespace fs = std::filesystem;

absl::StatusOr<std::string> CleanRelativePath(absl::string_view path, absl::string_view what,
                                              bool allow_leading_slash) {
  auto refuse = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": the path '", path, "' would escape its root (", why, "); use a path inside it"));
  };
  if (path.find('\0') != absl::string_view::npos) return refuse("it contains a NUL byte");
  if (path.find('\\') != absl::string_view::npos) return refuse("it contains a backslash");
  if (!allow_leading_slash && absl::StartsWith(path, "/")) return refuse("it is absolute");
  std::vector<absl::string_view> parts;
  for (absl::string_view seg : absl::StrSplit(path, '/')) {
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") return refuse("it has a '..' segment");
    parts.push_back(seg);
  }
  return absl::StrJoin(parts, "/");
}

absl::StatusOr<std::string> JoinInside(absl::string_view root, absl::string_view relative,
                                       absl::string_view what) {
  absl::StatusOr<std::string> clean = CleanRelativePath(relative, what);
  if (!clean.ok()) return clean.status();
  if (clean->empty()) return std::string(root);
  return absl::StrCat(root, "/", *clean);
}

namespace {

bool Inside(const fs::path& root, const fs::path& p) {
  auto r = root.begin(), q = p.begin();
  for (; r != root.end(); ++r, ++q) {
    if (r->empty()) continue;  // a trailing separator
    if (q == p.end() || *r != *q) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<LocalFile>> ListTreeInside(const std::string& root,
                                                      absl::string_view what) {
  std::error_code ec;
  fs::path canonical_root = fs::canonical(root, ec);
  if (ec) {
    return absl::NotFoundError(absl::StrCat(what, ": ", root, ": ", ec.message()));
  }
  std::vector<LocalFile> files;
  fs::recursive_directory_iterator it(canonical_root, fs::directory_options::none, ec);
  if (ec)
    return absl::InternalError(absl::StrCat(what, ": cannot read ", root, ": ", ec.message()));
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) {
      return absl::InternalError(absl::StrCat(what, ": cannot read ", root, ": ", ec.message()));
    }
    const fs::directory_entry& e = *it;
    fs::path rel = e.path().lexically_relative(canonical_root);
    if (e.is_symlink(ec)) {
      fs::path target = fs::weakly_canonical(e.path(), ec);
      if (ec || !Inside(canonical_root, target)) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": '", rel.string(), "' is a symlink to '",
                         fs::read_symlink(e.path(), ec).string(), "', outside ", root,
                         "; a symlink must stay inside the folder (copy the file in)"));
      }
      if (fs::is_directory(target, ec)) continue;  // not descended into
      if (!fs::is_regular_file(target, ec)) continue;
      files.push_back(
          {rel.generic_string(), target.string(), static_cast<int64_t>(fs::file_size(target, ec))});
      continue;
    }
    if (e.is_regular_file(ec)) {
      files.push_back(
          {rel.generic_string(), e.path().string(), static_cast<int64_t>(e.file_size(ec))});
    }
  }
  std::sort(files.begin(), files.end(),
            [](const LocalFile& a, const LocalFile& b) { return a.relative < b.relative; });
  return files;
}

}  // namespace kubetrain::storage
