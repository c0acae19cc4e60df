#include "kubetrain/agent/ranks/reporter.h"

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kubetrain/agent/output.h"
#include "spdlog/spdlog.h"

namespace kubetrain::agent {

Reporter::Reporter(ReporterOptions options, AgentSink* sink)
    : options_(std::move(options)), sink_(sink), last_flush_(absl::Now()) {}

Reporter::~Reporter() { (void)Flush(); }

void Reporter::Add(int rank, v1::LogLine::Stream stream, absl::string_view text) {
  v1::LogLine line;
  line.set_job(options_.job);
  line.set_attempt(options_.attempt);
  line.set_instance(options_.instance);
  line.set_rank(rank);
  line.set_stream(stream);
  line.set_timestamp_ns(absl::ToUnixNanos(absl::Now()));
  line.set_text(std::string(text));
  line.set_sequence(next_sequence_++);
  buffer_.push_back(std::move(line));
  if (buffer_.size() > options_.max_buffered_lines) {
    buffer_.pop_front();
    if (dropped_++ == 0) {
      spdlog::warn("workspace unreachable and {} log lines buffered; dropping the oldest",
                   options_.max_buffered_lines);
    }
  }
}

void Reporter::Line(int rank, v1::LogLine::Stream stream, absl::string_view text) {
  if (options_.echo_to_stderr) WriteRankLine(rank, stream, text);
  Add(rank, stream, text);
  if (buffer_.size() >= options_.flush_lines) MaybeFlush();
}

void Reporter::Agent(absl::string_view text, absl::string_view level) {
  if (options_.echo_to_stderr) {
    if (level == "error") {
      spdlog::error("{}", std::string(text));
    } else if (level == "warn") {
      spdlog::warn("{}", std::string(text));
    } else {
      spdlog::info("{}", std::string(text));
    }
  }
  Add(-1, v1::LogLine::STREAM_AGENT, text);
}

void Reporter::MaybeFlush() {
  if (buffer_.empty()) return;
  if (buffer_.size() >= options_.flush_lines ||
      absl::Now() - last_flush_ >= options_.flush_interval) {
    (void)Flush();
  }
}

absl::Status Reporter::Flush() {
  last_flush_ = absl::Now();
  if (sink_ == nullptr) {
    buffer_.clear();
    return absl::OkStatus();
  }
  while (!buffer_.empty()) {
    const size_t n = std::min(buffer_.size(), std::max<size_t>(1, options_.flush_lines));
    std::vector<v1::LogLine> batch(buffer_.begin(), buffer_.begin() + n);
    absl::Status status = sink_->AppendLogs(batch);
    if (!status.ok()) {
      if (!append_failing_)
        spdlog::warn("cannot store log lines in the workspace: {}", status.ToString());
      append_failing_ = true;
      return status;
    }
    if (append_failing_) spdlog::info("storing log lines in the workspace again");
    append_failing_ = false;
    buffer_.erase(buffer_.begin(), buffer_.begin() + n);
  }
  return absl::OkStatus();
}

void Reporter::UpdateStatus(const v1::InstanceStatus& status) {
  if (sink_ == nullptr) return;
  absl::Status s = sink_->UpdateInstanceStatus(status);
  if (!s.ok() && !status_failing_) {
    spdlog::warn("cannot store the instance status in the workspace: {}", s.ToString());
  }
  status_failing_ = !s.ok();
}

}  // namespace kubetrain::agent
