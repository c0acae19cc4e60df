// Tests of how the CLI shows metrics (launcher/cli/metrics_view.h).
#include "kubetrain/launcher/cli/metrics_view.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kubetrain::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

int Glyphs(const std::string& utf8) {  // every bar is 3 bytes of UTF-8
  return static_cast<int>(utf8.size() / 3);
}

TEST(MetricsViewTest, SparklineRisesAndFallsWithTheValues) {
  EXPECT_EQ(Sparkline({0, 1, 2, 3, 4, 5, 6, 7}, 80), "▁▂▃▄▅▆▇█");
  EXPECT_EQ(Sparkline({7, 0}, 80), "█▁");
  EXPECT_EQ(Sparkline({}, 80), "");
  EXPECT_EQ(Sparkline({std::numeric_limits<double>::quiet_NaN()}, 80), "");
  EXPECT_EQ(Glyphs(Sparkline({5, 5, 5}, 80)), 3);  // flat: mid-height bars
}

TEST(MetricsViewTest, LongSeriesAreAveragedToTheWidth) {
  std::vector<double> v(10000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  std::string line = Sparkline(v, 40);
  EXPECT_EQ(Glyphs(line), 40);
  EXPECT_EQ(line.substr(0, 3), "▁");
  EXPECT_EQ(line.substr(line.size() - 3), "█");
}

TEST(MetricsViewTest, FormatsValues) {
  EXPECT_EQ(FormatMetricValue(0.125), "0.125");
  EXPECT_EQ(FormatMetricValue(1.0 / 3), "0.333333");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::quiet_NaN()), "nan");
  EXPECT_EQ(FormatMetricValue(-std::numeric_limits<double>::infinity()), "-inf");
}

TEST(MetricsViewTest, SummaryTableCsvAndJson) {
  storage::MetricKeySummary s;
  s.key = "loss";
  s.latest = 0.5;
  s.min = 0.25;
  s.max = 2;
  s.latest_step = 9;
  s.count = 10;
  std::ostringstream table, csv;
  PrintMetricSummaryTable({s}, table);
  EXPECT_THAT(table.str(), HasSubstr("KEY"));
  EXPECT_THAT(table.str(), HasSubstr("loss  0.5"));
  PrintMetricSummaryCsv({s}, csv);
  EXPECT_EQ(csv.str(), "key,latest,min,max,step,timestamp_ms,count\nloss,0.5,0.25,2,9,0,10\n");
  nlohmann::json j = MetricSummaryJson({s});
  EXPECT_EQ(j[0]["count"], 10);
  EXPECT_EQ(j[0]["max"], 2.0);
}

std::vector<v1::Metric> History(const std::vector<double>& values) {
  std::vector<v1::Metric> out;
  for (size_t i = 0; i < values.size(); ++i) {
    v1::Metric m;
    m.set_key("loss");
    m.set_step(static_cast<int64_t>(i));
    m.set_value(values[i]);
    m.set_timestamp_ms(1000 + static_cast<int64_t>(i));
    out.push_back(m);
  }
  return out;
}

TEST(MetricsViewTest, HistoryShowsChartAndSampledRows) {
  std::vector<double> values;
  for (int i = 0; i < 100; ++i) values.push_back(1.0 + i % 3);
  std::ostringstream out;
  PrintMetricHistory("loss", History(values), 60, 10, out);
  EXPECT_THAT(out.str(), HasSubstr("loss: 100 point(s), steps 0..99, min 1, max 3, last 1"));
  EXPECT_THAT(out.str(), HasSubstr("┤"));
  EXPECT_THAT(out.str(), Not(HasSubstr("log scale")));
  EXPECT_THAT(out.str(), HasSubstr("(10 of 100 points shown"));
  EXPECT_THAT(out.str(), HasSubstr("\n99 "));  // the last point is always a row
}

TEST(MetricsViewTest, LossFallingByOrdersOfMagnitudeUsesALogScale) {
  std::vector<double> values;
  for (int i = 0; i < 50; ++i) values.push_back(std::pow(10.0, -i / 10.0));
  std::ostringstream out;
  PrintMetricHistory("loss", History(values), 60, 5, out);
  EXPECT_THAT(out.str(), HasSubstr("(log scale)"));
  std::ostringstream csv;
  PrintMetricHistoryCsv(History({1.5, std::numeric_limits<double>::quiet_NaN()}), csv);
  EXPECT_EQ(csv.str(), "step,value,timestamp_ms,rank\n0,1.5,1000,0\n1,NaN,1001,0\n");
}

}  // namespace
}  // namespace kubetrain::cli
