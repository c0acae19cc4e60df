// Job data end to end against a real Azurite: a folder of 200 files (one of 256 MiB) is uploaded,
// a job reads it through `download` from azureml://datastores/..., checks every file's MD5, writes
// it all to an `upload` output, and the test downloads the output and compares every byte. Also:
// outputs of a failing job are still uploaded; a wrong account key fails the job before any rank
// runs, with a clear error and no secret in it.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/storage/blob_client.h"
#include "kubetrain/storage/transfer.h"
#include "kubetrain/storage/workspace.h"
#include "tests/storage/azurite.h"
#include "tests/testing/command.h"

namespace kubetrain {
namespace {
namespace fs = std::filesystem;
using testing::CommandResult;
using ::testing::HasSubstr;
using ::testing::Not;

void WriteRandom(const fs::path& p, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> buf(1 << 17);
  std::ofstream out(p, std::ios::binary);
  size_t left = n;
  while (left > 0) {
    for (auto& w : buf) w = rng();
    size_t chunk = std::min(left, buf.size() * sizeof(uint64_t));
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(chunk));
    left -= chunk;
  }
}

bool SameBytes(const fs::path& a, const fs::path& b) {
  std::ifstream x(a, std::ios::binary), y(b, std::ios::binary);
  std::vector<char> bx(1 << 20), by(1 << 20);
  while (true) {
    x.read(bx.data(), static_cast<std::streamsize>(bx.size()));
    y.read(by.data(), static_cast<std::streamsize>(by.size()));
    if (x.gcount() != y.gcount()) return false;
    if (x.gcount() == 0) return true;
    if (std::memcmp(bx.data(), by.data(), static_cast<size_t>(x.gcount())) != 0) return false;
  }
}

class DataJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (absl::Status s = azurite_.Start(); !s.ok()) GTEST_SKIP() << s.message();
    dir_ = fs::temp_directory_path() /
           absl::StrCat("kt-data-", getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto c = storage::BlobClient::Create(azurite_.Account("training"));
    ASSERT_TRUE(c.ok());
    client_ = std::move(*c);
    ASSERT_TRUE(client_->CreateContainer().ok());
    CommandResult r =
        Kt(absl::StrCat("datastore create blobs --type azureblob --account-name ",
                        testing::kAzuriteAccount, " --container-name training --endpoint ",
                        azurite_.endpoint(), " --account-key ", testing::kAzuriteKey));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  CommandResult Kt(const std::string& args) {
    return testing::RunCommand("KUBETRAIN_WORKSPACE=" + (dir_ / "ws").string() + " " +
                               testing::KubetrainCli() + args);
  }
  std::string Write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }

  testing::Azurite azurite_;
  fs::path dir_;
  std::unique_ptr<storage::BlobClient> client_;
};

TEST_F(DataJobTest, TwoHundredFilesWithOne256MiBComeBackByteForByte) {
  // The dataset: 199 small files in a few folders and one of 256 MiB.
  fs::path src = dir_ / "dataset";
  fs::create_directories(src / "shards");
  for (int i = 0; i < 199; ++i) {
    fs::path p = src / (i % 3 == 0 ? "shards" : ".") / absl::StrFormat("part-%03d.bin", i);
    WriteRandom(p, 1000 + static_cast<size_t>(i) * 517, static_cast<uint64_t>(i));
  }
  WriteRandom(src / "big.bin", 256u << 20, 4242);
  storage::TransferOptions t;
  auto up = storage::UploadPath(*client_, src.string(), false, "datasets/v1", t);
  ASSERT_TRUE(up.ok()) << up.status();
  ASSERT_EQ(up->files, 200);
  // The job checks what it got against the source's MD5s before it copies it to its output.
  CommandResult sums =
      testing::RunCommand("cd " + src.string() + " && find . -type f | sort | xargs md5sum > " +
                          (dir_ / "MD5SUMS").string());
  ASSERT_EQ(sums.exit_code, 0) << sums.output;

  std::string job =
      Write("job.yml",
            "name: data-e2e\n"
            "command: >-\n"
            "  cd ${{inputs.data}} && md5sum --quiet -c ${{inputs.sums}} && echo ALL-MD5-OK &&\n"
            "  cp -r . ${{outputs.copy}}/ && echo lr=${{inputs.lr}}\n"
            "inputs:\n"
            "  data: {type: uri_folder, path: azureml://datastores/blobs/paths/datasets/v1, mode: "
            "download}\n"
            "  sums: {type: uri_file, path: ./MD5SUMS}\n"
            "  lr: 0.01\n"
            "outputs:\n"
            "  copy: {type: uri_folder, path: azureml://datastores/blobs/paths/results/data-e2e, "
            "mode: upload}\n");
  CommandResult r = Kt("job create -f " + job + " --stream");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("ALL-MD5-OK"));
  EXPECT_THAT(r.output, HasSubstr("lr=0.01"));
  EXPECT_THAT(r.output, HasSubstr("input 'data'"));
  EXPECT_THAT(r.output, HasSubstr("output 'copy': uploaded 200 files"));
  EXPECT_THAT(r.output, Not(HasSubstr(testing::kAzuriteKey)));

  // Every byte came back: download the output (checked against each blob's Content-MD5) and
  // compare it with the source.
  auto back =
      storage::DownloadBlobPath(*client_, "results/data-e2e", false, (dir_ / "back").string(), t);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->files, 200);
  int compared = 0;
  for (const auto& e : fs::recursive_directory_iterator(src)) {
    if (!e.is_regular_file()) continue;
    fs::path rel = fs::relative(e.path(), src);
    ASSERT_TRUE(SameBytes(e.path(), dir_ / "back" / rel)) << rel;
    ++compared;
  }
  EXPECT_EQ(compared, 200);

  // The upload is recorded in the workspace.
  auto ws = storage::OpenEmbeddedWorkspace((dir_ / "ws").string());
  ASSERT_TRUE(ws.ok());
  auto uploads = (*ws)->ListOutputUploads("data-e2e");
  ASSERT_TRUE(uploads.ok()) << uploads.status();
  ASSERT_EQ(uploads->size(), 1u);
  EXPECT_EQ((*uploads)[0].output(), "copy");
  EXPECT_EQ((*uploads)[0].status(), "completed");
  EXPECT_EQ((*uploads)[0].files(), 200);
  EXPECT_EQ((*uploads)[0].bytes(), up->bytes);
  EXPECT_EQ((*uploads)[0].destination(), "azureml://datastores/blobs/paths/results/data-e2e");
}

TEST_F(DataJobTest, OutputsOfAFailingJobAreStillUploaded) {
  std::string job = Write("fail.yml",
                          "name: partial\n"
                          "command: echo step-1 > ${{outputs.ckpt}}/partial.txt && exit 3\n"
                          "outputs:\n"
                          "  ckpt: {type: uri_folder, path: "
                          "wasbs://training@devstoreaccount1.blob.core.windows.net/partial}\n");
  CommandResult r = Kt("job create -f " + job + " --stream");
  EXPECT_NE(r.exit_code, 0) << r.output;
  auto got = client_->GetBlob("partial/partial.txt");
  ASSERT_TRUE(got.ok()) << got.status() << "\n" << r.output;
  EXPECT_EQ(*got, "step-1\n");
  auto ws = storage::OpenEmbeddedWorkspace((dir_ / "ws").string());
  auto uploads = (*ws)->ListOutputUploads("partial");
  ASSERT_TRUE(uploads.ok());
  ASSERT_EQ(uploads->size(), 1u);
  EXPECT_EQ((*uploads)[0].status(), "completed");
}

TEST_F(DataJobTest, AWrongAccountKeyFailsTheJobBeforeAnyRankRuns) {
  ASSERT_TRUE(client_->PutBlob("d/x.txt", "x").ok());
  const std::string wrong = absl::Base64Escape(std::string(64, 'k'));
  CommandResult r = Kt(absl::StrCat(
      "datastore create blobs --type azureblob --account-name ", testing::kAzuriteAccount,
      " --container-name training --endpoint ", azurite_.endpoint(), " --account-key ", wrong));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string job =
      Write("job.yml",
            "name: badkey\ncommand: echo RANK-RAN\n"
            "inputs:\n  d: {type: uri_folder, path: azureml://datastores/blobs/paths/d}\n");
  r = Kt("job create -f " + job + " --stream");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("authentication failed"));
  EXPECT_THAT(r.output, HasSubstr("input 'd'"));
  EXPECT_THAT(r.output, Not(HasSubstr("RANK-RAN")));
  EXPECT_THAT(r.output, Not(HasSubstr(wrong)));
}

}  // namespace
}  // namespace kubetrain
