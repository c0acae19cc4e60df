// The Workspace contract of data assets and environments (immutable versions, archive, natural
// version order), against the embedded workspace and the gRPC client of a server over one
// (backends.h).
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

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using testing::Backend;
using testing::BackendHarness;

class AssetsTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kubetrain-assets-test-XXXXXX";
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

  static v1::DataAsset Data(const std::string& name, const std::string& version,
                            const std::string& path) {
    v1::DataAsset a;
    a.set_name(name);
    a.set_version(version);
    a.set_type(v1::DATA_TYPE_URI_FOLDER);
    a.set_path(path);
    (*a.mutable_tags())["source"] = "test";
    return a;
  }

  static std::vector<std::string> Versions(const std::vector<v1::DataAsset>& assets) {
    std::vector<std::string> out;
    for (const auto& a : assets) out.push_back(a.name() + ":" + a.version());
    return out;
  }

  std::string dir_;
  std::unique_ptr<BackendHarness> harness_;
  std::unique_ptr<Workspace> ws_;
};

INSTANTIATE_TEST_SUITE_P(Backends, AssetsTest,
                         ::testing::Values(Backend::kEmbedded, Backend::kGrpc),
                         testing::BackendName);

TEST_P(AssetsTest, DataAssetCreateGetAndListInVersionOrder) {
  for (const char* v : {"10", "2", "1"}) {
    auto created = ws_->CreateDataAsset(Data("cifar", v, std::string("/data/cifar-") + v));
    ASSERT_TRUE(created.ok()) << created.status();
    EXPECT_GT(created->created_unix_ms(), 0);
    EXPECT_FALSE(created->archived());
  }
  ASSERT_TRUE(ws_->CreateDataAsset(Data("alpha", "1", "/data/alpha")).ok());

  auto got = ws_->GetDataAsset("cifar", "2");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->path(), "/data/cifar-2");
  EXPECT_EQ(got->type(), v1::DATA_TYPE_URI_FOLDER);
  EXPECT_EQ(got->tags().at("source"), "test");

  auto cifar = ws_->ListDataAssets("cifar");
  ASSERT_TRUE(cifar.ok()) << cifar.status();
  EXPECT_THAT(Versions(*cifar), ElementsAre("cifar:1", "cifar:2", "cifar:10"));
  auto all = ws_->ListDataAssets("");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(Versions(*all), ElementsAre("alpha:1", "cifar:1", "cifar:2", "cifar:10"));
  auto none = ws_->ListDataAssets("nothing");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
}

TEST_P(AssetsTest, VersionsAreImmutable) {
  auto first = ws_->CreateDataAsset(Data("cifar", "1", "/data/a"));
  ASSERT_TRUE(first.ok()) << first.status();

  // The same content again (bookkeeping fields aside) is harmless and changes nothing.
  v1::DataAsset again = Data("cifar", "1", "/data/a");
  again.set_source_file("/elsewhere/data.yml");
  auto same = ws_->CreateDataAsset(again);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->created_unix_ms(), first->created_unix_ms());

  auto other = ws_->CreateDataAsset(Data("cifar", "1", "/data/b"));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAlreadyExists) << other.status();
  EXPECT_THAT(other.status().message(), HasSubstr("\"cifar:1\" already exists"));
  EXPECT_THAT(other.status().message(), HasSubstr("/data/a"));
  EXPECT_THAT(other.status().message(), HasSubstr("immutable"));
  EXPECT_EQ(ws_->GetDataAsset("cifar", "1")->path(), "/data/a");
}

TEST_P(AssetsTest, ArchiveHidesNothingFromGetAndRestores) {
  ASSERT_TRUE(ws_->CreateDataAsset(Data("cifar", "1", "/data/a")).ok());
  auto archived = ws_->SetDataAssetArchived("cifar", "1", true);
  ASSERT_TRUE(archived.ok()) << archived.status();
  EXPECT_TRUE(archived->archived());
  EXPECT_TRUE(ws_->GetDataAsset("cifar", "1")->archived());
  EXPECT_TRUE(ws_->ListDataAssets("cifar")->at(0).archived());
  // Re-creating an archived version with the same content leaves it archived.
  auto again = ws_->CreateDataAsset(Data("cifar", "1", "/data/a"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->archived());
  auto restored = ws_->SetDataAssetArchived("cifar", "1", false);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_FALSE(ws_->GetDataAsset("cifar", "1")->archived());
}

TEST_P(AssetsTest, MissingAndInvalidAssets) {
  auto missing = ws_->GetDataAsset("cifar", "1");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("kubetrain data list"));
  EXPECT_EQ(ws_->SetDataAssetArchived("cifar", "1", true).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ws_->CreateDataAsset(Data("", "1", "/x")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ws_->CreateDataAsset(Data("x", "", "/x")).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto env = ws_->GetEnvironment("AzureML-pytorch", "6");
  EXPECT_EQ(env.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(env.status().message(), HasSubstr("kubetrain environment list"));
}

TEST_P(AssetsTest, EnvironmentsAreVersionedAndSurviveARestart) {
  v1::EnvironmentAsset env;
  env.set_name("AzureML-pytorch");
  env.set_version("6");
  env.set_image("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04");
  env.set_conda_file("/envs/conda.yml");
  env.set_conda_spec("dependencies: [python=3.10]\n");
  auto created = ws_->CreateEnvironment(env);
  ASSERT_TRUE(created.ok()) << created.status();
  env.set_version("7");
  env.set_image("example.com/pytorch:7");
  ASSERT_TRUE(ws_->CreateEnvironment(env).ok());
  // Same version, other content.
  env.set_image("example.com/pytorch:other");
  auto clash = ws_->CreateEnvironment(env);
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(clash.status().message(), HasSubstr("example.com/pytorch:7"));

  harness_->Restart();
  auto list = ws_->ListEnvironments("AzureML-pytorch");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ(list->at(0).version(), "6");
  EXPECT_EQ(list->at(0).conda_spec(), "dependencies: [python=3.10]\n");
  EXPECT_EQ(list->at(1).image(), "example.com/pytorch:7");
  ASSERT_TRUE(ws_->SetEnvironmentArchived("AzureML-pytorch", "7", true).ok());
  EXPECT_TRUE(ws_->GetEnvironment("AzureML-pytorch", "7")->archived());
  // Data assets and environments are separate namespaces.
  EXPECT_TRUE(ws_->ListDataAssets("AzureML-pytorch")->empty());
}

TEST(CompareAssetVersions, DigitRunsCompareAsNumbers) {
  EXPECT_LT(CompareAssetVersions("2", "10"), 0);
  EXPECT_GT(CompareAssetVersions("10", "9"), 0);
  EXPECT_LT(CompareAssetVersions("1.9", "1.10"), 0);
  EXPECT_LT(CompareAssetVersions("10", "10a"), 0);
  EXPECT_LT(CompareAssetVersions("10a", "11"), 0);
  EXPECT_LT(CompareAssetVersions("alpha", "beta"), 0);
  EXPECT_EQ(CompareAssetVersions("3", "3"), 0);
  EXPECT_NE(CompareAssetVersions("01", "1"), 0);  // a total order: equal numbers, other text
  EXPECT_EQ(CompareAssetVersions("01", "1"), -CompareAssetVersions("1", "01"));
}

}  // namespace
}  // namespace kubetrain::storage
