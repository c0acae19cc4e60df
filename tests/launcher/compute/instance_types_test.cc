#include "kubetrain/launcher/compute/instance_types.h"

#include <ostream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kubetrain::compute {
namespace {

using ::testing::HasSubstr;

TEST(InstanceTypesTest, ParsesAnInstanceType) {
  auto r = ParseInstanceTypesYaml(R"(apiVersion: amlarc.azureml.com/v1alpha1
kind: InstanceType
metadata: {name: gpu-small}
spec:
  nodeSelector: {accelerator: nvidia-h100}
  resources:
    requests: {cpu: "4", memory: 32Gi}
    limits:   {cpu: "8", memory: 64Gi, nvidia.com/gpu: 1}
)",
                                  "it.yml");
  ASSERT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  ASSERT_EQ(r.items.size(), 1u);
  const v1::InstanceType& t = r.items[0];
  EXPECT_EQ(t.name(), "gpu-small");
  EXPECT_EQ(t.node_selector().at("accelerator"), "nvidia-h100");
  EXPECT_EQ(t.requests().cpu().value(), 4000);
  EXPECT_EQ(t.requests().memory().value(), int64_t{32} << 30);
  EXPECT_EQ(t.limits().cpu().original(), "8");
  EXPECT_EQ(t.limits().gpu(), 1);
}

TEST(InstanceTypesTest, ParsesAListAndDefaultsRequestsToLimits) {
  auto r = ParseInstanceTypesYaml(R"(apiVersion: amlarc.azureml.com/v1alpha1
kind: InstanceTypeList
items:
  - metadata: {name: cpu-small}
    spec: {resources: {limits: {cpu: 500m, memory: 1Gi}}}
  - metadata: {name: cpu-large}
    spec: {resources: {limits: {cpu: 2, memory: 4Gi}}}
)",
                                  "list.yml");
  ASSERT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  ASSERT_EQ(r.items.size(), 2u);
  EXPECT_EQ(r.items[0].requests().cpu().value(), 500);
  EXPECT_EQ(r.items[1].requests().memory().value(), int64_t{4} << 30);
}

TEST(InstanceTypesTest, DefaultInstanceTypeIsAzureMls) {
  v1::InstanceType d = DefaultInstanceType();
  EXPECT_EQ(d.name(), "defaultinstancetype");
  EXPECT_EQ(d.requests().cpu().value(), 100);
  EXPECT_EQ(d.requests().memory().value(), int64_t{2} << 30);
  EXPECT_EQ(d.limits().cpu().value(), 2000);
  EXPECT_EQ(d.limits().gpu(), 0);
}

TEST(InstanceTypesTest, TargetDefinitionOverridesTheDefault) {
  v1::ComputeTarget target;
  target.set_name("local");
  EXPECT_EQ(FindInstanceType(target, "")->requests().cpu().value(), 100);
  v1::InstanceType mine = DefaultInstanceType();
  mine.mutable_requests()->mutable_cpu()->set_value(1000);
  ApplyInstanceTypes({mine}, target);
  EXPECT_EQ(FindInstanceType(target, "")->requests().cpu().value(), 1000);
  EXPECT_EQ(EffectiveInstanceTypes(target).size(), 1u);
}

TEST(InstanceTypesTest, UnknownNameSuggestsAndLists) {
  v1::ComputeTarget target;
  target.set_name("local");
  ApplyInstanceTypes(
      {ParseInstanceTypesYaml("apiVersion: amlarc.azureml.com/v1alpha1\nkind: InstanceType\n"
                              "metadata: {name: gpu-small}\nspec: {resources: {limits: {cpu: 1, "
                              "memory: 1Gi}}}\n",
                              "x.yml")
           .items[0]},
      target);
  auto t = FindInstanceType(target, "gpu-smal");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("did you mean `gpu-small`?"));
  EXPECT_THAT(t.status().message(), HasSubstr("available: gpu-small, defaultinstancetype"));
}

struct Malformed {
  const char* name;
  const char* yaml;
  const char* field;
  int line;
  const char* message;
};

void PrintTo(const Malformed& m, std::ostream* os) { *os << m.name; }

class MalformedInstanceTypeTest : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedInstanceTypeTest, ReportsFieldLineAndFix) {
  const Malformed& m = GetParam();
  auto r = ParseInstanceTypesYaml(m.yaml, "it.yml");
  ASSERT_TRUE(r.diagnostics.has_errors()) << m.name;
  bool found = false;
  for (const spec::Diagnostic& d : r.diagnostics.all()) {
    if (d.field == m.field && d.location.line == m.line &&
        (d.message + "; " + d.suggestion).find(m.message) != std::string::npos) {
      found = true;
    }
  }
  EXPECT_TRUE(found) << m.name << ": wanted " << m.field << " at line " << m.line << " with \""
                     << m.message << "\"; got:\n"
                     << r.diagnostics.Format();
}

#define HEAD "apiVersion: amlarc.azureml.com/v1alpha1\nkind: InstanceType\nmetadata: {name: t}\n"

INSTANTIATE_TEST_SUITE_P(
    Table, MalformedInstanceTypeTest,
    ::testing::Values(
        Malformed{"no_kind", "metadata: {name: t}\n", "kind", 1, "missing"},
        Malformed{"bad_kind", "apiVersion: amlarc.azureml.com/v1alpha1\nkind: InstanceTyp\n",
                  "kind", 2, "did you mean `InstanceType`?"},
        Malformed{"bad_api_version",
                  "apiVersion: v1\nkind: InstanceType\nmetadata: {name: t}\n"
                  "spec: {resources: {limits: {cpu: 1, memory: 1Gi}}}\n",
                  "apiVersion", 1, "amlarc.azureml.com/v1alpha1"},
        Malformed{"no_name",
                  "apiVersion: amlarc.azureml.com/v1alpha1\nkind: InstanceType\nmetadata: {}\n"
                  "spec: {resources: {limits: {cpu: 1, memory: 1Gi}}}\n",
                  "metadata.name", 3, "missing"},
        Malformed{"upper_case_name",
                  "apiVersion: amlarc.azureml.com/v1alpha1\nkind: InstanceType\n"
                  "metadata: {name: GPU_Big}\nspec: {resources: {limits: {cpu: 1, memory: 1Gi}}}\n",
                  "metadata.name", 3, "not a valid Kubernetes resource name"},
        Malformed{"no_limits", HEAD "spec:\n  resources:\n    requests: {cpu: 1, memory: 1Gi}\n",
                  "spec.resources.limits", 6, "missing"},
        Malformed{"no_cpu_limit", HEAD "spec:\n  resources:\n    limits: {memory: 1Gi}\n",
                  "spec.resources.limits.cpu", 6, "missing"},
        Malformed{"zero_memory",
                  HEAD "spec:\n  resources:\n    limits:\n      cpu: 1\n      memory: 0\n",
                  "spec.resources.limits.memory", 8, "greater than zero"},
        Malformed{"bad_quantity",
                  HEAD "spec:\n  resources:\n    limits:\n      cpu: 1\n      memory: 2GiB\n",
                  "spec.resources.limits.memory", 8, "did you mean \"2Gi\""},
        Malformed{"negative_cpu",
                  HEAD "spec:\n  resources:\n    limits:\n      cpu: -1\n      memory: 1Gi\n",
                  "spec.resources.limits.cpu", 7, "negative"},
        Malformed{"gpu_in_requests",
                  HEAD "spec:\n  resources:\n    requests:\n      nvidia.com/gpu: 1\n"
                       "    limits: {cpu: 1, memory: 1Gi}\n",
                  "spec.resources.requests.nvidia.com/gpu", 7, "only set under limits"},
        Malformed{"gpu_fraction",
                  HEAD "spec:\n  resources:\n    limits:\n      cpu: 1\n      memory: 1Gi\n"
                       "      nvidia.com/gpu: 0.5\n",
                  "spec.resources.limits.nvidia.com/gpu", 9, "expected an integer"},
        Malformed{"gpu_typo",
                  HEAD "spec:\n  resources:\n    limits:\n      cpu: 1\n      memory: 1Gi\n"
                       "      nvidia.com/gpus: 1\n",
                  "spec.resources.limits.nvidia.com/gpus", 9, "did you mean `nvidia.com/gpu`?"},
        Malformed{"request_over_limit",
                  HEAD "spec:\n  resources:\n    requests:\n      cpu: 4\n"
                       "    limits: {cpu: 2, memory: 1Gi}\n",
                  "spec.resources.requests.cpu", 7, "exceeds the limit"},
        Malformed{"node_selector_list",
                  HEAD
                  "spec:\n  nodeSelector: [gpu]\n  resources: {limits: {cpu: 1, memory: 1Gi}}\n",
                  "spec.nodeSelector", 5, "expected a mapping"},
        Malformed{"spec_typo", HEAD "spec:\n  resource: {limits: {cpu: 1, memory: 1Gi}}\n",
                  "spec.resource", 5, "did you mean `resources`?"},
        Malformed{"list_items_not_list",
                  "apiVersion: amlarc.azureml.com/v1alpha1\nkind: InstanceTypeList\nitems: {}\n",
                  "items", 3, "expected a list"},
        Malformed{"duplicate_in_list",
                  "kind: InstanceTypeList\nitems:\n"
                  "  - {metadata: {name: a}, spec: {resources: {limits: {cpu: 1, memory: 1Gi}}}}\n"
                  "  - {metadata: {name: a}, spec: {resources: {limits: {cpu: 1, memory: 1Gi}}}}\n",
                  "metadata.name", 4, "defined twice"}));

}  // namespace
}  // namespace kubetrain::compute
