#include "kubetrain/launcher/compute/nodes.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kubetrain::compute {
namespace {

using ::testing::HasSubstr;

TEST(NodesTest, ParsesVirtualNodes) {
  auto r = ParseNodesYaml(R"(nodes:
  - name: a
    labels: {pool: cpu}
    cpu: "1"
    memory: 2Gi
    cpu_ids: [0]
  - name: b
    cpu: 1500m
    memory: 1Gi
    gpus: [0, 1]
)",
                          "nodes.yml");
  ASSERT_FALSE(r.diagnostics.has_errors()) << r.diagnostics.Format();
  ASSERT_EQ(r.nodes.size(), 2u);
  EXPECT_EQ(r.nodes[0].labels().at("pool"), "cpu");
  EXPECT_EQ(r.nodes[0].cpu_millicores(), 1000);
  EXPECT_EQ(r.nodes[1].cpu_millicores(), 1500);
  EXPECT_EQ(r.nodes[1].gpu_ids_size(), 2);
  EXPECT_EQ(DescribeNode(r.nodes[1]), "cpu 1500m, memory 1Gi, gpus [0,1]");
}

TEST(NodesTest, RejectsSharedDevicesAndDuplicates) {
  auto r = ParseNodesYaml(R"(nodes:
  - {name: a, cpu: 1, memory: 1Gi, gpus: [0]}
  - {name: a, cpu: 1, memory: 1Gi, gpus: [0]}
  - {name: c, memory: 1Gi}
)",
                          "nodes.yml");
  std::string text = r.diagnostics.Format();
  EXPECT_THAT(text, HasSubstr("nodes.yml:3:"));
  EXPECT_THAT(text, HasSubstr("node \"a\" is listed twice"));
  EXPECT_THAT(text, HasSubstr("GPU 0 already belongs to node \"a\""));
  EXPECT_THAT(text, HasSubstr("nodes[2].cpu: missing"));
}

TEST(NodesTest, DetectsThisMachine) {
  v1::Node node = DetectLocalNode();
  EXPECT_FALSE(node.name().empty());
  EXPECT_GE(node.cpu_millicores(), 1000);
  EXPECT_GT(node.memory_bytes(), 0);
  EXPECT_EQ(DefaultLocalCompute().nodes_size(), 1);
}

}  // namespace
}  // namespace kubetrain::compute
