#include "kubetrain/launcher/backends/local/memory_limit.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kubetrain::backends::local {
namespace {

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  return static_cast<bool>(out);
}

// This process's memory cgroup directory and whether it is v2.
absl::StatusOr<std::pair<std::string, bool>> OwnMemoryCgroup() {
  std::ifstream in("/proc/self/cgroup");
  if (!in) return absl::UnavailableError("cannot read /proc/self/cgroup");
  std::string line, v2_path;
  while (std::getline(in, line)) {
    std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3) continue;
    for (absl::string_view controller : absl::StrSplit(parts[1], ',')) {
      if (controller == "memory") {
        return std::make_pair(absl::StrCat("/sys/fs/cgroup/memory", parts[2]), false);
      }
    }
    if (parts[0] == "0" && parts[1].empty()) v2_path = parts[2];
  }
  for (const char* root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    std::string dir = absl::StrCat(root, v2_path);
    if (access(absl::StrCat(dir, "/cgroup.controllers").c_str(), R_OK) == 0) {
      std::ifstream controllers(absl::StrCat(dir, "/cgroup.controllers"));
      std::string text((std::istreambuf_iterator<char>(controllers)), {});
      if (text.find("memory") != std::string::npos) return std::make_pair(dir, true);
    }
  }
  return absl::UnavailableError("no memory cgroup controller is available to this process");
}

}  // namespace

absl::StatusOr<std::unique_ptr<MemoryLimit>> MemoryLimit::Create(const std::string& name,
                                                                 int64_t bytes) {
  absl::StatusOr<std::pair<std::string, bool>> own = OwnMemoryCgroup();
  if (!own.ok()) return own.status();
  std::string path = absl::StrCat(own->first, "/", name);
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::UnavailableError(
        absl::StrCat("cannot create cgroup ", path, ": ", std::strerror(errno)));
  }
  std::unique_ptr<MemoryLimit> limit(new MemoryLimit(path, own->second));
  std::string file = absl::StrCat(path, own->second ? "/memory.max" : "/memory.limit_in_bytes");
  if (!WriteFile(file, absl::StrCat(bytes))) {
    return absl::UnavailableError(absl::StrCat("cannot write ", file));
  }
  return limit;
}

MemoryLimit::~MemoryLimit() {
  // The directory can go once its processes are gone; retry briefly while the kernel reaps them.
  for (int i = 0; i < 50 && rmdir(path_.c_str()) != 0 && errno == EBUSY; ++i) usleep(10000);
}

absl::Status MemoryLimit::Add(pid_t pid) {
  std::string file = absl::StrCat(path_, "/cgroup.procs");
  if (!WriteFile(file, absl::StrCat(pid))) {
    return absl::UnavailableError(absl::StrCat("cannot move pid ", pid, " into ", path_));
  }
  return absl::OkStatus();
}

}  // namespace kubetrain::backends::local
