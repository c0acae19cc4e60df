// Azure ML data asset and environment YAML → v1::DataAsset / EnvironmentAsset, and the references
// jobs use (azureml:name:version, name@latest): fields, defaults, errors with line and field.
#include "kubetrain/launcher/spec/asset_file.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kubetrain::spec {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class AssetFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kt-asset-file-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "cifar");
    fs::create_directories(dir_ / "docker");
    std::ofstream(dir_ / "labels.csv") << "a,b\n";
    std::ofstream(dir_ / "conda.yml") << "dependencies:\n  - python=3.10\n";
    std::ofstream(dir_ / "docker" / "Dockerfile") << "FROM ubuntu\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string File(const std::string& name) const { return (dir_ / name).string(); }
  DataAssetParseResult Data(const std::string& yaml, std::vector<std::string> overrides = {}) {
    return ParseDataAssetYaml(yaml, File("data.yml"), AssetFileOptions{std::move(overrides)});
  }
  EnvironmentParseResult Env(const std::string& yaml) {
    return ParseEnvironmentYaml(yaml, File("env.yml"));
  }
  // The one error's "file:line:column: error: field: ..." text.
  static std::string Errors(const Diagnostics& d) { return d.Format(); }

  fs::path dir_;
};

TEST_F(AssetFileTest, ReadsAnAzureMlDataAsset) {
  DataAssetParseResult r =
      Data(R"($schema: https://azuremlschemas.azureedge.net/latest/data.schema.json
name: cifar-10-example
version: 1
type: uri_folder
path: ./cifar
description: CIFAR-10
tags: {source: toronto}
)");
  ASSERT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  EXPECT_EQ(r.asset.name(), "cifar-10-example");
  EXPECT_EQ(r.asset.version(), "1");
  EXPECT_EQ(r.asset.type(), v1::DATA_TYPE_URI_FOLDER);
  EXPECT_EQ(r.asset.path(), File("cifar"));
  EXPECT_EQ(r.asset.description(), "CIFAR-10");
  EXPECT_EQ(r.asset.tags().at("source"), "toronto");
  EXPECT_EQ(r.asset.source_file(), File("data.yml"));
}

TEST_F(AssetFileTest, DataDefaultsRemotePathsAndOverrides) {
  DataAssetParseResult r =
      Data("name: x\npath: azureml://datastores/workspaceblobstore/paths/cifar/\n");
  ASSERT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  EXPECT_EQ(r.asset.type(), v1::DATA_TYPE_URI_FOLDER);
  EXPECT_EQ(r.asset.version(), "");  // the workspace gives the next one
  EXPECT_EQ(r.asset.path(), "azureml://datastores/workspaceblobstore/paths/cifar/");

  r = Data("name: labels\ntype: uri_file\npath: labels.csv\n", {"name=renamed", "version=7"});
  ASSERT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  EXPECT_EQ(r.asset.name(), "renamed");
  EXPECT_EQ(r.asset.version(), "7");
  EXPECT_EQ(r.asset.type(), v1::DATA_TYPE_URI_FILE);
}

TEST_F(AssetFileTest, DataErrorsNameLineFieldAndFix) {
  struct Case {
    std::string yaml, where, text;
  };
  for (const Case& c : {
           Case{"name: x\nversoin: 1\npath: cifar\n", ":2:1: error: versoin: unknown key",
                "did you mean `version`?"},
           Case{"name: x\ntype: uri_flder\npath: cifar\n",
                ":2:7: error: type:", "did you mean `uri_folder`?"},
           Case{"name: x\ntype: uri_file\npath: cifar\n",
                ":3:7: error: path:", "is a folder but the type is uri_file"},
           Case{"name: x\npath: labels.csv\n",
                ":2:7: error: path:", "is a file but the type is uri_folder"},
           Case{"name: x\ntype: mltable\npath: cifar\n", ":3:7: error: path:", "no MLTable file"},
           Case{"name: x\npath: ./nowhere\n", ":2:7: error: path:", "does not exist"},
           Case{"name: x\nversion: latest\npath: cifar\n", ":2:10: error: version:", "a label"},
           Case{"name: 'my data'\npath: cifar\n", ":1:7: error: name:", "not a valid asset name"},
           Case{"name: x\npath: azureml:other:1\n", ":2:7: error: path:", "another data asset"},
           Case{"version: 1\npath: cifar\n", "error: name: missing", "--name"},
           Case{"name: x\n", "error: path: missing", "azureml://datastores"},
       }) {
    DataAssetParseResult r = Data(c.yaml);
    EXPECT_TRUE(r.diagnostics.has_errors()) << c.yaml;
    EXPECT_THAT(Errors(r.diagnostics), HasSubstr(c.where)) << c.yaml;
    EXPECT_THAT(Errors(r.diagnostics), HasSubstr(c.text)) << c.yaml;
  }
  DataAssetParseResult ignored = Data("name: x\npath: cifar\ndatastore: workspaceblobstore\n");
  EXPECT_FALSE(ignored.diagnostics.has_errors()) << ignored.diagnostics.Format();
  EXPECT_THAT(ignored.diagnostics.Format(), HasSubstr(":3:1: warning: datastore:"));
}

TEST_F(AssetFileTest, ReadsAnEnvironmentWithItsCondaFile) {
  EnvironmentParseResult r = Env(R"(name: AzureML-pytorch-1.9-ubuntu18.04-py37-cuda11-gpu
version: 6
image: mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.1-cudnn8-ubuntu18.04
conda_file: conda.yml
description: PyTorch 1.9
inference_config: {liveness_route: {path: /, port: 5001}}
)");
  ASSERT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  const v1::EnvironmentAsset& e = r.environment;
  EXPECT_EQ(e.name(), "AzureML-pytorch-1.9-ubuntu18.04-py37-cuda11-gpu");
  EXPECT_EQ(e.version(), "6");
  EXPECT_EQ(e.image(), "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.1-cudnn8-ubuntu18.04");
  EXPECT_EQ(e.conda_file(), File("conda.yml"));
  EXPECT_EQ(e.conda_spec(), "dependencies:\n  - python=3.10\n");
  EXPECT_EQ(e.os_type(), "linux");
  EXPECT_THAT(r.diagnostics.Format(), HasSubstr(":6:1: warning: inference_config:"));

  r = Env("name: built\nbuild: {path: docker}\n");
  ASSERT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  EXPECT_EQ(r.environment.build_context(), File("docker"));
  EXPECT_EQ(r.environment.dockerfile_path(), "Dockerfile");
  EXPECT_TRUE(r.environment.image().empty());
}

TEST_F(AssetFileTest, EnvironmentErrors) {
  struct Case {
    std::string yaml, where, text;
  };
  for (const Case& c : {
           Case{"name: e\n", "error: image: missing", "needs `image:` or `build:`"},
           Case{"name: e\nimage: x\nbuild: {path: docker}\n", ":3:8: error: build:", "not both"},
           Case{"name: e\nbuild: {path: docker}\nconda_file: conda.yml\n",
                ":3:13: error: conda_file:", "goes with `image:`"},
           Case{"name: e\nimage: x\nconda_file: missing.yml\n",
                ":3:13: error: conda_file:", "cannot read"},
           Case{"name: e\nbuild: {path: docker, dockerfile_path: Other}\n",
                "error: build.dockerfile_path:", "not in the build context"},
           Case{"name: e\nimage: x\nos_type: windows\n",
                ":3:10: error: os_type:", "Linux containers only"},
           Case{"name: e\nimgae: x\n", ":2:1: error: imgae: unknown key", "`image`"},
       }) {
    EnvironmentParseResult r = Env(c.yaml);
    EXPECT_TRUE(r.diagnostics.has_errors()) << c.yaml;
    EXPECT_THAT(Errors(r.diagnostics), HasSubstr(c.where)) << c.yaml;
    EXPECT_THAT(Errors(r.diagnostics), HasSubstr(c.text)) << c.yaml;
  }
}

TEST(AssetReferenceTest, Forms) {
  auto ref = ParseAssetReference("azureml:cifar-10-example:1");
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->name, "cifar-10-example");
  EXPECT_EQ(ref->version, "1");
  EXPECT_EQ(ref->ToString(), "cifar-10-example:1");
  ref = ParseAssetReference("azureml:AzureML-tensorflow-2.4-ubuntu18.04-py37-cuda11-gpu@latest");
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->name, "AzureML-tensorflow-2.4-ubuntu18.04-py37-cuda11-gpu");
  EXPECT_EQ(ref->label, "latest");
  ref = ParseAssetReference("cifar@latest");
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->ToString(), "cifar@latest");
  ref = ParseAssetReference("nccl:openmpi4.1.0-cuda11.1-cudnn8-ubuntu18.04");
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->version, "openmpi4.1.0-cuda11.1-cudnn8-ubuntu18.04");

  EXPECT_THAT(ParseAssetReference("azureml:cifar").status().message(),
              HasSubstr("names no version or label"));
  EXPECT_THAT(ParseAssetReference("azureml:cifar@prod").status().message(),
              HasSubstr("@latest only"));
  EXPECT_THAT(ParseAssetReference("azureml::1").status().message(), HasSubstr("name is empty"));
  EXPECT_THAT(ParseAssetReference("azureml:x:1:2").status().message(),
              HasSubstr("not a valid asset version"));
  EXPECT_TRUE(IsAssetReference("azureml:x:1"));
  EXPECT_FALSE(IsAssetReference("azureml://datastores/x/paths/y"));
  EXPECT_FALSE(IsAssetReference("./data"));
}

}  // namespace
}  // namespace kubetrain::spec
