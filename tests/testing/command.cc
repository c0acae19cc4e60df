#include "tests/testing/command.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>

namespace kubetrain::testing {

CommandResult RunCommand(const std::string& command) {
  CommandResult r;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string KubetrainCli() { return std::string(KUBETRAIN_CLI) + " "; }

}  // namespace kubetrain::testing
