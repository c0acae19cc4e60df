// Logging setup shared by the launcher, the worker agent and the rank-side libraries.
//
// Every line carries the job, instance and rank it is about, so interleaved output from many
// processes can be told apart:
//   2026-11-23T09:30:01.123 info  [job=calm_apple_x1 inst=0 rank=1] rank started (pid 4242)
// Unknown fields print as "-". Lines go to stderr through spdlog's default logger, so components
// use plain spdlog::info(...) / spdlog::warn(...) after calling InitLogging once.
//
// Thread-safety: InitLogging and SetLogContext replace the default logger's pattern and must not
// race with each other; logging itself is thread-safe (spdlog's _mt sinks).
#ifndef KUBETRAIN_COMMON_LOGGING_H_
#define KUBETRAIN_COMMON_LOGGING_H_

#include <string>

#include "absl/strings/string_view.h"

namespace kubetrain::common {

struct LogContext {
  std::string job;    // job name; empty prints "-"
  int instance = -1;  // instance index (node rank); -1 prints "-"
  int rank = -1;      // global rank; -1 prints "-"
};

// Installs a stderr logger with the context in its pattern. `level` is an spdlog level name
// ("trace", "debug", "info", "warn", "error", "off"); an unknown name means "info".
void InitLogging(const LogContext& context, absl::string_view level = "info");

// Changes the context printed in later lines (e.g. once the job name is known).
void SetLogContext(const LogContext& context);

}  // namespace kubetrain::common

#endif  // KUBETRAIN_COMMON_LOGGING_H_
