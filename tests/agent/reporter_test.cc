#include "kubetrain/agent/ranks/reporter.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/agent/sink.h"

namespace kubetrain::agent {
namespace {

ReporterOptions Options() {
  ReporterOptions o;
  o.job = "j";
  o.attempt = 1;
  o.instance = 2;
  o.echo_to_stderr = false;
  o.flush_interval = absl::Hours(1);
  o.flush_lines = 10;
  return o;
}

TEST(ReporterTest, SendsInBatchesOfFlushLines) {
  MemorySink sink;
  Reporter reporter(Options(), &sink);
  for (int i = 0; i < 25; ++i) reporter.Line(0, v1::LogLine::STREAM_STDOUT, "x");
  EXPECT_EQ(sink.lines().size(), 20u);
  EXPECT_EQ(reporter.buffered(), 5u);
  ASSERT_TRUE(reporter.Flush().ok());
  ASSERT_EQ(sink.lines().size(), 25u);
  const v1::LogLine l = sink.lines()[7];
  EXPECT_EQ(l.job(), "j");
  EXPECT_EQ(l.attempt(), 1);
  EXPECT_EQ(l.instance(), 2);
  EXPECT_EQ(l.sequence(), 7);
}

TEST(ReporterTest, KeepsLinesWhenTheSinkFailsAndResendsThem) {
  MemorySink sink;
  Reporter reporter(Options(), &sink);
  sink.set_fail_appends(2);
  reporter.Agent("hello");
  reporter.Line(3, v1::LogLine::STREAM_STDERR, "oops");
  EXPECT_FALSE(reporter.Flush().ok());
  EXPECT_FALSE(reporter.Flush().ok());
  EXPECT_EQ(reporter.buffered(), 2u);
  ASSERT_TRUE(reporter.Flush().ok());
  std::vector<v1::LogLine> lines = sink.lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].rank(), -1);
  EXPECT_EQ(lines[0].stream(), v1::LogLine::STREAM_AGENT);
  EXPECT_EQ(lines[1].rank(), 3);
  EXPECT_EQ(lines[1].stream(), v1::LogLine::STREAM_STDERR);
  EXPECT_EQ(lines[1].sequence(), 1);
}

TEST(ReporterTest, FlushesWhenTheIntervalPassed) {
  MemorySink sink;
  ReporterOptions o = Options();
  o.flush_interval = absl::ZeroDuration();
  Reporter reporter(o, &sink);
  reporter.Line(0, v1::LogLine::STREAM_STDOUT, "a");
  reporter.MaybeFlush();
  EXPECT_EQ(sink.lines().size(), 1u);
}

TEST(ReporterTest, DropsTheOldestBeyondTheBufferLimit) {
  MemorySink sink;
  ReporterOptions o = Options();
  o.max_buffered_lines = 5;
  o.flush_lines = 1000;
  Reporter reporter(o, &sink);
  for (int i = 0; i < 8; ++i) reporter.Line(0, v1::LogLine::STREAM_STDOUT, std::to_string(i));
  ASSERT_TRUE(reporter.Flush().ok());
  ASSERT_EQ(sink.lines().size(), 5u);
  EXPECT_EQ(sink.lines()[0].text(), "3");
}

}  // namespace
}  // namespace kubetrain::agent
