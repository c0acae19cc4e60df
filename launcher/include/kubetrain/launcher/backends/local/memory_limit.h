// A memory limit for one instance, through the memory cgroup this process is in (cgroup v2, or v1's
// memory controller), when the host lets us create a child cgroup there.
//
// Ownership: a MemoryLimit owns its cgroup directory and removes it when destroyed (after the
// processes in it are gone). Thread-safety: not thread-safe.
#ifndef KUBETRAIN_LAUNCHER_BACKENDS_LOCAL_MEMORY_LIMIT_H_
#define KUBETRAIN_LAUNCHER_BACKENDS_LOCAL_MEMORY_LIMIT_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace kubetrain::backends::local {

class MemoryLimit {
 public:
  // Creates cgroup `name` below this process's memory cgroup with `bytes` as its limit.
  // Unavailable (with the reason) when the host does not allow it.
  static absl::StatusOr<std::unique_ptr<MemoryLimit>> Create(const std::string& name,
                                                             int64_t bytes);
  ~MemoryLimit();

  // Moves `pid` into the cgroup; its children are born there.
  absl::Status Add(pid_t pid);

  const std::string& path() const { return path_; }

 private:
  MemoryLimit(std::string path, bool v2) : path_(std::move(path)), v2_(v2) {}
  std::string path_;
  bool v2_;
};

}  // namespace kubetrain::backends::local

#endif  // KUBETRAIN_LAUNCHER_BACKENDS_LOCAL_MEMORY_LIMIT_H_
