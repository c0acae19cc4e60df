// Blob interop with the official client: what kubetrain uploads to a real Azurite, Microsoft's
// azure-storage-blob (Python, in the project venv) reads byte for byte; what azure-storage-blob
// uploads, kubetrain downloads byte for byte. Block blobs, a 300 MiB file (blocks on both sides),
// empty files, names with spaces and non-ASCII characters, nested folders. kubetrain's side is
// the code the `upload` and `download` data modes run (storage/transfer.h); the Python side is
// tests/storage/blob_interop.py.
//
// Skips with the reason when Azurite (.deps/node_modules) or the venv's azure-storage-blob
// (KUBETRAIN_VENV, default .deps/venv) is missing: scripts/setup-deps.sh installs both.
#include <openssl/evp.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/storage/blob_client.h"
#include "kubetrain/storage/transfer.h"
#include "nlohmann/json.hpp"
#include "tests/storage/azurite.h"
#include "tests/testing/command.h"

namespace kubetrain {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// The interop file set (relative path -> size); blob_interop.py uploads the same names.
const std::map<std::string, int64_t>& Files() {
  static const auto* files = new std::map<std::string, int64_t>{
      {"empty.bin", 0},
      {"big/model-300MiB.bin", int64_t{300} << 20},
      {"with space/file name with spaces.txt", 1234},
      {"unicode/données — 日本語 ü.txt", 4321},
      {"nested/a/b/c/deep.txt", 17},
      {"also empty/nothing here.txt", 0},
  };
  return *files;
}

struct Digest {
  int64_t size = 0;
  std::string sha256;  // hex
};

Digest Sha256File(const fs::path& path) {
  Digest d;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    std::streamsize n = in.gcount();
    if (n <= 0) break;
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(n));
    d.size += n;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  static const char kHex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < len; ++i) {
    d.sha256 += kHex[md[i] >> 4];
    d.sha256 += kHex[md[i] & 15];
  }
  return d;
}

// `size` pseudo-random bytes (splitmix64 from `seed`), written in 1 MiB pieces.
void WritePattern(const fs::path& path, int64_t size, uint64_t seed) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::vector<uint64_t> buf((1 << 20) / sizeof(uint64_t));
  uint64_t x = seed;
  for (int64_t left = size; left > 0;) {
    for (uint64_t& w : buf) {
      uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      w = z ^ (z >> 31);
    }
    int64_t n = std::min<int64_t>(left, static_cast<int64_t>(buf.size() * sizeof(uint64_t)));
    out.write(reinterpret_cast<const char*>(buf.data()), n);
    left -= n;
  }
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

class BlobInteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* env = std::getenv("KUBETRAIN_VENV");
    venv_ = env != nullptr && *env != '\0' ? env : KUBETRAIN_VENV;
    python_ = venv_ + "/bin/python";
    if (access(python_.c_str(), X_OK) != 0) {
      GTEST_SKIP() << "no project venv at " << venv_
                   << " (azure-storage-blob lives there): run scripts/setup-deps.sh";
    }
    if (testing::RunCommand(Quote(python_) + " -c 'import azure.storage.blob'").exit_code != 0) {
      GTEST_SKIP() << "azure-storage-blob is not installed in " << venv_
                   << ": run scripts/setup-deps.sh";
    }
    absl::Status started = azurite_.Start();
    if (!started.ok()) GTEST_SKIP() << started.message();
    dir_ = fs::temp_directory_path() /
           absl::StrCat("kt-blob-interop-", getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto client = storage::BlobClient::Create(azurite_.Account("interop"));
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
    ASSERT_TRUE(client_->CreateContainer().ok());
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  testing::CommandResult Python(const std::string& command, const std::string& prefix,
                                const std::string& more) {
    return testing::RunCommand(
        absl::StrCat(Quote(python_), " ",
                     Quote(std::string(KUBETRAIN_SOURCE_DIR) + "/tests/storage/blob_interop.py"),
                     " ", command, " --endpoint ", Quote(azurite_.endpoint()), " --account ",
                     testing::kAzuriteAccount, " --key ", Quote(testing::kAzuriteKey),
                     " --container interop --prefix ", Quote(prefix), " ", more));
  }

  std::string venv_;
  std::string python_;
  testing::Azurite azurite_;
  fs::path dir_;
  std::unique_ptr<storage::BlobClient> client_;
};

TEST_F(BlobInteropTest, OfficialClientReadsWhatKubetrainUploadedByteForByte) {
  const fs::path ours = dir_ / "ours";
  nlohmann::json manifest = nlohmann::json::object();
  uint64_t seed = 1;
  for (const auto& [rel, size] : Files()) {
    WritePattern(ours / fs::path(rel), size, seed++);
    Digest d = Sha256File(ours / fs::path(rel));
    ASSERT_EQ(d.size, size) << rel;
    manifest[rel] = {{"size", d.size}, {"sha256", d.sha256}};
  }
  storage::TransferOptions options;
  options.parallelism = 4;
  auto stats =
      storage::UploadPath(*client_, ours.string(), /*is_file=*/false, "from-kubetrain", options);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->files, static_cast<int64_t>(Files().size()));
  std::ofstream(dir_ / "manifest.json") << manifest.dump(1);

  testing::CommandResult r =
      Python("verify", "from-kubetrain", "--manifest " + Quote((dir_ / "manifest.json").string()));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const auto& [rel, size] : Files()) {
    EXPECT_THAT(r.output, HasSubstr("read from-kubetrain/" + rel + ": " + std::to_string(size) +
                                    " bytes, sha256 matches"));
  }
}

TEST_F(BlobInteropTest, KubetrainDownloadsWhatTheOfficialClientUploadedByteForByte) {
  testing::CommandResult r =
      Python("upload", "from-azure-sdk",
             absl::StrCat("--dir ", Quote((dir_ / "theirs").string()), " --manifest-out ",
                          Quote((dir_ / "manifest.json").string())));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json manifest = nlohmann::json::parse(std::ifstream(dir_ / "manifest.json"));
  ASSERT_EQ(manifest.size(), Files().size());

  const fs::path downloaded = dir_ / "downloaded";
  storage::TransferOptions options;
  options.parallelism = 4;
  auto stats = storage::DownloadBlobPath(*client_, "from-azure-sdk", /*is_file=*/false,
                                         downloaded.string(), options);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->files, static_cast<int64_t>(Files().size()));

  std::map<std::string, Digest> got;
  for (const auto& entry : fs::recursive_directory_iterator(downloaded)) {
    if (!entry.is_regular_file()) continue;
    got[fs::relative(entry.path(), downloaded).string()] = Sha256File(entry.path());
  }
  for (const auto& [rel, want] : manifest.items()) {
    auto it = got.find(rel);
    if (it == got.end()) {
      ADD_FAILURE() << "kubetrain did not download " << rel;
      continue;
    }
    EXPECT_EQ(it->second.size, want["size"].get<int64_t>()) << rel;
    EXPECT_EQ(it->second.sha256, want["sha256"].get<std::string>()) << rel;
  }
  for (const auto& [rel, unused] : got) {
    EXPECT_TRUE(manifest.contains(rel)) << "kubetrain downloaded an extra file " << rel;
  }
}

}  // namespace
}  // namespace kubetrain
