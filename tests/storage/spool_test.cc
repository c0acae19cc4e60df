// WriteSpool: ordered delivery, retries while the workspace is out of reach, spilling to disk past
// the memory bound, leftovers delivered by the next spool, and permanent errors dropped.
#include "kubetrain/storage/spool.h"

#include <dirent.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/storage/workspace.h"

namespace kubetrain::storage {
namespace {

// Forwards to an embedded workspace; the writes a spool makes fail while `down` is set.
class FlakyWorkspace : public Workspace {
 public:
  explicit FlakyWorkspace(Workspace* inner) : inner_(inner) {}
  std::atomic<bool> down{false};
  std::atomic<absl::StatusCode> failure{absl::StatusCode::kUnavailable};
  std::atomic<int> write_calls{0};

  absl::Status Fail() {
    return down.load() ? absl::Status(failure.load(), "injected") : absl::OkStatus();
  }
  absl::Status AppendLogs(absl::Span<const v1::LogLine> lines) override {
    ++write_calls;
    if (absl::Status s = Fail(); !s.ok()) return s;
    return inner_->AppendLogs(lines);
  }
  absl::Status IngestMetrics(const v1::MetricBatch& batch) override {
    ++write_calls;
    if (absl::Status s = Fail(); !s.ok()) return s;
    return inner_->IngestMetrics(batch);
  }
  absl::Status UpdateInstanceStatus(absl::string_view job,
                                    const v1::InstanceStatus& instance) override {
    ++write_calls;
    if (absl::Status s = Fail(); !s.ok()) return s;
    return inner_->UpdateInstanceStatus(job, instance);
  }

  absl::Status PutCompute(const v1::ComputeTarget& t) override { return inner_->PutCompute(t); }
  absl::StatusOr<v1::ComputeTarget> GetCompute(absl::string_view n) override {
    return inner_->GetCompute(n);
  }
  absl::StatusOr<std::vector<v1::ComputeTarget>> ListComputes() override {
    return inner_->ListComputes();
  }
  absl::StatusOr<v1::JobRecord> CreateJob(const v1::JobRecord& r) override {
    return inner_->CreateJob(r);
  }
  absl::StatusOr<v1::JobRecord> GetJob(absl::string_view n) override { return inner_->GetJob(n); }
  absl::StatusOr<std::vector<v1::JobRecord>> ListJobs() override { return inner_->ListJobs(); }
  absl::StatusOr<v1::JobRecord> UpdateJob(absl::string_view n, const JobMutation& m) override {
    return inner_->UpdateJob(n, m);
  }
  absl::StatusOr<LogPage> ReadLogs(const LogQuery& q) override { return inner_->ReadLogs(q); }
  absl::StatusOr<std::vector<MetricKeySummary>> MetricSummary(absl::string_view j) override {
    return inner_->MetricSummary(j);
  }
  absl::StatusOr<std::vector<v1::Metric>> MetricHistory(absl::string_view j,
                                                        absl::string_view k) override {
    return inner_->MetricHistory(j, k);
  }
  absl::StatusOr<std::vector<v1::Param>> ListParams(absl::string_view j) override {
    return inner_->ListParams(j);
  }
  absl::StatusOr<std::vector<v1::Tag>> ListTags(absl::string_view j) override {
    return inner_->ListTags(j);
  }
  absl::Status PutDatastore(const v1::Datastore& d) override { return inner_->PutDatastore(d); }
  absl::StatusOr<v1::Datastore> GetDatastore(absl::string_view n) override {
    return inner_->GetDatastore(n);
  }
  absl::StatusOr<std::vector<v1::Datastore>> ListDatastores() override {
    return inner_->ListDatastores();
  }
  absl::StatusOr<v1::DataAsset> CreateDataAsset(const v1::DataAsset& a) override {
    return inner_->CreateDataAsset(a);
  }
  absl::StatusOr<v1::DataAsset> GetDataAsset(absl::string_view n, absl::string_view v) override {
    return inner_->GetDataAsset(n, v);
  }
  absl::StatusOr<std::vector<v1::DataAsset>> ListDataAssets(absl::string_view n) override {
    return inner_->ListDataAssets(n);
  }
  absl::StatusOr<v1::DataAsset> SetDataAssetArchived(absl::string_view n, absl::string_view v,
                                                     bool a) override {
    return inner_->SetDataAssetArchived(n, v, a);
  }
  absl::StatusOr<v1::EnvironmentAsset> CreateEnvironment(const v1::EnvironmentAsset& e) override {
    return inner_->CreateEnvironment(e);
  }
  absl::StatusOr<v1::EnvironmentAsset> GetEnvironment(absl::string_view n,
                                                      absl::string_view v) override {
    return inner_->GetEnvironment(n, v);
  }
  absl::StatusOr<std::vector<v1::EnvironmentAsset>> ListEnvironments(absl::string_view n) override {
    return inner_->ListEnvironments(n);
  }
  absl::StatusOr<v1::EnvironmentAsset> SetEnvironmentArchived(absl::string_view n,
                                                              absl::string_view v,
                                                              bool a) override {
    return inner_->SetEnvironmentArchived(n, v, a);
  }
  absl::Status RecordCheckpoint(const v1::CheckpointRecord& r) override {
    ++write_calls;
    if (absl::Status s = Fail(); !s.ok()) return s;
    return inner_->RecordCheckpoint(r);
  }
  absl::StatusOr<std::vector<v1::CheckpointRecord>> ListCheckpoints(absl::string_view j) override {
    return inner_->ListCheckpoints(j);
  }
  absl::Status RecordOutputUpload(const v1::OutputUpload& u) override {
    return inner_->RecordOutputUpload(u);
  }
  absl::StatusOr<std::vector<v1::OutputUpload>> ListOutputUploads(absl::string_view j) override {
    return inner_->ListOutputUploads(j);
  }

 private:
  Workspace* inner_;
};

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kubetrain-spool-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto ws = OpenEmbeddedWorkspace(dir_ + "/ws");
    ASSERT_TRUE(ws.ok()) << ws.status();
    embedded_ = std::move(*ws);
    flaky_ = std::make_unique<FlakyWorkspace>(embedded_.get());
    v1::JobRecord job;
    job.mutable_spec()->set_name("j");
    ASSERT_TRUE(embedded_->CreateJob(job).ok());
  }
  void TearDown() override {
    flaky_.reset();
    embedded_.reset();
    std::filesystem::remove_all(dir_);
  }

  SpoolOptions Options(size_t memory = 1 << 20) {
    SpoolOptions o;
    o.directory = dir_ + "/spool";
    o.memory_bytes = memory;
    o.retry_min = absl::Milliseconds(5);
    o.retry_max = absl::Milliseconds(20);
    return o;
  }
  static v1::LogLine Line(int64_t seq) {
    v1::LogLine l;
    l.set_job("j");
    l.set_sequence(seq);
    l.set_timestamp_ns(seq);
    l.set_text(absl::StrCat("line ", seq, " ", std::string(100, 'x')));
    return l;
  }
  int SpillFiles() {
    int n = 0;
    if (DIR* d = opendir((dir_ + "/spool").c_str())) {
      while (dirent* e = readdir(d)) n += absl::EndsWith(e->d_name, ".seg");
      closedir(d);
    }
    return n;
  }
  std::vector<std::string> Texts() {
    std::vector<std::string> out;
    LogQuery q{.job = "j"};
    while (true) {
      auto page = embedded_->ReadLogs(q);
      if (!page.ok() || page->lines.empty()) break;
      for (const auto& l : page->lines) out.push_back(l.text().substr(0, l.text().find(" x")));
      q.after_id = page->next_id;
    }
    return out;
  }

  std::string dir_;
  std::unique_ptr<Workspace> embedded_;
  std::unique_ptr<FlakyWorkspace> flaky_;
};

TEST_F(SpoolTest, DeliversInOrderAndFlushWaitsForIt) {
  WriteSpool spool(flaky_.get(), Options());
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(spool.AppendLogs({Line(i)}).ok());
  v1::InstanceStatus inst;
  inst.set_index(0);
  inst.set_state(v1::JOB_STATE_COMPLETED);
  ASSERT_TRUE(spool.UpdateInstanceStatus("j", inst).ok());
  v1::MetricBatch b;
  b.set_job("j");
  b.set_source("s");
  b.set_sequence(1);
  b.add_metrics()->set_key("loss");
  ASSERT_TRUE(spool.IngestMetrics(b).ok());
  v1::CheckpointRecord ckpt;
  ckpt.set_job("j");
  ckpt.set_step(100);
  ASSERT_TRUE(spool.RecordCheckpoint(ckpt).ok());
  ASSERT_TRUE(spool.Flush(absl::Seconds(10)).ok());
  std::vector<std::string> texts = Texts();
  ASSERT_EQ(texts.size(), 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(texts[i], absl::StrCat("line ", i));
  EXPECT_EQ(embedded_->GetJob("j")->status().instances(0).state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(embedded_->MetricHistory("j", "loss")->size(), 1u);
  EXPECT_EQ(embedded_->ListCheckpoints("j")->at(0).step(), 100);
  SpoolStats s = spool.stats();
  EXPECT_EQ(s.enqueued, 1003);
  EXPECT_EQ(s.delivered, 1003);
  EXPECT_EQ(s.pending, 0);
  // Writes of a kind go together: far fewer calls than writes.
  EXPECT_LT(flaky_->write_calls.load(), 100);
}

TEST_F(SpoolTest, KeepsWritesWhileTheWorkspaceIsDownSpillsToDiskAndDeliversOnReturn) {
  flaky_->down = true;
  WriteSpool spool(flaky_.get(), Options(16 << 10));  // about 100 lines fit in memory
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(spool.AppendLogs({Line(i)}).ok());
  EXPECT_EQ(spool.Flush(absl::Milliseconds(100)).code(), absl::StatusCode::kDeadlineExceeded);
  SpoolStats down = spool.stats();
  EXPECT_FALSE(down.connected);
  EXPECT_GT(down.failed_sends, 0);
  EXPECT_GT(down.spilled, 1500);
  EXPECT_GT(down.disk_bytes, 200000);
  EXPECT_LE(down.memory_bytes, 16 << 10);
  EXPECT_GT(SpillFiles(), 1);
  // WaitIfConnected does not wait while deliveries fail.
  absl::Time t0 = absl::Now();
  ASSERT_TRUE(spool.WaitIfConnected(absl::Seconds(5)).ok());
  EXPECT_LT(absl::Now() - t0, absl::Seconds(1));

  flaky_->down = false;
  ASSERT_TRUE(spool.Flush(absl::Seconds(20)).ok());
  std::vector<std::string> texts = Texts();
  ASSERT_EQ(texts.size(), 2000u);
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(texts[i], absl::StrCat("line ", i));
  EXPECT_EQ(SpillFiles(), 0);  // delivered spill files are removed
  EXPECT_TRUE(spool.stats().connected);
}

TEST_F(SpoolTest, WhatOneSpoolCouldNotDeliverTheNextDelivers) {
  flaky_->down = true;
  {
    WriteSpool spool(flaky_.get(), Options(8 << 10));
    for (int i = 0; i < 300; ++i) ASSERT_TRUE(spool.AppendLogs({Line(i)}).ok());
  }  // the agent ends with the workspace out of reach
  EXPECT_GT(SpillFiles(), 0);
  EXPECT_TRUE(Texts().empty());
  flaky_->down = false;
  WriteSpool next(flaky_.get(), Options(8 << 10));
  EXPECT_EQ(next.stats().enqueued, 300);
  ASSERT_TRUE(next.AppendLogs({Line(300)}).ok());
  ASSERT_TRUE(next.Flush(absl::Seconds(10)).ok());
  std::vector<std::string> texts = Texts();
  ASSERT_EQ(texts.size(), 301u);
  for (int i = 0; i <= 300; ++i) ASSERT_EQ(texts[i], absl::StrCat("line ", i));
  EXPECT_EQ(SpillFiles(), 0);
}

TEST_F(SpoolTest, BoundedOnDiskToo) {
  flaky_->down = true;
  SpoolOptions o = Options(4 << 10);
  o.max_disk_bytes = 16 << 10;
  WriteSpool spool(flaky_.get(), o);
  int dropped = 0;
  for (int i = 0; i < 1000; ++i) {
    absl::Status s = spool.AppendLogs({Line(i)});
    if (!s.ok()) {
      EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
      ++dropped;
    }
  }
  EXPECT_GT(dropped, 800);
  EXPECT_LE(spool.stats().disk_bytes, 16 << 10);
  flaky_->down = false;
  ASSERT_TRUE(spool.Flush(absl::Seconds(10)).ok());
  EXPECT_EQ(static_cast<int>(Texts().size()), 1000 - dropped);
}

TEST_F(SpoolTest, PermanentRejectionsAreDroppedNotRetried) {
  flaky_->failure = absl::StatusCode::kPermissionDenied;
  flaky_->down = true;
  WriteSpool spool(flaky_.get(), Options());
  ASSERT_TRUE(spool.AppendLogs({Line(0)}).ok());
  ASSERT_TRUE(spool.Flush(absl::Seconds(5)).ok());
  EXPECT_EQ(spool.stats().dropped, 1);
  EXPECT_EQ(flaky_->write_calls.load(), 1);
  flaky_->down = false;
  ASSERT_TRUE(spool.AppendLogs({Line(1)}).ok());
  ASSERT_TRUE(spool.Flush(absl::Seconds(5)).ok());
  EXPECT_THAT(Texts(), ::testing::ElementsAre("line 1"));
}

}  // namespace
}  // namespace kubetrain::storage
