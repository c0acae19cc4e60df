// Tests of datastores and checkpoint / output upload records, against the embedded workspace and
// the gRPC client of a server over one (backends.h).
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/storage/workspace.h"
#include "tests/storage/backends.h"

namespace kubetrain::storage {
namespace {

using ::testing::HasSubstr;

using testing::Backend;
using testing::BackendHarness;

class RecordsTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kubetrain-records-test-XXXXXX";
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

  static v1::CheckpointRecord Checkpoint(const std::string& job, int64_t step, int64_t size) {
    v1::CheckpointRecord r;
    r.set_job(job);
    r.set_step(step);
    r.set_size_bytes(size);
    r.set_location("/ckpt/step-" + std::to_string(step));
    return r;
  }

  std::string dir_;
  std::unique_ptr<BackendHarness> harness_;
  std::unique_ptr<Workspace> ws_;
};

INSTANTIATE_TEST_SUITE_P(Backends, RecordsTest,
                         ::testing::Values(Backend::kEmbedded, Backend::kGrpc),
                         testing::BackendName);

TEST_P(RecordsTest, DatabaseHoldingSecretsIsOwnerOnly) {
  struct stat st;
  ASSERT_EQ(stat((dir_ + "/workspace.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
}

TEST_P(RecordsTest, DatastoreCrudByName) {
  v1::Datastore blob;
  blob.set_name("images");
  blob.set_type("azureblob");
  blob.set_account_name("acct");
  blob.set_container_name("data");
  blob.set_account_key("c2VjcmV0");
  ASSERT_TRUE(ws_->PutDatastore(blob).ok());
  v1::Datastore local;
  local.set_name("scratch");
  local.set_type("local");
  local.set_path("/data");
  ASSERT_TRUE(ws_->PutDatastore(local).ok());

  auto got = ws_->GetDatastore("images");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->account_key(), "c2VjcmV0");
  blob.set_container_name("other");
  ASSERT_TRUE(ws_->PutDatastore(blob).ok());  // replaces
  auto all = ws_->ListDatastores();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name(), "images");
  EXPECT_EQ((*all)[0].container_name(), "other");
  EXPECT_EQ((*all)[1].name(), "scratch");

  auto missing = ws_->GetDatastore("nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("kubetrain datastore list"));
  EXPECT_EQ(ws_->PutDatastore(v1::Datastore()).code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(RecordsTest, CheckpointsAreOnePerStepInStepOrderPerJob) {
  ASSERT_TRUE(ws_->RecordCheckpoint(Checkpoint("a", 100, 1)).ok());
  ASSERT_TRUE(ws_->RecordCheckpoint(Checkpoint("a", 20, 2)).ok());
  ASSERT_TRUE(ws_->RecordCheckpoint(Checkpoint("a", 3, 3)).ok());
  ASSERT_TRUE(ws_->RecordCheckpoint(Checkpoint("a", 20, 4)).ok());  // replaces step 20
  ASSERT_TRUE(ws_->RecordCheckpoint(Checkpoint("b", 1, 5)).ok());
  auto a = ws_->ListCheckpoints("a");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->size(), 3u);
  EXPECT_EQ((*a)[0].step(), 3);
  EXPECT_EQ((*a)[1].step(), 20);
  EXPECT_EQ((*a)[1].size_bytes(), 4);
  EXPECT_EQ((*a)[2].step(), 100);
  EXPECT_EQ((*a)[2].location(), "/ckpt/step-100");
  auto none = ws_->ListCheckpoints("zzz");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(ws_->RecordCheckpoint(Checkpoint("", 1, 1)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ws_->RecordCheckpoint(Checkpoint("a", -1, 1)).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(RecordsTest, OutputUploadsPerAttemptInstanceAndOutput) {
  auto upload = [](int attempt, int instance, const std::string& output, const std::string& s) {
    v1::OutputUpload u;
    u.set_job("j");
    u.set_attempt(attempt);
    u.set_instance(instance);
    u.set_output(output);
    u.set_status(s);
    return u;
  };
  ASSERT_TRUE(ws_->RecordOutputUpload(upload(1, 0, "model", "completed")).ok());
  ASSERT_TRUE(ws_->RecordOutputUpload(upload(0, 1, "model", "failed: x")).ok());
  ASSERT_TRUE(ws_->RecordOutputUpload(upload(0, 0, "model", "failed: y")).ok());
  ASSERT_TRUE(ws_->RecordOutputUpload(upload(0, 0, "model", "completed")).ok());  // replaces
  auto got = ws_->ListOutputUploads("j");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0].attempt(), 0);
  EXPECT_EQ((*got)[0].instance(), 0);
  EXPECT_EQ((*got)[0].status(), "completed");
  EXPECT_EQ((*got)[1].instance(), 1);
  EXPECT_EQ((*got)[2].attempt(), 1);
  EXPECT_EQ(ws_->RecordOutputUpload(v1::OutputUpload()).code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(RecordsTest, RecordsPersistAcrossReopen) {
  ASSERT_TRUE(ws_->RecordCheckpoint(Checkpoint("a", 7, 1)).ok());
  ws_.reset();
  harness_->Restart();
  auto ws = harness_->Open();
  ASSERT_TRUE(ws.ok());
  auto a = (*ws)->ListCheckpoints("a");
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->size(), 1u);
  EXPECT_EQ((*a)[0].step(), 7);
}

}  // namespace
}  // namespace kubetrain::storage
