// Helpers for the worker tests: text-format plans, temporary directories, process checks.
#ifndef KUBETRAIN_TESTS_AGENT_TEST_UTIL_H_
#define KUBETRAIN_TESTS_AGENT_TEST_UTIL_H_

#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "kubetrain/v1/launch.pb.h"

namespace kubetrain::agent::testing {

inline v1::InstanceLaunch ParsePlan(const std::string& text) {
  v1::InstanceLaunch launch;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &launch)) << text;
  return launch;
}

// A fresh directory under $TMPDIR, removed by the destructor.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "kt-worker-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Whether `pid` exists and is not a zombie.
inline bool PidAlive(pid_t pid) {
  if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM)) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  size_t paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'Z';
}

// Runs `command` under /bin/sh and returns its stdout.
inline std::string ShellOutput(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  pclose(pipe);
  return out;
}

}  // namespace kubetrain::agent::testing

#endif  // KUBETRAIN_TESTS_AGENT_TEST_UTIL_H_
