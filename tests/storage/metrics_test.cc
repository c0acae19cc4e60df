// Tests of the run history: IngestMetrics (idempotent), MetricSummary, MetricHistory, params and
// tags, against the embedded workspace and the gRPC client of a server over one (backends.h).
#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/storage/workspace.h"
#include "tests/storage/backends.h"

namespace kubetrain::storage {
namespace {

using testing::Backend;
using testing::BackendHarness;

class MetricsTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kubetrain-metrics-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    harness_ = std::make_unique<BackendHarness>(GetParam(), dir_);
    auto ws = harness_->Open();
    ASSERT_TRUE(ws.ok()) << ws.status();
    ws_ = std::move(*ws);
  }
  void TearDown() override {
    ws_.reset();
    harness_.reset();
    std::filesystem::remove_all(dir_);
  }

  static v1::MetricBatch Batch(const std::string& job, const std::string& source, int64_t seq) {
    v1::MetricBatch b;
    b.set_job(job);
    b.set_source(source);
    b.set_sequence(seq);
    return b;
  }
  static void Add(v1::MetricBatch& b, const std::string& key, double value, int64_t step,
                  int64_t ts = 1000, int rank = 0) {
    v1::Metric* m = b.add_metrics();
    m->set_key(key);
    m->set_value(value);
    m->set_step(step);
    m->set_timestamp_ms(ts);
    m->set_rank(rank);
  }

  std::string dir_;
  std::unique_ptr<BackendHarness> harness_;
  std::unique_ptr<Workspace> ws_;
};

INSTANTIATE_TEST_SUITE_P(Backends, MetricsTest,
                         ::testing::Values(Backend::kEmbedded, Backend::kGrpc),
                         testing::BackendName);

TEST_P(MetricsTest, SummaryHasLatestMinMaxStepAndCountPerKey) {
  v1::MetricBatch b = Batch("j", "instance-0", 1);
  Add(b, "loss", 2.0, 0);
  Add(b, "loss", 0.5, 2);
  Add(b, "loss", 1.0, 1);  // older step: not the latest
  Add(b, "acc", 0.1, 0);
  ASSERT_TRUE(ws_->IngestMetrics(b).ok());
  v1::MetricBatch b2 = Batch("j", "instance-0", 2);
  Add(b2, "loss", 0.25, 3);
  Add(b2, "loss", 7.0, 1);  // a late point for an old step raises max, not latest
  ASSERT_TRUE(ws_->IngestMetrics(b2).ok());

  auto summary = ws_->MetricSummary("j");
  ASSERT_TRUE(summary.ok()) << summary.status();
  ASSERT_EQ(summary->size(), 2u);
  EXPECT_EQ((*summary)[0].key, "acc");
  EXPECT_EQ((*summary)[0].count, 1);
  const MetricKeySummary& loss = (*summary)[1];
  EXPECT_EQ(loss.key, "loss");
  EXPECT_DOUBLE_EQ(loss.latest, 0.25);
  EXPECT_EQ(loss.latest_step, 3);
  EXPECT_DOUBLE_EQ(loss.min, 0.25);
  EXPECT_DOUBLE_EQ(loss.max, 7.0);
  EXPECT_EQ(loss.count, 5);

  auto other = ws_->MetricSummary("other-job");
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->empty());
}

TEST_P(MetricsTest, SameStepLaterTimestampIsLatest) {
  v1::MetricBatch b = Batch("j", "s", 1);
  Add(b, "x", 1.0, 5, 2000);
  Add(b, "x", 2.0, 5, 1000);
  ASSERT_TRUE(ws_->IngestMetrics(b).ok());
  v1::MetricBatch b2 = Batch("j", "s", 2);
  Add(b2, "x", 3.0, 5, 1500);
  ASSERT_TRUE(ws_->IngestMetrics(b2).ok());
  auto summary = ws_->MetricSummary("j");
  ASSERT_TRUE(summary.ok());
  ASSERT_EQ(summary->size(), 1u);
  EXPECT_DOUBLE_EQ((*summary)[0].latest, 1.0);
  EXPECT_EQ((*summary)[0].latest_timestamp_ms, 2000);
}

TEST_P(MetricsTest, DuplicateDeliveryIsStoredOnce) {
  v1::MetricBatch b = Batch("j", "instance-0", 7);
  for (int i = 0; i < 100; ++i) Add(b, "loss", 1.0 / (i + 1), i);
  b.add_params()->set_key("lr");
  b.mutable_params(0)->set_value("0.1");
  for (int attempt = 0; attempt < 3; ++attempt) {
    ASSERT_TRUE(ws_->IngestMetrics(b).ok());
  }
  // Same sequence from another source, and another sequence from the same source, are new.
  v1::MetricBatch other_source = b;
  other_source.set_source("instance-1");
  ASSERT_TRUE(ws_->IngestMetrics(other_source).ok());
  v1::MetricBatch next = b;
  next.set_sequence(8);
  ASSERT_TRUE(ws_->IngestMetrics(next).ok());
  ASSERT_TRUE(ws_->IngestMetrics(next).ok());

  auto history = ws_->MetricHistory("j", "loss");
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_EQ(history->size(), 300u);
  auto summary = ws_->MetricSummary("j");
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ((*summary)[0].count, 300);
}

TEST_P(MetricsTest, DuplicateDeliveryOverTwoConnectionsIsStoredOnce) {
  v1::MetricBatch b = Batch("j", "instance-0", 1);
  Add(b, "loss", 1.0, 1);
  auto second = harness_->Open();
  ASSERT_TRUE(second.ok());
  std::thread t([&] { ASSERT_TRUE((*second)->IngestMetrics(b).ok()); });
  ASSERT_TRUE(ws_->IngestMetrics(b).ok());
  t.join();
  auto history = ws_->MetricHistory("j", "loss");
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(history->size(), 1u);
}

TEST_P(MetricsTest, BatchWithoutSourceIsAlwaysStored) {
  v1::MetricBatch b = Batch("j", "", 0);
  Add(b, "loss", 1.0, 1);
  ASSERT_TRUE(ws_->IngestMetrics(b).ok());
  ASSERT_TRUE(ws_->IngestMetrics(b).ok());
  auto history = ws_->MetricHistory("j", "loss");
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(history->size(), 2u);
}

TEST_P(MetricsTest, HistoryIsInStepOrderWithRankAndTimestamp) {
  v1::MetricBatch b = Batch("j", "s", 1);
  Add(b, "loss", 3.0, 2, 30, 1);
  Add(b, "loss", 1.0, 0, 10, 0);
  Add(b, "loss", 2.0, 1, 20, 0);
  Add(b, "acc", 9.0, 0);
  ASSERT_TRUE(ws_->IngestMetrics(b).ok());
  auto history = ws_->MetricHistory("j", "loss");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ((*history)[i].key(), "loss");
    EXPECT_EQ((*history)[i].step(), i);
    EXPECT_DOUBLE_EQ((*history)[i].value(), i + 1.0);
    EXPECT_EQ((*history)[i].timestamp_ms(), (i + 1) * 10);
  }
  EXPECT_EQ((*history)[2].rank(), 1);
  auto none = ws_->MetricHistory("j", "missing");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_P(MetricsTest, NanAndInfinityRoundTrip) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  v1::MetricBatch b = Batch("j", "s", 1);
  Add(b, "x", nan, 0);
  Add(b, "x", inf, 1);
  Add(b, "x", -1.5, 2);
  Add(b, "y", nan, 0);
  ASSERT_TRUE(ws_->IngestMetrics(b).ok());
  auto history = ws_->MetricHistory("j", "x");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 3u);
  EXPECT_TRUE(std::isnan((*history)[0].value()));
  EXPECT_EQ((*history)[1].value(), inf);
  auto summary = ws_->MetricSummary("j");
  ASSERT_TRUE(summary.ok());
  ASSERT_EQ(summary->size(), 2u);
  EXPECT_DOUBLE_EQ((*summary)[0].min, -1.5);
  EXPECT_EQ((*summary)[0].max, inf);
  EXPECT_EQ((*summary)[0].count, 3);
  EXPECT_TRUE(std::isnan((*summary)[1].latest));
  EXPECT_TRUE(std::isnan((*summary)[1].min));
  EXPECT_TRUE(std::isnan((*summary)[1].max));
}

TEST_P(MetricsTest, ParamsAndTagsAreKeyValueMapsPerJob) {
  v1::MetricBatch b = Batch("j", "s", 1);
  auto* p = b.add_params();
  p->set_key("lr");
  p->set_value("0.1");
  p = b.add_params();
  p->set_key("batch_size");
  p->set_value("32");
  auto* t = b.add_tags();
  t->set_key("mlflow.runName");
  t->set_value("first");
  ASSERT_TRUE(ws_->IngestMetrics(b).ok());
  v1::MetricBatch b2 = Batch("j", "s", 2);
  t = b2.add_tags();
  t->set_key("mlflow.runName");
  t->set_value("second");
  ASSERT_TRUE(ws_->IngestMetrics(b2).ok());
  v1::MetricBatch other = Batch("k", "s", 1);
  p = other.add_params();
  p->set_key("lr");
  p->set_value("9");
  ASSERT_TRUE(ws_->IngestMetrics(other).ok());

  auto params = ws_->ListParams("j");
  ASSERT_TRUE(params.ok());
  ASSERT_EQ(params->size(), 2u);
  EXPECT_EQ((*params)[0].key(), "batch_size");
  EXPECT_EQ((*params)[1].key(), "lr");
  EXPECT_EQ((*params)[1].value(), "0.1");
  auto tags = ws_->ListTags("j");
  ASSERT_TRUE(tags.ok());
  ASSERT_EQ(tags->size(), 1u);
  EXPECT_EQ((*tags)[0].value(), "second");
}

TEST_P(MetricsTest, RejectsBatchWithoutJobOrWithEmptyKey) {
  v1::MetricBatch no_job = Batch("", "s", 1);
  EXPECT_EQ(ws_->IngestMetrics(no_job).code(), absl::StatusCode::kInvalidArgument);
  v1::MetricBatch empty_key = Batch("j", "s", 1);
  Add(empty_key, "", 1.0, 0);
  EXPECT_EQ(ws_->IngestMetrics(empty_key).code(), absl::StatusCode::kInvalidArgument);
  // A rejected batch is not marked applied: the corrected batch with the same sequence is stored.
  v1::MetricBatch fixed = Batch("j", "s", 1);
  Add(fixed, "ok", 1.0, 0);
  ASSERT_TRUE(ws_->IngestMetrics(fixed).ok());
  auto history = ws_->MetricHistory("j", "ok");
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(history->size(), 1u);
}

TEST_P(MetricsTest, PersistsAcrossReopen) {
  v1::MetricBatch b = Batch("j", "s", 1);
  Add(b, "loss", 0.5, 10);
  ASSERT_TRUE(ws_->IngestMetrics(b).ok());
  ws_.reset();
  harness_->Restart();
  auto ws = harness_->Open();
  ASSERT_TRUE(ws.ok());
  ASSERT_TRUE((*ws)->IngestMetrics(b).ok());  // still recognized as delivered
  auto summary = (*ws)->MetricSummary("j");
  ASSERT_TRUE(summary.ok());
  ASSERT_EQ(summary->size(), 1u);
  EXPECT_EQ((*summary)[0].count, 1);
  EXPECT_EQ((*summary)[0].latest_step, 10);
}

}  // namespace
}  // namespace kubetrain::storage
