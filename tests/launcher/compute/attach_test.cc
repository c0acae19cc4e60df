// Attaching compute targets: the local and Kubernetes targets an attach makes, and the merge rules
// on re-attach (curated instance types kept; a cluster's InstanceType resources replace them).
#include "kubetrain/launcher/compute/attach.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kubetrain::compute {
namespace {

using ::testing::HasSubstr;

v1::InstanceType Type(const std::string& name) {
  v1::InstanceType t;
  t.set_name(name);
  return t;
}

std::vector<std::string> TypeNames(const v1::ComputeTarget& target) {
  std::vector<std::string> out;
  for (const v1::InstanceType& t : target.instance_types()) out.push_back(t.name());
  return out;
}

v1::Node Node(const std::string& name) {
  v1::Node n;
  n.set_name(name);
  return n;
}

AttachOptions KubernetesOptions() {
  AttachOptions o;
  o.name = "aks";
  o.kubeconfig = "kube/config";
  o.context = "main";
  o.ns = "team-a";
  o.workspace_url = "grpc://ws:50051";
  o.worker_image = "kubetrain/worker:1";
  return o;
}

AttachOptions LocalOptions(const std::string& name, const std::string& nodes_file) {
  AttachOptions o;
  o.name = name;
  o.nodes_file = nodes_file;
  return o;
}

TEST(AttachTest, KubernetesTargetRecordsTheClusterAndItsNodes) {
  v1::ComputeTarget t = BuildKubernetesTarget(KubernetesOptions(), {Node("n1"), Node("n2")});
  EXPECT_EQ(t.name(), "aks");
  ASSERT_TRUE(t.has_kubernetes());
  EXPECT_EQ(t.kubernetes().kubeconfig_path(),
            (std::filesystem::current_path() / "kube/config").string());
  EXPECT_EQ(t.kubernetes().context(), "main");
  EXPECT_EQ(t.kubernetes().namespace_(), "team-a");
  EXPECT_EQ(t.kubernetes().workspace_url(), "grpc://ws:50051");
  EXPECT_EQ(t.kubernetes().worker_image(), "kubetrain/worker:1");
  ASSERT_EQ(t.nodes_size(), 2);
  EXPECT_EQ(t.nodes(1).name(), "n2");
  EXPECT_EQ(t.instance_types_size(), 0);
}

TEST(AttachTest, LocalTargetIsThisMachineOrTheNodesFile) {
  LocalAttach machine = BuildLocalTarget(LocalOptions("here", ""));
  ASSERT_FALSE(machine.diagnostics.has_errors()) << machine.diagnostics.Format();
  EXPECT_TRUE(machine.target.has_local());
  EXPECT_EQ(machine.target.name(), "here");
  EXPECT_EQ(machine.target.nodes_size(), 1);

  std::string dir = ::testing::TempDir() + "/attach-test-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/nodes.yml") << "nodes:\n"
                                       "  - {name: a, cpu: \"1\", memory: 1Gi}\n"
                                       "  - {name: b, cpu: \"1\", memory: 1Gi}\n";
  LocalAttach nodes = BuildLocalTarget(LocalOptions("v", dir + "/nodes.yml"));
  ASSERT_FALSE(nodes.diagnostics.has_errors()) << nodes.diagnostics.Format();
  ASSERT_EQ(nodes.target.nodes_size(), 2);
  EXPECT_EQ(nodes.target.nodes(0).name(), "a");

  std::ofstream(dir + "/bad.yml") << "nodes:\n  - {name: x, cpu: lots, memory: 1Gi}\n";
  LocalAttach bad = BuildLocalTarget(LocalOptions("v", dir + "/bad.yml"));
  EXPECT_TRUE(bad.diagnostics.has_errors());
  EXPECT_THAT(bad.diagnostics.Format(), HasSubstr("bad.yml:2:"));
  std::filesystem::remove_all(dir);
}

TEST(AttachTest, FirstAttachStoresTheTargetAsIs) {
  v1::ComputeTarget attached = BuildKubernetesTarget(KubernetesOptions(), {Node("n1")});
  AttachResult r = MergeAttachedTarget(std::nullopt, attached, std::nullopt);
  EXPECT_FALSE(r.existed);
  EXPECT_EQ(r.target.SerializeAsString(), attached.SerializeAsString());
  EXPECT_TRUE(r.target.kubernetes().instance_types_source().empty());
}

TEST(AttachTest, ReattachingKeepsTheCuratedInstanceTypes) {
  v1::ComputeTarget previous;
  previous.set_name("aks");
  *previous.add_instance_types() = Type("gpu-small");
  *previous.add_instance_types() = Type("cpu-large");
  *previous.add_nodes() = Node("old-node");
  v1::ComputeTarget attached = BuildKubernetesTarget(KubernetesOptions(), {Node("n1")});
  AttachResult r = MergeAttachedTarget(previous, attached, std::nullopt);
  EXPECT_TRUE(r.existed);
  EXPECT_THAT(TypeNames(r.target), ::testing::ElementsAre("gpu-small", "cpu-large"));
  // The nodes are the cluster's now, not the stored ones.
  ASSERT_EQ(r.target.nodes_size(), 1);
  EXPECT_EQ(r.target.nodes(0).name(), "n1");
  EXPECT_TRUE(r.target.kubernetes().instance_types_source().empty());

  // A stored target with neither nodes nor instance types does not count as attached.
  v1::ComputeTarget empty;
  empty.set_name("aks");
  EXPECT_FALSE(MergeAttachedTarget(empty, attached, std::nullopt).existed);
  // Nor does one under another name.
  previous.set_name("other");
  AttachResult elsewhere = MergeAttachedTarget(previous, attached, std::nullopt);
  EXPECT_FALSE(elsewhere.existed);
  EXPECT_EQ(elsewhere.target.instance_types_size(), 0);
}

TEST(AttachTest, ClusterInstanceTypesReplaceWhatWasThere) {
  v1::ComputeTarget previous;
  previous.set_name("aks");
  *previous.add_instance_types() = Type("curated");
  v1::ComputeTarget attached = BuildKubernetesTarget(KubernetesOptions(), {Node("n1")});
  AttachResult r = MergeAttachedTarget(previous, attached,
                                       std::vector<v1::InstanceType>{Type("a100"), Type("cpu")});
  EXPECT_TRUE(r.existed);
  EXPECT_THAT(TypeNames(r.target), ::testing::ElementsAre("a100", "cpu"));
  EXPECT_EQ(r.target.kubernetes().instance_types_source(), "cluster");

  // A cluster whose CRD is installed but holds no InstanceType: it still replaces them (with none).
  AttachResult none = MergeAttachedTarget(previous, attached, std::vector<v1::InstanceType>{});
  EXPECT_EQ(none.target.instance_types_size(), 0);
  EXPECT_EQ(none.target.kubernetes().instance_types_source(), "cluster");
}

}  // namespace
}  // namespace kubetrain::compute
