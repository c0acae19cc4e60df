// Input and output modes × path forms, against a real Azurite and local folders.
#include "kubetrain/storage/data_stage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "tests/storage/azurite.h"

namespace kubetrain::storage {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(rng() & 0xff);
  return s;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

class DataStageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    azurite_ = new testing::Azurite();
    start_ = azurite_->Start();
  }
  static void TearDownTestSuite() {
    delete azurite_;
    azurite_ = nullptr;
  }
  void SetUp() override {
    if (!start_.ok()) GTEST_SKIP() << start_.message();
    dir_ = fs::temp_directory_path() /
           absl::StrCat("kt-stage-", getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "local-ds");
    container_ = absl::AsciiStrToLower(
        absl::StrCat("c", ::testing::UnitTest::GetInstance()->current_test_info()->name()));
    container_ = container_.substr(0, 60);
    auto c = BlobClient::Create(azurite_->Account(container_));
    ASSERT_TRUE(c.ok());
    client_ = std::move(*c);
    ASSERT_TRUE(client_->CreateContainer().ok());

    DatastoreConfig blob;
    blob.name = "blobs";
    blob.type = "azureblob";
    blob.account_name = testing::kAzuriteAccount;
    blob.container_name = container_;
    blob.endpoint = azurite_->endpoint();
    blob.account_key = testing::kAzuriteKey;
    DatastoreConfig local;
    local.name = "localds";
    local.type = "local";
    local.path = (dir_ / "local-ds").string();
    stores_ = {{"blobs", blob}, {"localds", local}};
    opts_.datastores.workspace_dir = (dir_ / "ws").string();
    opts_.datastores.get = [this](const std::string& n) -> absl::StatusOr<DatastoreConfig> {
      auto it = stores_.find(n);
      if (it == stores_.end()) return absl::NotFoundError(n);
      return it->second;
    };
    opts_.datastores.list = [this]() -> absl::StatusOr<std::vector<DatastoreConfig>> {
      std::vector<DatastoreConfig> v;
      for (auto& [n, d] : stores_) v.push_back(d);
      return v;
    };
    opts_.transfer.chunk_size = 1 << 20;
    opts_.blob.initial_backoff = absl::Milliseconds(10);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // The same folder {a.txt, sub/b.bin} and file (one.bin) in every place a path form can name.
  void Seed() {
    for (const fs::path& root : {dir_ / "local-src", dir_ / "local-ds/data"}) {
      WriteFile(root / "folder/a.txt", "hello a");
      WriteFile(root / "folder/sub/b.bin", b_);
      WriteFile(root / "folder/empty", "");
      WriteFile(root / "one.bin", one_);
    }
    ASSERT_TRUE(client_->PutBlob("data/folder/empty", "").ok());
    ASSERT_TRUE(client_->PutBlob("data/folder/a.txt", "hello a").ok());
    ASSERT_TRUE(client_->PutBlob("data/folder/sub/b.bin", b_, blob_internal::Md5Base64(b_)).ok());
    ASSERT_TRUE(client_->PutBlob("data/one.bin", one_).ok());
  }

  // Every path form of data/<rel>.
  std::vector<std::string> Forms(const std::string& rel) {
    return {
        (dir_ / "local-src" / rel).string(),
        absl::StrCat("file://", (dir_ / "local-src" / rel).string()),
        absl::StrCat("azureml://datastores/localds/paths/data/", rel),
        absl::StrCat("azureml://datastores/blobs/paths/data/", rel),
        absl::StrCat("https://devstoreaccount1.blob.core.windows.net/", container_, "/data/", rel),
        absl::StrCat("wasbs://", container_, "@devstoreaccount1.blob.core.windows.net/data/", rel),
        absl::StrCat(azurite_->endpoint(), "/", container_, "/data/", rel)};
  }

  static testing::Azurite* azurite_;
  static absl::Status start_;
  fs::path dir_;
  std::string container_;
  std::unique_ptr<BlobClient> client_;
  std::map<std::string, DatastoreConfig> stores_;
  StageOptions opts_;
  const std::string b_ = RandomBytes(3 << 20, 7);
  const std::string one_ = RandomBytes(100000, 8);
};
testing::Azurite* DataStageTest::azurite_ = nullptr;
absl::Status DataStageTest::start_;

TEST_F(DataStageTest, EveryInputModeWithEveryPathForm) {
  Seed();
  int n = 0;
  for (v1::DataMode mode : {v1::DATA_MODE_UNSPECIFIED, v1::DATA_MODE_RO_MOUNT,
                            v1::DATA_MODE_RW_MOUNT, v1::DATA_MODE_DOWNLOAD, v1::DATA_MODE_DIRECT}) {
    for (bool is_file : {false, true}) {
      int form = 0;
      for (const std::string& path : Forms(is_file ? "one.bin" : "folder")) {
        const bool local_data = form++ < 3;
        SCOPED_TRACE(absl::StrCat(v1::DataMode_Name(mode), " ", path));
        v1::JobInput in;
        in.set_type(is_file ? v1::DATA_TYPE_URI_FILE : v1::DATA_TYPE_URI_FOLDER);
        in.set_path(path);
        in.set_mode(mode);
        fs::path target = dir_ / "inputs" / std::to_string(n++) / (is_file ? "one.bin" : "x");
        auto r = StageInput("d", in, target.string(), opts_);
        ASSERT_TRUE(r.ok()) << r.status();
        if (mode == v1::DATA_MODE_DIRECT) {
          EXPECT_EQ(r->local_path, path);
          EXPECT_FALSE(fs::exists(target));
          continue;
        }
        EXPECT_EQ(r->local_path, target.string());
        if (is_file) {
          EXPECT_TRUE(ReadFile(target) == one_);
        } else {
          EXPECT_EQ(ReadFile(target / "a.txt"), "hello a");
          EXPECT_TRUE(ReadFile(target / "sub/b.bin") == b_);
          EXPECT_TRUE(fs::is_regular_file(target / "empty"));
          EXPECT_EQ(fs::file_size(target / "empty"), 0u);
        }
        if (mode == v1::DATA_MODE_DOWNLOAD) {
          EXPECT_FALSE(fs::is_symlink(target));
          EXPECT_TRUE(r->warnings.empty());
        } else if (mode == v1::DATA_MODE_RW_MOUNT) {
          // Local data: a writable link to the data itself; blob data: a copy, with a warning.
          EXPECT_EQ(fs::is_symlink(target), local_data);
          EXPECT_EQ(r->warnings.size(), local_data ? 0u : 1u);
        } else {
          // No mount namespace of our own here: a symlink and a warning that says so.
          EXPECT_TRUE(fs::is_symlink(target));
          ASSERT_EQ(r->warnings.size(), 1u);
          EXPECT_THAT(r->warnings[0], HasSubstr("read-only bind mount is not possible"));
        }
      }
    }
  }
}

TEST_F(DataStageTest, EveryOutputModeWithEveryPathForm) {
  int n = 0;
  for (v1::DataMode mode : {v1::DATA_MODE_UNSPECIFIED, v1::DATA_MODE_RW_MOUNT, v1::DATA_MODE_UPLOAD,
                            v1::DATA_MODE_DIRECT}) {
    for (bool is_file : {false, true}) {
      int form = 0;
      for (const std::string& base : Forms(absl::StrCat("out", n++))) {
        std::string path = is_file ? base + "/model.bin" : base;
        SCOPED_TRACE(absl::StrCat(v1::DataMode_Name(mode), " ", path));
        v1::JobOutput out;
        out.set_type(is_file ? v1::DATA_TYPE_URI_FILE : v1::DATA_TYPE_URI_FOLDER);
        out.set_path(path);
        out.set_mode(mode);
        // Local paths (plain and file://); a local datastore is reached through azureml://, which
        // the launcher cannot tell from a blob one: it is staged and copied like an upload.
        const bool local_dest = form++ < 2;
        const bool published = OutputNeedsPublish(out);
        // Where the job writes: the path itself for a local rw_mount, else a staging folder.
        fs::path local = published || !local_dest
                             ? dir_ / "staging" / std::to_string(n * 100 + form)
                             : fs::path(ParseDataUri(path)->local_path);
        if (is_file) {
          WriteFile(local, one_);
        } else {
          WriteFile(local / "r.txt", "result");
          WriteFile(local / "deep/w.bin", b_);
          WriteFile(local / "deep/empty", "");
        }
        auto r = PublishOutput("o", out, local.string(), opts_);
        ASSERT_TRUE(r.ok()) << r.status();
        if (mode == v1::DATA_MODE_DIRECT || (local_dest && mode != v1::DATA_MODE_UPLOAD)) {
          EXPECT_FALSE(published);
          continue;
        }
        EXPECT_TRUE(published);
        EXPECT_EQ(r->stats.files, is_file ? 1 : 3);
        // Read it back through the same path form.
        v1::JobInput back;
        back.set_type(out.type());
        back.set_path(path);
        back.set_mode(v1::DATA_MODE_DOWNLOAD);
        fs::path check = dir_ / "check" / std::to_string(n * 100 + form) / "x";
        auto got = StageInput("check", back, check.string(), opts_);
        ASSERT_TRUE(got.ok()) << got.status();
        if (is_file) {
          EXPECT_TRUE(ReadFile(check) == one_);
        } else {
          EXPECT_EQ(ReadFile(check / "r.txt"), "result");
          EXPECT_TRUE(ReadFile(check / "deep/w.bin") == b_);
          EXPECT_TRUE(fs::is_regular_file(check / "deep/empty"));
        }
      }
    }
  }
}

TEST_F(DataStageTest, WrongAccountKeyIsAClearAuthErrorAndWritesNothing) {
  Seed();
  stores_["blobs"].account_key = absl::Base64Escape(RandomBytes(64, 3));
  v1::JobInput in;
  in.set_type(v1::DATA_TYPE_URI_FOLDER);
  in.set_path("azureml://datastores/blobs/paths/data/folder");
  in.set_mode(v1::DATA_MODE_DOWNLOAD);
  fs::path target = dir_ / "inputs/d";
  auto r = StageInput("d", in, target.string(), opts_);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("input 'd'"));
  EXPECT_THAT(r.status().message(), HasSubstr("account key"));
  EXPECT_THAT(r.status().message(), Not(HasSubstr(stores_["blobs"].account_key)));
  EXPECT_FALSE(fs::exists(target));

  v1::JobOutput out;
  out.set_path("azureml://datastores/blobs/paths/results");
  out.set_mode(v1::DATA_MODE_UPLOAD);
  WriteFile(dir_ / "o/r.txt", "r");
  auto p = PublishOutput("o", out, (dir_ / "o").string(), opts_);
  EXPECT_TRUE(absl::IsPermissionDenied(p.status())) << p.status();
  EXPECT_TRUE(client_->List("results/")->empty());
}

TEST_F(DataStageTest, PathsEscapingTheirRootAreRefused) {
  Seed();
  // A blob whose name would land outside the input folder.
  ASSERT_TRUE(client_->PutBlob("data/folder/..\\..\\evil.txt", "x").ok());
  v1::JobInput in;
  in.set_type(v1::DATA_TYPE_URI_FOLDER);
  in.set_path("azureml://datastores/blobs/paths/data/folder");
  in.set_mode(v1::DATA_MODE_DOWNLOAD);
  auto r = StageInput("d", in, (dir_ / "inputs/d").string(), opts_);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("evil.txt"));
  EXPECT_THAT(r.status().message(), HasSubstr("escape"));

  in.set_path("azureml://datastores/localds/paths/../../etc");
  r = StageInput("d", in, (dir_ / "inputs/e").string(), opts_);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("../../etc"));

  // A local input folder with a symlink out of it.
  fs::create_symlink("/etc/passwd", dir_ / "local-src/folder/passwd");
  in.set_path((dir_ / "local-src/folder").string());
  for (v1::DataMode mode : {v1::DATA_MODE_RO_MOUNT, v1::DATA_MODE_DOWNLOAD}) {
    in.set_mode(mode);
    r = StageInput("d", in, (dir_ / "inputs" / v1::DataMode_Name(mode)).string(), opts_);
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(r.status().message(), HasSubstr("'passwd' is a symlink to '/etc/passwd'"));
  }
  // An output folder with a symlink out of it.
  WriteFile(dir_ / "o/r.txt", "r");
  fs::create_symlink("/etc/passwd", dir_ / "o/leak");
  v1::JobOutput out;
  out.set_path("azureml://datastores/blobs/paths/results");
  out.set_mode(v1::DATA_MODE_UPLOAD);
  auto p = PublishOutput("o", out, (dir_ / "o").string(), opts_);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("'leak' is a symlink to '/etc/passwd'"));
}

TEST_F(DataStageTest, ConnectionDroppedMidDownloadIsRetriedWithCorrectBytes) {
  Seed();
  testing::CuttingProxy proxy(azurite_->port(), 700 * 1024, 3);
  stores_["blobs"].endpoint =
      absl::StrCat("http://127.0.0.1:", proxy.port(), "/", testing::kAzuriteAccount);
  v1::JobInput in;
  in.set_type(v1::DATA_TYPE_URI_FOLDER);
  in.set_path("azureml://datastores/blobs/paths/data/folder");
  in.set_mode(v1::DATA_MODE_DOWNLOAD);
  auto r = StageInput("d", in, (dir_ / "inputs/d").string(), opts_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(proxy.cuts_done(), 1);
  EXPECT_TRUE(ReadFile(dir_ / "inputs/d/sub/b.bin") == b_);
  EXPECT_EQ(ReadFile(dir_ / "inputs/d/a.txt"), "hello a");
}

TEST_F(DataStageTest, AnInterruptedDownloadResumesFetchingOnlyWhatIsMissing) {
  const std::string big = RandomBytes(8 << 20, 11);
  ASSERT_TRUE(client_->PutBlob("big.bin", big, blob_internal::Md5Base64(big)).ok());
  BlobAccount a = azurite_->Account(container_);
  testing::CuttingProxy proxy(azurite_->port(), (3 << 20) + (512 << 10), 1);
  a.endpoint = absl::StrCat("http://127.0.0.1:", proxy.port(), "/", testing::kAzuriteAccount);
  BlobClientOptions no_retry;
  no_retry.max_attempts = 1;
  TransferOptions t;
  t.parallelism = 1;
  t.chunk_size = 1 << 20;
  const std::string dest = (dir_ / "big.bin").string();
  auto via = BlobClient::Create(a, no_retry);
  auto first = DownloadBlobPath(**via, "big.bin", true, dest, t);
  ASSERT_FALSE(first.ok());
  EXPECT_FALSE(fs::exists(dest));
  EXPECT_TRUE(fs::exists(dest + ".kubetrain-part.state"));

  auto second = DownloadBlobPath(*client_, "big.bin", true, dest, t);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_LT(second->bytes_fetched, static_cast<int64_t>(big.size()));
  EXPECT_GE(second->bytes_fetched, 4 << 20);
  EXPECT_TRUE(ReadFile(dest) == big);
  EXPECT_FALSE(fs::exists(dest + ".kubetrain-part.state"));
  // Complete already: nothing fetched a third time.
  auto third = DownloadBlobPath(*client_, "big.bin", true, dest, t);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->bytes_fetched, 0);
}

TEST_F(DataStageTest, ACanceledDownloadStopsSoonAndResumesLater) {
  const std::string big = RandomBytes(8 << 20, 12);
  ASSERT_TRUE(client_->PutBlob("c.bin", big, blob_internal::Md5Base64(big)).ok());
  TransferOptions t;
  t.parallelism = 1;
  t.chunk_size = 1 << 20;
  const std::string dest = (dir_ / "c.bin").string();
  // Cancel once two chunks are recorded done in the sidecar.
  t.canceled = [&] {
    std::ifstream state(dest + ".kubetrain-part.state");
    int lines = 0;
    for (std::string l; std::getline(state, l);) ++lines;
    return lines >= 3;
  };
  auto first = DownloadBlobPath(*client_, "c.bin", true, dest, t);
  ASSERT_TRUE(absl::IsCancelled(first.status())) << first.status();
  EXPECT_FALSE(fs::exists(dest));
  t.canceled = nullptr;
  auto second = DownloadBlobPath(*client_, "c.bin", true, dest, t);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_LT(second->bytes_fetched, static_cast<int64_t>(big.size()));
  EXPECT_TRUE(ReadFile(dest) == big);
}

TEST_F(DataStageTest, CorruptBytesFailTheChecksum) {
  const std::string data = RandomBytes(2 << 20, 5);
  ASSERT_TRUE(client_->PutBlob("bad.bin", data).ok());
  auto info = client_->GetProperties("bad.bin");
  ASSERT_TRUE(info.ok());
  info->content_md5 = blob_internal::Md5Base64("other bytes");  // what the bytes must match
  auto r = DownloadBlobs(*client_, {{*info, (dir_ / "bad.bin").string()}}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("bad.bin"));
  EXPECT_FALSE(fs::exists(dir_ / "bad.bin"));
}

// Without hooks the views are symlinks (see EveryInputModeWithEveryPathForm); with them,
// StageInput hands the hooks the data to view — the local data itself, or the downloaded cache of
// blob data — and reports what they made. The bind mounts the agent plugs in are tested in
// tests/agent/mount_view_test.cc.
TEST_F(DataStageTest, ViewHooksMakeTheViews) {
  Seed();
  std::vector<std::pair<std::string, std::string>> ro_calls, rw_calls;
  opts_.read_only_view = [&](const std::string& source,
                             const std::string& target) -> absl::StatusOr<std::string> {
    ro_calls.emplace_back(source, target);
    absl::StatusOr<bool> is_dir = PrepareViewTarget(source, target, ViewKind::kReadOnly);
    if (!is_dir.ok()) return is_dir.status();
    absl::StatusOr<std::string> made = SymlinkView(source, target, ViewKind::kReadOnly, "a test");
    if (!made.ok()) return made.status();
    return std::string();  // as a read-only bind mount reports
  };
  opts_.writable_view = [&](const std::string& source,
                            const std::string& target) -> absl::StatusOr<std::string> {
    rw_calls.emplace_back(source, target);
    return absl::PermissionDeniedError("no views here");
  };
  v1::JobInput in;
  in.set_path((dir_ / "local-src/folder").string());
  const std::string local = (dir_ / "inputs/local").string();
  auto r = StageInput("d", in, local, opts_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->warnings.empty());
  EXPECT_EQ(r->how, absl::StrCat("read-only bind mount of ", in.path()));
  EXPECT_EQ(ReadFile(fs::path(local) / "a.txt"), "hello a");

  in.set_path("azureml://datastores/blobs/paths/data/folder");
  const std::string blob = (dir_ / "inputs/blob").string();
  r = StageInput("d", in, blob, opts_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->how, HasSubstr(absl::StrCat("; read-only bind mount of ", blob, ".cache")));
  EXPECT_TRUE(ReadFile(fs::path(blob) / "sub/b.bin") == b_);
  EXPECT_EQ(ro_calls, (std::vector<std::pair<std::string, std::string>>{
                          {(dir_ / "local-src/folder").string(), local}, {blob + ".cache", blob}}));

  in.set_path((dir_ / "local-src/folder").string());
  in.set_mode(v1::DATA_MODE_RW_MOUNT);
  r = StageInput("d", in, (dir_ / "inputs/rw").string(), opts_);
  EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << r.status();
  EXPECT_EQ(r.status().message(), absl::StrCat("input 'd' (", in.path(), "): no views here"));
  EXPECT_EQ(rw_calls.size(), 1u);
}

// The default read-only view never removes what is at its target, other than a file, a link or an
// empty folder.
TEST_F(DataStageTest, RoMountRefusesATargetThatIsNotEmpty) {
  Seed();
  WriteFile(dir_ / "inputs/busy/keep.txt", "mine");
  v1::JobInput in;
  in.set_path((dir_ / "local-src/folder").string());
  auto r = StageInput("d", in, (dir_ / "inputs/busy").string(), opts_);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_EQ(r.status().message(),
            absl::StrCat("input 'd' (", in.path(), "): ro_mount: ", (dir_ / "inputs/busy").string(),
                         " already exists and is not empty; remove it and try again"));
  EXPECT_EQ(ReadFile(dir_ / "inputs/busy/keep.txt"), "mine");
}

}  // namespace
}  // namespace kubetrain::storage
