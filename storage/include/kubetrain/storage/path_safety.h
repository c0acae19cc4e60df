// Path safety for data staging: no input or output may escape its root.
//
// A name that comes from outside (a blob name, a path in an azureml:// URI, a file in an output
// folder) is checked before it becomes a local path or a blob name: absolute paths, ".." segments
// and NUL bytes are refused, and a symlink inside a tree must resolve inside that tree. Every error
// is InvalidArgument and names the offending path and what it belongs to.
//
// Thread-safety: pure functions (ListTreeInside reads the file system).
#ifndef KUBETRAIN_STORAGE_PATH_SAFETY_H_
#define KUBETRAIN_STORAGE_PATH_SAFETY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kubetrain::storage {

// Normalises a relative path: drops "." and empty segments ("a//./b/" → "a/b", "" → ""). Refuses
// absolute paths (unless `allow_leading_slash`, for URI paths), any ".." segment, backslashes and
// NUL. `what` names the owner in messages ("input 'data'").
absl::StatusOr<std::string> CleanRelativePath(absl::string_view path, absl::string_view what,
                                              bool allow_leading_slash = false);

// root + "/" + CleanRelativePath(relative).
absl::StatusOr<std::string> JoinInside(absl::string_view root, absl::string_view relative,
                                       absl::string_view what);

struct LocalFile {
  std::string relative;  // "sub/file.bin", '/'-separated
  std::string path;      // absolute path to read (a symlink inside the root is read through)
  int64_t size = 0;
};

// Every regular file under `root` (a directory), sorted by relative path. A symlink whose target
// lies outside `root` is an error naming the link and its target; symlinks to directories are not
// descended into. NotFound when root does not exist.
absl::StatusOr<std::vector<LocalFile>> ListTreeInside(const std::string& root,
                                                      absl::string_view what);

}  // namespace kubetrain::storage

#endif  // KUBETRAIN_STORAGE_PATH_SAFETY_H_
