// Runs the real `kubetrain` binary on job, instance-type and node files: `job validate`,
// `instance-type apply|list|show`, `compute attach|list|show`, each on a fresh workspace.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/command.h"

namespace kubetrain {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using ::testing::HasSubstr;
using ::testing::Not;

class CliValidateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kt-cli-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
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

  fs::path dir_;
};

// The compat files of ../shared/compat/azureml-jobs: asset_cli_test.cc validates and creates each
// with only `--set compute=local`, after registering the data assets and environments they name.

TEST_F(CliValidateTest, ExampleComputeAndInstanceTypesApplyAndPlaceTheExampleJob) {
  const std::string examples = std::string(KUBETRAIN_SOURCE_DIR) + "/examples/";
  CommandResult r = Kt("compute attach slices --type local --nodes " + examples +
                       "instance-types/local-nodes.yml");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Kt("instance-type apply --compute slices -f " + examples +
         "instance-types/instance-types.yml");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* name : {"cpu-small", "cpu-large", "gpu-1", "gpu-8"}) {
    EXPECT_THAT(r.output, HasSubstr(std::string("instance type \"") + name + "\" created"));
  }
  r = Kt("job validate -f " + examples +
         "mpi/job.yml --set compute=slices --set "
         "resources.instance_type=cpu-small");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // gpu-1 needs nodes labelled accelerator=nvidia; the slices have none: it can never fit.
  r = Kt("job validate -f " + examples +
         "mpi/job.yml --set compute=slices --set "
         "resources.instance_type=gpu-1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("accelerator=nvidia"));
}

TEST_F(CliValidateTest, ThreeMistakesAreAllReportedWithLineFieldAndFix) {
  std::string job = Write("job.yml", R"(command: python train.py --lr ${{inputs.lr}}
inputs:
  learning_rate: 0.1
resources:
  instance_cout: 2
distribution:
  type: pytorh
)");
  CommandResult r = Kt("job validate -f " + job);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output,
              HasSubstr(job + ":1:31: error: command: ${{inputs.lr}} refers to an input "
                              "the job does not declare; expected one of `learning_rate`"));
  EXPECT_THAT(r.output, HasSubstr(job + ":5:3: error: resources.instance_cout: unknown key; did "
                                        "you mean `instance_count`?"));
  EXPECT_THAT(r.output, HasSubstr(job + ":7:9: error: distribution.type: unknown type \"pytorh\"; "
                                        "did you mean `pytorch`?"));
  EXPECT_THAT(r.output, HasSubstr("3 errors"));
}

TEST_F(CliValidateTest, PrintsJsonAndYaml) {
  std::string job = Write("job.yml", "command: echo hi\nresources: {instance_count: 2}\n");
  CommandResult json = Kt("job validate -f " + job + " -o json");
  ASSERT_EQ(json.exit_code, 0) << json.output;
  EXPECT_THAT(json.output, HasSubstr("\"instance_count\": 2"));
  EXPECT_THAT(json.output, HasSubstr("\"name\": \"defaultinstancetype\""));
  CommandResult yaml = Kt("job validate -f " + job + " -o yaml");
  ASSERT_EQ(yaml.exit_code, 0) << yaml.output;
  EXPECT_THAT(yaml.output, HasSubstr("instance_count: 2"));
}

TEST_F(CliValidateTest, UnknownComputeAndInstanceTypeSuggestFixes) {
  std::string job = Write("job.yml", "command: x\ncompute: azureml:gpu-cluster\n");
  CommandResult r = Kt("job validate -f " + job);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output,
              HasSubstr(":2:10: error: compute: no compute target named \"gpu-cluster\""));
  EXPECT_THAT(r.output, HasSubstr("--set compute=local"));

  job = Write("job2.yml", "command: x\nresources:\n  instance_type: gpu-smal\n");
  Write("it.yml", R"(apiVersion: amlarc.azureml.com/v1alpha1
kind: InstanceType
metadata: {name: gpu-small}
spec: {resources: {limits: {cpu: "1", memory: 1Gi}}}
)");
  ASSERT_EQ(Kt("instance-type apply -f " + (dir_ / "it.yml").string()).exit_code, 0);
  r = Kt("job validate -f " + job);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr(":3:18: error: resources.instance_type: compute \"local\" has no "
                                  "instance type \"gpu-smal\"; did you mean `gpu-small`?"));
}

TEST_F(CliValidateTest, InstanceTypesApplyListShow) {
  std::string file = Write("types.yml", R"(apiVersion: amlarc.azureml.com/v1alpha1
kind: InstanceTypeList
items:
  - metadata: {name: cpu-small}
    spec:
      resources:
        requests: {cpu: 500m, memory: 1Gi}
        limits: {cpu: "1", memory: 2Gi}
  - metadata: {name: gpu-1}
    spec:
      nodeSelector: {accelerator: nvidia}
      resources:
        limits: {cpu: "2", memory: 8Gi, nvidia.com/gpu: 1}
)");
  CommandResult r = Kt("instance-type apply -f " + file);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("instance type \"cpu-small\" created on compute \"local\""));
  r = Kt("instance-type apply -f " + file);
  EXPECT_THAT(r.output, HasSubstr("instance type \"gpu-1\" updated"));
  r = Kt("instance-type list");
  EXPECT_THAT(r.output, HasSubstr("cpu-small"));
  EXPECT_THAT(r.output, HasSubstr("accelerator=nvidia"));
  EXPECT_THAT(r.output, HasSubstr("defaultinstancetype"));
  r = Kt("instance-type show gpu-1");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("nvidia.com/gpu 1"));
  EXPECT_THAT(r.output, HasSubstr("types.yml:9"));
}

TEST_F(CliValidateTest, BadInstanceTypeFileAppliesNothing) {
  std::string file = Write("bad.yml", R"(apiVersion: amlarc.azureml.com/v1alpha1
kind: InstanceTypeList
items:
  - metadata: {name: fine}
    spec: {resources: {limits: {cpu: "1", memory: 1Gi}}}
  - metadata: {name: broken}
    spec: {resources: {limits: {cpu: "1", memory: 2GiB}}}
)");
  CommandResult r = Kt("instance-type apply -f " + file);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("bad.yml:7:"));
  EXPECT_THAT(r.output, HasSubstr("did you mean \"2Gi\""));
  EXPECT_THAT(r.output, HasSubstr("nothing was applied"));
  EXPECT_THAT(Kt("instance-type list").output, Not(HasSubstr("fine")));
}

TEST_F(CliValidateTest, ComputeAttachLocalWithVirtualNodesAndKubernetes) {
  std::string nodes = Write("nodes.yml", R"(nodes:
  - {name: node-a, labels: {pool: a}, cpu: "1", memory: 2Gi, cpu_ids: [0]}
  - {name: node-b, labels: {pool: b}, cpu: "1", memory: 2Gi, cpu_ids: [1]}
)");
  CommandResult r = Kt("compute attach vnodes --type local --nodes " + nodes);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("compute \"vnodes\" attached (local, 2 nodes)"));
  r = Kt("compute show vnodes");
  EXPECT_THAT(r.output, HasSubstr("node-a"));
  EXPECT_THAT(r.output, HasSubstr("pool=b"));

  std::string kubeconfig = Write("kubeconfig", R"(apiVersion: v1
kind: Config
current-context: aks
contexts:
  - name: aks
    context: {cluster: aks, user: me}
clusters:
  - name: aks
    cluster: {server: "https://127.0.0.1:6443"}
users:
  - name: me
    user: {token: abc}
)");
  // Attaching checks the cluster (tests/launcher/kubernetes has a test API server for that);
  // nothing listens at this one's address.
  r = Kt("compute attach gpu-cluster --type kubernetes --kubeconfig " + kubeconfig +
         " --namespace ml");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("cannot reach the cluster of context \"aks\""));
  r = Kt("compute attach other --type kubernetes --kubeconfig " + kubeconfig +
         " --context nope --namespace ml");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("has no context \"nope\" (it has: aks)"));
  r = Kt("compute list");
  EXPECT_THAT(r.output, Not(HasSubstr("gpu-cluster")));
  EXPECT_THAT(r.output, HasSubstr("vnodes"));
  EXPECT_THAT(r.output, HasSubstr("local"));

  std::string bad = Write("bad-nodes.yml", "nodes:\n  - {name: x, cpu: lots, memory: 1Gi}\n");
  r = Kt("compute attach broken --type local --nodes " + bad);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("bad-nodes.yml:2:"));
  EXPECT_THAT(Kt("compute list").output, Not(HasSubstr("broken")));
}

}  // namespace
}  // namespace kubetrain
