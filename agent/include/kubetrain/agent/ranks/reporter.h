// Reporter: the agent's single path to the outside world for log lines and instance status.
//
// Every line (a rank's stdout / stderr line, or an agent message) gets the job / attempt /
// instance, a timestamp and the next sequence number of this (job, attempt, instance), is echoed to
// the agent's stderr ("[rank N] text"; agent messages through spdlog) and buffered; the buffer goes
// to the AgentSink in batches: when `flush_lines` lines wait or `flush_interval` has passed since
// the last batch. A batch the sink rejects stays buffered and is sent again (sinks are idempotent
// on the sequence number); beyond `max_buffered_lines` the oldest lines are dropped with a warning.
//
// Ownership: does not own the sink (which must outlive it; null means discard). Thread-safety: not
// thread-safe; the agent's main loop owns it.
#ifndef KUBETRAIN_AGENT_RANKS_REPORTER_H_
#define KUBETRAIN_AGENT_RANKS_REPORTER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "kubetrain/agent/sink.h"
#include "kubetrain/v1/log.pb.h"
#include "kubetrain/v1/status.pb.h"

namespace kubetrain::agent {

struct ReporterOptions {
  std::string job;                                          // LogLine.job
  int attempt = 0;                                          // LogLine.attempt
  int instance = 0;                                         // LogLine.instance
  absl::Duration flush_interval = absl::Milliseconds(200);  // at most this long in the buffer
  size_t flush_lines = 500;                                 // send as soon as this many lines wait
  size_t max_buffered_lines = 200000;  // beyond this (sink down), the oldest are dropped
  bool echo_to_stderr = true;          // "[rank N] text" on the agent's stderr
};

class Reporter {
 public:
  Reporter(ReporterOptions options, AgentSink* sink);
  ~Reporter();  // flushes what is left (one try)

  // One line of rank `rank` (-1: mpirun's own output); `text` without the newline.
  void Line(int rank, v1::LogLine::Stream stream, absl::string_view text);
  // An agent message: stored as rank -1 / STREAM_AGENT and logged through spdlog at `level`
  // ("info", "warn" or "error").
  void Agent(absl::string_view text, absl::string_view level = "info");

  // Sends a batch if one is due.
  void MaybeFlush();
  // Sends everything buffered now; the sink's error when it fails (lines stay buffered).
  absl::Status Flush();

  // Sends the instance status; a failure is logged (once per run of failures), not returned.
  void UpdateStatus(const v1::InstanceStatus& status);

  int64_t next_sequence() const { return next_sequence_; }
  size_t buffered() const { return buffer_.size(); }

 private:
  void Add(int rank, v1::LogLine::Stream stream, absl::string_view text);

  ReporterOptions options_;
  AgentSink* sink_;
  std::deque<v1::LogLine> buffer_;
  int64_t next_sequence_ = 0;
  absl::Time last_flush_;
  bool append_failing_ = false;
  bool status_failing_ = false;
  int64_t dropped_ = 0;
};

}  // namespace kubetrain::agent

#endif  // KUBETRAIN_AGENT_RANKS_REPORTER_H_
