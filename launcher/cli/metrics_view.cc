#include "kubetrain/launcher/cli/metrics_view.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kubetrain/launcher/cli/output.h"

namespace kubetrain::cli {
namespace {

nlohmann::json ValueJson(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return v;
}

std::string Csv(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return absl::StrFormat("%.17g", v);
}

}  // namespace

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return absl::StrFormat("%.6g", value);
}

void PrintMetricSummaryTable(const std::vector<storage::MetricKeySummary>& summary,
                             std::ostream& out) {
  Table table({"KEY", "LATEST", "MIN", "MAX", "STEP", "COUNT"});
  for (const auto& s : summary) {
    table.AddRow({s.key, FormatMetricValue(s.latest), FormatMetricValue(s.min),
                  FormatMetricValue(s.max), absl::StrCat(s.latest_step), absl::StrCat(s.count)});
  }
  table.Print(out);
}

void PrintMetricSummaryCsv(const std::vector<storage::MetricKeySummary>& summary,
                           std::ostream& out) {
  out << "key,latest,min,max,step,timestamp_ms,count\n";
  for (const auto& s : summary) {
    // Keys are MLflow metric names (letters, digits, _-./ and spaces); quote one with a comma.
    std::string key =
        s.key.find_first_of(",\"") == std::string::npos ? s.key : absl::StrCat("\"", s.key, "\"");
    out << key << "," << Csv(s.latest) << "," << Csv(s.min) << "," << Csv(s.max) << ","
        << s.latest_step << "," << s.latest_timestamp_ms << "," << s.count << "\n";
  }
}

nlohmann::json MetricSummaryJson(const std::vector<storage::MetricKeySummary>& summary) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : summary) {
    out.push_back({{"key", s.key},
                   {"latest", ValueJson(s.latest)},
                   {"min", ValueJson(s.min)},
                   {"max", ValueJson(s.max)},
                   {"step", s.latest_step},
                   {"timestamp_ms", s.latest_timestamp_ms},
                   {"count", s.count}});
  }
  return out;
}

std::string Sparkline(const std::vector<double>& values, int width) {
  static const char* const kBars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  std::vector<double> finite;
  for (double v : values) {
    if (std::isfinite(v)) finite.push_back(v);
  }
  if (finite.empty() || width <= 0) return "";
  const size_t buckets = std::min(finite.size(), static_cast<size_t>(width));
  std::vector<double> points(buckets);
  for (size_t b = 0; b < buckets; ++b) {
    size_t begin = b * finite.size() / buckets, end = (b + 1) * finite.size() / buckets;
    double sum = 0;
    for (size_t i = begin; i < end; ++i) sum += finite[i];
    points[b] = sum / static_cast<double>(end - begin);
  }
  auto [lo, hi] = std::minmax_element(points.begin(), points.end());
  std::string out;
  for (double p : points) {
    int level = *hi > *lo ? static_cast<int>(std::lround((p - *lo) / (*hi - *lo) * 7)) : 3;
    out += kBars[std::clamp(level, 0, 7)];
  }
  return out;
}

void PrintMetricHistory(const std::string& key, const std::vector<v1::Metric>& history, int width,
                        int max_rows, std::ostream& out) {
  if (history.empty()) {
    out << key << ": no points\n";
    return;
  }
  std::vector<double> values;
  values.reserve(history.size());
  double lo = NAN, hi = NAN;
  for (const auto& m : history) {
    values.push_back(m.value());
    if (!std::isnan(m.value())) {
      if (std::isnan(lo) || m.value() < lo) lo = m.value();
      if (std::isnan(hi) || m.value() > hi) hi = m.value();
    }
  }
  out << key << ": " << history.size() << " point(s), steps " << history.front().step() << ".."
      << history.back().step() << ", min " << FormatMetricValue(lo) << ", max "
      << FormatMetricValue(hi) << ", last " << FormatMetricValue(history.back().value()) << "\n";
  // A loss that falls by orders of magnitude reads better on a log scale.
  const bool log_scale = lo > 0 && hi / lo >= 100;
  if (log_scale) {
    for (double& v : values) v = v > 0 ? std::log10(v) : NAN;
  }
  std::string high = FormatMetricValue(hi), low = FormatMetricValue(lo);
  int label = static_cast<int>(std::max(high.size(), low.size()));
  int chart = std::max(10, width - label - 3);
  out << absl::StrFormat("%*s ┤", label, high) << Sparkline(values, chart) << "\n"
      << absl::StrFormat("%*s ┘", label, low) << (log_scale ? " (log scale)" : "") << "\n\n";
  Table table({"STEP", "VALUE", "TIMESTAMP_MS"});
  size_t n = history.size();
  size_t rows = std::min(n, static_cast<size_t>(std::max(max_rows, 2)));
  size_t last = static_cast<size_t>(-1);
  for (size_t r = 0; r < rows; ++r) {
    size_t i = rows == 1 ? 0 : r * (n - 1) / (rows - 1);
    if (i == last) continue;
    last = i;
    const auto& m = history[i];
    table.AddRow(
        {absl::StrCat(m.step()), FormatMetricValue(m.value()), absl::StrCat(m.timestamp_ms())});
  }
  table.Print(out);
  if (rows < n) {
    out << "(" << rows << " of " << n << " points shown; -o csv prints all of them)\n";
  }
}

void PrintMetricHistoryCsv(const std::vector<v1::Metric>& history, std::ostream& out) {
  out << "step,value,timestamp_ms,rank\n";
  for (const auto& m : history) {
    out << m.step() << "," << Csv(m.value()) << "," << m.timestamp_ms() << "," << m.rank() << "\n";
  }
}

nlohmann::json MetricHistoryJson(const std::vector<v1::Metric>& history) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& m : history) {
    out.push_back({{"step", m.step()},
                   {"value", ValueJson(m.value())},
                   {"timestamp_ms", m.timestamp_ms()},
                   {"rank", m.rank()}});
  }
  return out;
}

int TerminalWidth() {
  winsize ws{};
  if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
    return ws.ws_col;
  }
  if (const char* c = std::getenv("COLUMNS"); c != nullptr && std::atoi(c) > 0) {
    return std::atoi(c);
  }
  return 80;
}

}  // namespace kubetrain::cli
