#include "kubetrain/agent/output.h"

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "spdlog/sinks/base_sink.h"
#include "spdlog/spdlog.h"

namespace kubetrain::agent {
namespace {

OutputFormat g_format = OutputFormat::kText;
std::mutex g_write_mu;

void WriteLine(const std::string& line) {
  std::lock_guard<std::mutex> lock(g_write_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fputc('\n', stderr);
  std::fflush(stderr);
}

// spdlog's agent messages as LogLine JSON (stream agent, rank -1).
class JsonLogSink : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    v1::LogLine line;
    line.set_rank(-1);
    line.set_stream(v1::LogLine::STREAM_AGENT);
    line.set_timestamp_ns(absl::ToUnixNanos(absl::FromChrono(msg.time)));
    std::string text(msg.payload.data(), msg.payload.size());
    if (msg.level != spdlog::level::info) {
      spdlog::string_view_t level = spdlog::level::to_string_view(msg.level);
      text = absl::StrCat(std::string(level.data(), level.size()), ": ", text);
    }
    line.set_text(std::move(text));
    WriteLine(ToJsonLine(line));
  }
  void flush_() override { std::fflush(stderr); }
};

}  // namespace

absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view name) {
  if (name == "text") return OutputFormat::kText;
  if (name == "json") return OutputFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("--output '", name, "': use text (default) or json"));
}

void SetOutputFormat(OutputFormat format) {
  g_format = format;
  if (format != OutputFormat::kJson) return;
  auto logger = std::make_shared<spdlog::logger>("kubetrain", std::make_shared<JsonLogSink>());
  logger->set_level(spdlog::default_logger()->level());
  spdlog::set_default_logger(logger);
}

OutputFormat CurrentOutputFormat() { return g_format; }

std::string ToJsonLine(const v1::LogLine& line) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.always_print_primitive_fields = true;  // rank 0 and stream STDOUT are still written
  (void)google::protobuf::util::MessageToJsonString(line, &out, options);
  return out;
}

void WriteRankLine(int rank, v1::LogLine::Stream stream, absl::string_view text) {
  if (g_format == OutputFormat::kJson) {
    v1::LogLine line;
    line.set_rank(rank);
    line.set_stream(stream);
    line.set_timestamp_ns(absl::ToUnixNanos(absl::Now()));
    line.set_text(std::string(text));
    WriteLine(ToJsonLine(line));
    return;
  }
  WriteLine(rank < 0 ? absl::StrCat("[mpirun] ", text) : absl::StrCat("[rank ", rank, "] ", text));
}

}  // namespace kubetrain::agent
