// The agent's own output on stderr: what a person watching `kubetrain-worker` (or `kubectl logs`)
// reads, and what the Kubernetes backend reads back from a pod's log.
//
//   text  "[rank N] line" for rank output, "[mpirun] line" for mpirun's, spdlog's
//         "<time> <level> [job=.. inst=.. rank=..] message" for the agent's own messages
//   json  one v1::LogLine per line in protobuf's JSON mapping (the contract is in launch.proto,
//         next to AgentExit); the reader never parses a text pattern
//
// Thread-safety: WriteRankLine and the JSON log sink each write one whole line per call, under a
// process-wide mutex; SetOutputFormat is called once at start-up, before any other thread runs.
#ifndef KUBETRAIN_AGENT_OUTPUT_H_
#define KUBETRAIN_AGENT_OUTPUT_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kubetrain/v1/log.pb.h"

namespace kubetrain::agent {

enum class OutputFormat { kText, kJson };

// "text" or "json"; anything else is InvalidArgument naming the flag.
absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view name);

// Selects the format of everything below and, for kJson, routes spdlog's default logger (the
// agent's own messages) through a sink that writes LogLine JSON.
void SetOutputFormat(OutputFormat format);
OutputFormat CurrentOutputFormat();

// Echoes one line of rank `rank` (-1: mpirun) on stderr in the current format.
void WriteRankLine(int rank, v1::LogLine::Stream stream, absl::string_view text);

// One LogLine as a single JSON line (no trailing newline) — the json format of a line.
std::string ToJsonLine(const v1::LogLine& line);

}  // namespace kubetrain::agent

#endif  // KUBETRAIN_AGENT_OUTPUT_H_
