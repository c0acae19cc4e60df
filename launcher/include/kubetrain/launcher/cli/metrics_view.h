// How the CLI shows a job's metrics: `kubetrain job metrics NAME [--key K] [-o csv|json]` and the
// latest-metrics section of `kubetrain job show`.
//
// Thread-safety: pure functions writing to the given stream.
#ifndef KUBETRAIN_LAUNCHER_CLI_METRICS_VIEW_H_
#define KUBETRAIN_LAUNCHER_CLI_METRICS_VIEW_H_

#include <ostream>
#include <string>
#include <vector>

#include "kubetrain/storage/workspace.h"
#include "kubetrain/v1/metric.pb.h"
#include "nlohmann/json.hpp"

namespace kubetrain::cli {

// A value as the tables show it: 6 significant digits ("0.125", "1.5e-07", "nan", "inf").
std::string FormatMetricValue(double value);

// One row per key: KEY, LATEST, MIN, MAX, STEP (of the latest), COUNT.
void PrintMetricSummaryTable(const std::vector<storage::MetricKeySummary>& summary,
                             std::ostream& out);
void PrintMetricSummaryCsv(const std::vector<storage::MetricKeySummary>& summary,
                           std::ostream& out);
// [{"key", "latest", "min", "max", "step", "timestamp_ms", "count"}] (non-finite values as the
// strings "NaN", "Infinity", "-Infinity").
nlohmann::json MetricSummaryJson(const std::vector<storage::MetricKeySummary>& summary);

// A one-line chart of `values` at most `width` characters wide (▁▂▃▄▅▆▇█); longer series are
// averaged into `width` buckets. NaN values are skipped; an empty series gives "".
std::string Sparkline(const std::vector<double>& values, int width);

// `--key K`: a summary line, the sparkline scaled to `width` (on a log scale when every value is
// positive and they span two orders of magnitude or more), and a table of at most `max_rows`
// points spread evenly over the history (always the first and the last).
void PrintMetricHistory(const std::string& key, const std::vector<v1::Metric>& history, int width,
                        int max_rows, std::ostream& out);
// step,value,timestamp_ms,rank per point.
void PrintMetricHistoryCsv(const std::vector<v1::Metric>& history, std::ostream& out);
nlohmann::json MetricHistoryJson(const std::vector<v1::Metric>& history);

// The width of the terminal on stdout ($COLUMNS, else 80 when it is not a terminal).
int TerminalWidth();

}  // namespace kubetrain::cli

#endif  // KUBETRAIN_LAUNCHER_CLI_METRICS_VIEW_H_
