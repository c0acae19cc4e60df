#include "tests/testing/processes.h"

#include <dirent.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

namespace kubetrain::testing {

std::vector<pid_t> JobProcesses(const std::string& job, int rank) {
  std::vector<pid_t> out;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* e = readdir(proc)) {
    pid_t pid = atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream env(std::string("/proc/") + e->d_name + "/environ", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(env)), {});
    std::set<std::string> vars;
    std::stringstream ss(text);
    for (std::string v; std::getline(ss, v, '\0');) vars.insert(v);
    if (!vars.count("KUBETRAIN_JOB=" + job)) continue;
    if (rank >= 0 && !vars.count("RANK=" + std::to_string(rank)) &&
        !vars.count("OMPI_COMM_WORLD_RANK=" + std::to_string(rank))) {
      continue;
    }
    out.push_back(pid);
  }
  closedir(proc);
  return out;
}

}  // namespace kubetrain::testing
