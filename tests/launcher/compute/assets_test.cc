// Data assets and environments as the launcher uses them (launcher/compute/assets.h): version
// assignment on create, immutability, @latest and archived versions, and resolving a parsed job's
// references on local and Kubernetes targets, with errors pointing into the job file.
#include "kubetrain/launcher/compute/assets.h"

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/launcher/spec/job_parser.h"

namespace kubetrain::compute {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kJob[] = "/jobs/demo/job.yml";

class AssetsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kt-assets-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    for (const char* d : {"v1", "v2", "v10"}) fs::create_directories(dir_ / "data" / d);
    auto ws = storage::OpenEmbeddedWorkspace((dir_ / "ws").string());
    ASSERT_TRUE(ws.ok()) << ws.status();
    ws_ = std::move(*ws);
    local_.set_name("local");
    local_.mutable_local();
    kubernetes_.set_name("aks");
    kubernetes_.mutable_kubernetes()->set_worker_image("kubetrain/worker:1");
  }
  void TearDown() override {
    ws_.reset();
    fs::remove_all(dir_);
  }

  std::string Data(const std::string& sub) const { return (dir_ / "data" / sub).string(); }

  v1::DataAsset Asset(const std::string& name, const std::string& version,
                      const std::string& path) {
    v1::DataAsset a;
    a.set_name(name);
    a.set_version(version);
    a.set_type(v1::DATA_TYPE_URI_FOLDER);
    a.set_path(path);
    return a;
  }

  v1::EnvironmentAsset Env(const std::string& name, const std::string& version,
                           const std::string& image) {
    v1::EnvironmentAsset e;
    e.set_name(name);
    e.set_version(version);
    e.set_image(image);
    return e;
  }

  // Parses `yaml` as kJob and resolves its assets on `target`.
  spec::JobParseResult Resolve(const std::string& yaml, const v1::ComputeTarget* target) {
    spec::JobParseResult r = spec::ParseJobYaml(yaml, kJob);
    EXPECT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
    ResolveJobAssets(*ws_, target, &r.spec, r.diagnostics);
    return r;
  }

  fs::path dir_;
  std::unique_ptr<storage::Workspace> ws_;
  v1::ComputeTarget local_, kubernetes_;
};

TEST_F(AssetsTest, CreateAssignsTheNextWholeVersionAndKeepsVersionsImmutable) {
  auto first = CreateDataAsset(*ws_, Asset("cifar", "", Data("v1")));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->asset.version(), "1");
  EXPECT_TRUE(first->created);
  ASSERT_TRUE(CreateDataAsset(*ws_, Asset("cifar", "10", Data("v10"))).ok());
  ASSERT_TRUE(ws_->SetDataAssetArchived("cifar", "10", true).ok());
  auto next = CreateDataAsset(*ws_, Asset("cifar", "", Data("v2")));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->asset.version(), "11");  // archived versions count: a number is never reused

  auto same = CreateDataAsset(*ws_, Asset("cifar", "1", Data("v1")));
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_FALSE(same->created);
  auto clash = CreateDataAsset(*ws_, Asset("cifar", "1", Data("v2")));
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(clash.status().message(), HasSubstr(Data("v1")));
  EXPECT_THAT(clash.status().message(), HasSubstr("`kubetrain data show cifar:1`"));

  auto env = CreateEnvironment(*ws_, Env("pytorch", "", "img:1"));
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->asset.version(), "1");
}

TEST_F(AssetsTest, LatestIsTheHighestVersionNotArchived) {
  for (const char* v : {"1", "2", "10"}) {
    ASSERT_TRUE(CreateDataAsset(*ws_, Asset("cifar", v, Data(std::string("v") + v))).ok());
  }
  auto latest = FindDataAsset(*ws_, {"cifar", "", "latest"});
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->version(), "10");  // 10 > 2, as numbers
  ASSERT_TRUE(ws_->SetDataAssetArchived("cifar", "10", true).ok());
  EXPECT_EQ(FindDataAsset(*ws_, {"cifar", "", "latest"})->version(), "2");
  // An archived version still resolves by its version.
  EXPECT_EQ(FindDataAsset(*ws_, {"cifar", "10", ""})->path(), Data("v10"));

  auto missing = FindDataAsset(*ws_, {"cifar", "3", ""});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("has no version \"3\" (it has 1, 2, 10)"));
  ASSERT_TRUE(ws_->SetDataAssetArchived("cifar", "1", true).ok());
  ASSERT_TRUE(ws_->SetDataAssetArchived("cifar", "2", true).ok());
  auto none = FindDataAsset(*ws_, {"cifar", "", "latest"});
  EXPECT_THAT(none.status().message(), HasSubstr("every version"));
  EXPECT_THAT(none.status().message(), HasSubstr("kubetrain data restore cifar:10"));
}

TEST_F(AssetsTest, InputsResolveToTheAssetPathAndRecordTheVersion) {
  ASSERT_TRUE(CreateDataAsset(*ws_, Asset("cifar-10-example", "1", Data("v1"))).ok());
  ASSERT_TRUE(CreateDataAsset(*ws_, Asset("cifar-10-example", "2", Data("v2"))).ok());
  spec::JobParseResult r = Resolve(R"(command: ls ${{inputs.a}} ${{inputs.b}}
inputs:
  a: azureml:cifar-10-example:1
  b:
    type: uri_folder
    path: azureml:cifar-10-example@latest
    mode: download
)",
                                   &local_);
  ASSERT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  const v1::JobInput& a = r.spec.inputs().at("a");
  EXPECT_EQ(a.path(), Data("v1"));
  EXPECT_EQ(a.asset(), "cifar-10-example:1");
  EXPECT_EQ(a.type(), v1::DATA_TYPE_URI_FOLDER);
  const v1::JobInput& b = r.spec.inputs().at("b");
  EXPECT_EQ(b.path(), Data("v2"));
  EXPECT_EQ(b.asset(), "cifar-10-example:2");  // @latest records the version it got
  EXPECT_EQ(b.mode(), v1::DATA_MODE_DOWNLOAD);
}

TEST_F(AssetsTest, UnknownAssetsAndTypeMismatchPointIntoTheJobFile) {
  ASSERT_TRUE(CreateDataAsset(*ws_, Asset("cifar", "1", Data("v1"))).ok());
  spec::JobParseResult r = Resolve(R"(command: x
inputs:
  missing: azureml:cifar-10-example:1
  typed:
    type: uri_file
    path: azureml:cifar:1
)",
                                   &local_);
  std::string out = r.diagnostics.Format();
  EXPECT_EQ(r.diagnostics.error_count(), 2) << out;
  EXPECT_THAT(out, HasSubstr(std::string(kJob) +
                             ":3:12: error: inputs.missing.path: no data asset named "
                             "\"cifar-10-example\" is registered; register it: `kubetrain data "
                             "create -f data.yml` with name: cifar-10-example, version: 1, type "
                             "and path"));
  EXPECT_THAT(out, HasSubstr(":5:11: error: inputs.typed.type: the input is uri_file but data "
                             "asset \"cifar:1\" is uri_folder"));
}

TEST_F(AssetsTest, EnvironmentOnLocalComputeIsAWarningThatNamesIt) {
  ASSERT_TRUE(CreateEnvironment(*ws_, Env("AzureML-pytorch", "6", "mcr/pytorch:6")).ok());
  spec::JobParseResult r = Resolve("command: x\nenvironment: azureml:AzureML-pytorch:6\n", &local_);
  ASSERT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  EXPECT_EQ(r.spec.environment().asset(), "AzureML-pytorch:6");
  EXPECT_EQ(r.spec.environment().image(), "mcr/pytorch:6");
  ASSERT_EQ(r.diagnostics.all().size(), 1u);
  EXPECT_THAT(r.diagnostics.Format(),
              HasSubstr(":2:14: warning: environment: compute \"local\" is local: the job runs on "
                        "this machine's software, not in environment "
                        "\"azureml:AzureML-pytorch:6\" (image mcr/pytorch:6)"));

  // Inline images and file: environments are named the same way; no environment, no warning.
  r = Resolve("command: x\nenvironment: {image: python:latest}\n", &local_);
  EXPECT_THAT(r.diagnostics.Format(), HasSubstr("not in environment image \"python:latest\""));
  r = Resolve("command: x\nenvironment: file:./env/azureml/env.yml\n", &local_);
  EXPECT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  EXPECT_THAT(r.diagnostics.Format(), HasSubstr("\"file:./env/azureml/env.yml\""));
  r = Resolve("command: x\n", &local_);
  EXPECT_TRUE(r.diagnostics.all().empty()) << r.diagnostics.Format();
}

TEST_F(AssetsTest, EnvironmentOnKubernetesIsThePodImage) {
  v1::EnvironmentAsset conda = Env("tf", "1", "tf:1");
  conda.set_conda_spec("dependencies: [python]\n");
  ASSERT_TRUE(CreateEnvironment(*ws_, conda).ok());
  ASSERT_TRUE(CreateEnvironment(*ws_, Env("tf", "2", "tf:2")).ok());
  spec::JobParseResult r = Resolve("command: x\nenvironment: tf@latest\n", &kubernetes_);
  EXPECT_TRUE(r.diagnostics.all().empty()) << r.diagnostics.Format();
  EXPECT_EQ(r.spec.environment().image(), "tf:2");
  EXPECT_EQ(r.spec.environment().asset(), "tf:2");

  r = Resolve("command: x\nenvironment: azureml:tf:1\n", &kubernetes_);
  EXPECT_FALSE(r.diagnostics.has_errors());
  EXPECT_THAT(r.diagnostics.Format(), HasSubstr("conda file of environment"));

  v1::EnvironmentAsset built;
  built.set_name("built");
  built.set_version("1");
  built.set_build_context("/ctx");
  ASSERT_TRUE(CreateEnvironment(*ws_, built).ok());
  r = Resolve("command: x\nenvironment: azureml:built:1\n", &kubernetes_);
  EXPECT_THAT(r.diagnostics.Format(), HasSubstr("kubetrain does not build images"));
}

TEST_F(AssetsTest, UnregisteredCuratedEnvironmentNamesEnvironmentCreate) {
  spec::JobParseResult r = Resolve(
      "command: x\nenvironment: azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu:3\n", &local_);
  std::string out = r.diagnostics.Format();
  EXPECT_EQ(r.diagnostics.error_count(), 1) << out;
  EXPECT_THAT(out, HasSubstr(":2:14: error: environment: \"AzureML-sklearn-1.0-ubuntu20.04-py38-"
                             "cpu:3\" is an Azure ML curated environment"));
  EXPECT_THAT(out, HasSubstr("`kubetrain environment create -f env.yml` with name: "
                             "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu, version: 3, image"));
  EXPECT_THAT(out, Not(HasSubstr("warning")));  // the error says it; no second message

  r = Resolve("command: x\nenvironment: azureml:mine@latest\n", &local_);
  EXPECT_THAT(r.diagnostics.Format(), HasSubstr("no environment named \"mine\" is registered"));
}

}  // namespace
}  // namespace kubetrain::compute
