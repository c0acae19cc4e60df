#include "kubetrain/common/logging.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace kubetrain::common {
namespace {

std::string Field(int value) { return value < 0 ? "-" : absl::StrCat(value); }

std::string Pattern(const LogContext& c) {
  return absl::StrCat("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [job=", c.job.empty() ? "-" : c.job,
                      " inst=", Field(c.instance), " rank=", Field(c.rank), "] %v");
}

}  // namespace

void InitLogging(const LogContext& context, absl::string_view level) {
  std::shared_ptr<spdlog::logger> logger = spdlog::get("kubetrain");
  if (logger == nullptr) logger = spdlog::stderr_color_mt("kubetrain");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(std::string(level.data(), level.size())));
  SetLogContext(context);
}

void SetLogContext(const LogContext& context) { spdlog::set_pattern(Pattern(context)); }

}  // namespace kubetrain::common
