// `kubetrain data ...` and `kubetrain environment ...` through the real binary, and the Azure ML
// job files of ../shared/compat/azureml-jobs validated and created with nothing but `--set
// compute=local` once the assets they name are registered (issue 16 §3).
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/command.h"

namespace kubetrain {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPytorchEnv[] = "AzureML-pytorch-1.9-ubuntu18.04-py37-cuda11-gpu";

std::string CompatDir() {
  return std::string(KUBETRAIN_SOURCE_DIR) + "/../shared/compat/azureml-jobs/";
}

class AssetCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kt-asset-cli-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "cifar-10");
    std::ofstream(dir_ / "cifar-10" / "data_batch_1") << "bytes\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }

  CommandResult Kt(const std::string& args) {
    return testing::RunCommand("KUBETRAIN_WORKSPACE=" + (dir_ / "ws").string() + " " +
                               testing::KubetrainCli() + args);
  }

  // cifar-10-example:1, as the Azure ML example registers it, but from a local folder.
  void RegisterCifar() {
    std::string file =
        Write("cifar.yml", R"($schema: https://azuremlschemas.azureedge.net/latest/data.schema.json
name: cifar-10-example
version: 1
type: uri_folder
path: ./cifar-10
description: CIFAR-10, local copy
)");
    CommandResult r = Kt("data create -f " + file);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }

  void RegisterEnvironment(const std::string& name, const std::string& version) {
    std::string file = Write("env-" + name + ".yml", "name: " + name + "\nversion: " + version +
                                                         "\nimage: mcr.microsoft.com/azureml/"
                                                         "openmpi4.1.0-ubuntu20.04\n");
    CommandResult r = Kt("environment create -f " + file);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }

  // Everything the compat files name: the data asset and the curated environments.
  void RegisterEverythingTheCompatFilesName() {
    RegisterCifar();
    RegisterEnvironment(kPytorchEnv, "6");
    RegisterEnvironment("AzureML-sklearn-1.0-ubuntu20.04-py38-cpu", "3");
    RegisterEnvironment("AzureML-tensorflow-2.4-ubuntu18.04-py37-cuda11-gpu", "14");
  }

  // Waits until job `name` has ended (or 60 s passed).
  void WaitForEnd(const std::string& name) {
    for (int i = 0; i < 600; ++i) {
      std::string out = Kt("job show " + name).output;
      for (const char* end : {"Completed", "Failed", "Canceled"}) {
        if (out.find(end) != std::string::npos) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "job " << name << " did not end";
  }

  fs::path dir_;
};

TEST_F(AssetCliTest, DataCreateListShowArchiveRestore) {
  RegisterCifar();
  std::string file = (dir_ / "cifar.yml").string();
  // The same content again changes nothing; other content under the same version is refused.
  CommandResult r = Kt("data create -f " + file);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("already exists with this content; unchanged"));
  fs::create_directories(dir_ / "other");
  r = Kt("data create -f " + file + " --set path=./other");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("\"cifar-10-example:1\" already exists (uri_folder " +
                                  (dir_ / "cifar-10").string()));
  EXPECT_THAT(r.output, HasSubstr("versions are immutable"));
  // No version: the next one.
  r = Kt("data create -f " + file + " --set path=./other --set version=null");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("data asset \"cifar-10-example:2\" created"));

  r = Kt("data list");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("cifar-10-example"));
  EXPECT_THAT(r.output, HasSubstr((dir_ / "other").string()));
  r = Kt("data show cifar-10-example");  // @latest
  EXPECT_THAT(r.output, HasSubstr((dir_ / "other").string()));
  r = Kt("data show azureml:cifar-10-example:1 -o json");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("\"version\": \"1\""));

  r = Kt("data archive cifar-10-example:2");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(Kt("data list").output, Not(HasSubstr((dir_ / "other").string())));
  EXPECT_THAT(Kt("data list --include-archived").output, HasSubstr("2 (archived)"));
  EXPECT_THAT(Kt("data show cifar-10-example@latest").output,
              HasSubstr((dir_ / "cifar-10").string()));
  r = Kt("data archive cifar-10-example");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("NAME:VERSION"));
  EXPECT_EQ(Kt("data restore cifar-10-example:2").exit_code, 0);
  EXPECT_THAT(Kt("data show cifar-10-example").output, HasSubstr((dir_ / "other").string()));

  std::string bad = Write("bad.yml", "name: x\ntype: uri_fille\npath: ./cifar-10\n");
  r = Kt("data create -f " + bad);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr(bad + ":2:7: error: type: unknown data asset type "
                                        "\"uri_fille\"; did you mean `uri_file`?"));
  EXPECT_THAT(r.output, HasSubstr("nothing was created"));
}

TEST_F(AssetCliTest, EnvironmentCreateListShow) {
  Write("conda.yml", "dependencies:\n  - python=3.10\n");
  std::string file = Write(
      "env.yml", R"($schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
name: my-pytorch
image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04
conda_file: conda.yml
)");
  CommandResult r = Kt("environment create -f " + file);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("environment \"my-pytorch:1\" created"));
  r = Kt("environment list");
  EXPECT_THAT(r.output, HasSubstr("my-pytorch"));
  EXPECT_THAT(r.output, HasSubstr("image mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"));
  r = Kt("environment show my-pytorch");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("python=3.10"));  // the conda file's content was stored
  r = Kt("environment show my-pytorch:2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("environment \"my-pytorch\" has no version \"2\" (it has 1)"));
}

TEST_F(AssetCliTest, PytorchCifarValidatesWithRegisteredAssetsAndALocalWarning) {
  if (!fs::exists(CompatDir())) GTEST_SKIP() << "no ../shared/compat at " << CompatDir();
  const std::string job = CompatDir() + "pytorch-cifar-distributed.yml";
  // Nothing registered: each reference is an error at its place with the command that fixes it.
  CommandResult r = Kt("job validate -f " + job + " --set compute=local");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr(job + ":11:10: error: inputs.cifar.path: no data asset named "
                                        "\"cifar-10-example\" is registered; register it: "
                                        "`kubetrain data create"));
  EXPECT_THAT(r.output, HasSubstr(job + ":12:14: error: environment: \"" + kPytorchEnv +
                                  ":6\" is an Azure ML curated environment"));
  EXPECT_THAT(r.output, HasSubstr("`kubetrain environment create -f env.yml`"));

  RegisterCifar();
  RegisterEnvironment(kPytorchEnv, "6");
  r = Kt("job validate -f " + job + " --set compute=local");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, Not(HasSubstr("error:")));
  EXPECT_THAT(r.output,
              HasSubstr(job +
                        ":12:14: warning: environment: compute \"local\" is local: the job "
                        "runs on this machine's software, not in environment \"azureml:" +
                        kPytorchEnv + ":6\""));
  EXPECT_THAT(r.output, HasSubstr("uri_folder default " + (dir_ / "cifar-10").string() +
                                  " (data asset azureml:cifar-10-example:1)"));
  r = Kt("job validate -f " + job + " --set compute=local -o json");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("\"asset\": \"cifar-10-example:1\""));
}

TEST_F(AssetCliTest, EveryCompatFileValidatesAndCreatesWithOnlyComputeLocal) {
  if (!fs::exists(CompatDir())) GTEST_SKIP() << "no ../shared/compat at " << CompatDir();
  RegisterEverythingTheCompatFilesName();
  std::vector<std::string> jobs;
  int files = 0;
  for (const auto& entry : fs::directory_iterator(CompatDir())) {
    if (entry.path().extension() != ".yml") continue;
    ++files;
    const std::string name = entry.path().filename().string();
    std::string args = "-f " + entry.path().string() + " --set compute=local";
    CommandResult r;
    if (name == "gpu-perf-nccl-tests.yml") {
      // Its `instance_type: Standard_NC6s_v3` is an Azure VM size, which cannot be the name of an
      // InstanceType resource (Kubernetes names are lower case): the one --set left, and the only
      // error without it.
      r = Kt("job validate " + args);
      EXPECT_EQ(r.exit_code, 1) << r.output;
      EXPECT_THAT(r.output, HasSubstr("error: resources.instance_type: compute \"local\" has no "
                                      "instance type \"Standard_NC6s_v3\""));
      EXPECT_THAT(r.output, HasSubstr(": 1 error\n")) << r.output;
      args += " --set resources.instance_type=defaultinstancetype";
    }
    r = Kt("job validate " + args);
    EXPECT_EQ(r.exit_code, 0) << name << ":\n" << r.output;
    EXPECT_THAT(r.output, Not(HasSubstr("error:"))) << name;
    EXPECT_THAT(r.output, HasSubstr("instance type")) << name;
    // Every file names an environment: on local compute that is said, never silently ignored.
    EXPECT_THAT(r.output, HasSubstr("warning: environment: compute \"local\" is local")) << name;

    r = Kt("job create " + args);
    EXPECT_EQ(r.exit_code, 0) << name << ":\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr("warning: environment: compute \"local\" is local")) << name;
    // "job <name> submitted to compute local (...)", after the warnings.
    const std::string out = "\n" + r.output;
    size_t end = out.find(" submitted to compute ");
    size_t at = out.rfind("\njob ", end);
    if (end == std::string::npos || at == std::string::npos) continue;
    std::string job = out.substr(at + 5, end - at - 5);
    jobs.push_back(job);
    if (name == "pytorch-cifar-distributed.yml") {
      // The stored job records what the reference resolved to.
      CommandResult show = Kt("job show " + job + " -o json");
      EXPECT_THAT(show.output, HasSubstr("\"asset\": \"cifar-10-example:1\""));
      EXPECT_THAT(show.output, HasSubstr("\"path\": \"" + (dir_ / "cifar-10").string() + "\""));
      EXPECT_THAT(show.output, HasSubstr(std::string("\"asset\": \"") + kPytorchEnv + ":6\""));
      show = Kt("job show " + job);
      EXPECT_THAT(show.output, HasSubstr("(data asset azureml:cifar-10-example:1)"));
    }
  }
  EXPECT_EQ(files, 9);
  for (const std::string& job : jobs) {
    Kt("job cancel " + job);
    WaitForEnd(job);
  }
}

}  // namespace
}  // namespace kubetrain
