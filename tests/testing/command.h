// Test support: run a shell command and capture what it printed and how it ended.
//
// Thread-safety: RunCommand may be called from several threads; each call owns its pipe.
#ifndef KUBETRAIN_TESTS_TESTING_COMMAND_H_
#define KUBETRAIN_TESTS_TESTING_COMMAND_H_

#include <string>

namespace kubetrain::testing {

struct CommandResult {
  int exit_code = -1;  // the exit status, or 128 + signal when killed
  std::string output;  // stdout and stderr interleaved
};

// Runs `command` under /bin/sh with stderr folded into stdout.
CommandResult RunCommand(const std::string& command);

// The path of the built `kubetrain` binary followed by a space, ready for appending arguments.
std::string KubetrainCli();

}  // namespace kubetrain::testing

#endif  // KUBETRAIN_TESTS_TESTING_COMMAND_H_
