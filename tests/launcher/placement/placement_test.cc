// Table-style tests of gang placement (launcher/placement/placement.h).
#include "kubetrain/launcher/placement/placement.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kubetrain::placement {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int64_t kGi = int64_t{1} << 30;

v1::Node MakeNode(const std::string& name, int64_t cpus, int64_t memory_gi,
                  const std::vector<int32_t>& gpus = {},
                  const std::map<std::string, std::string>& labels = {},
                  const std::vector<int32_t>& cpu_ids = {}) {
  v1::Node n;
  n.set_name(name);
  n.set_cpu_millicores(cpus * 1000);
  n.set_memory_bytes(memory_gi * kGi);
  for (int32_t g : gpus) n.add_gpu_ids(g);
  for (int32_t c : cpu_ids) n.add_cpu_ids(c);
  for (const auto& [k, v] : labels) (*n.mutable_labels())[k] = v;
  return n;
}

v1::ComputeTarget Target(const std::vector<v1::Node>& nodes, bool local = false) {
  v1::ComputeTarget t;
  t.set_name("cluster");
  if (local) {
    t.mutable_local();
  } else {
    t.mutable_kubernetes()->set_namespace_("ml");
  }
  for (const auto& n : nodes) *t.add_nodes() = n;
  return t;
}

// cpu in millicores, memory in Gi; gpus under limits.
v1::InstanceType Type(const std::string& name, int64_t cpu_milli, int64_t memory_gi, int gpus = 0,
                      const std::map<std::string, std::string>& selector = {}) {
  v1::InstanceType t;
  t.set_name(name);
  t.mutable_requests()->mutable_cpu()->set_value(cpu_milli);
  t.mutable_requests()->mutable_memory()->set_value(memory_gi * kGi);
  t.mutable_limits()->mutable_cpu()->set_value(cpu_milli * 2);
  t.mutable_limits()->mutable_memory()->set_value(memory_gi * 2 * kGi);
  t.mutable_limits()->set_gpu(gpus);
  for (const auto& [k, v] : selector) (*t.mutable_node_selector())[k] = v;
  return t;
}

v1::Placement Held(const std::string& node, int64_t cpu_milli, int64_t memory_gi,
                   const std::vector<int32_t>& gpus = {}, const std::vector<int32_t>& cpu_ids = {},
                   const std::string& compute = "cluster") {
  v1::Placement p;
  p.set_compute(compute);
  auto* i = p.add_instances();
  i->set_node(node);
  i->set_cpu_millicores(cpu_milli);
  i->set_memory_bytes(memory_gi * kGi);
  for (int32_t g : gpus) i->add_gpu_ids(g);
  for (int32_t c : cpu_ids) i->add_cpu_ids(c);
  return p;
}

std::vector<std::string> Nodes(const v1::Placement& p) {
  std::vector<std::string> out;
  for (const auto& i : p.instances()) out.push_back(i.node());
  return out;
}

std::vector<int32_t> Gpus(const v1::InstancePlacement& i) {
  return {i.gpu_ids().begin(), i.gpu_ids().end()};
}

TEST(EffectiveRequestTest, RequestsWinAndFallBackToLimits) {
  v1::InstanceType t = Type("t", 4000, 8, 1);
  ResourceRequest r = EffectiveRequest(t);
  EXPECT_EQ(r.cpu_millicores, 4000);
  EXPECT_EQ(r.memory_bytes, 8 * kGi);
  EXPECT_EQ(r.gpus, 1);
  EXPECT_EQ(FormatRequest(r), "cpu 4, memory 8Gi, gpu 1");

  t.mutable_requests()->clear_cpu();
  t.mutable_requests()->clear_memory();
  r = EffectiveRequest(t);
  EXPECT_EQ(r.cpu_millicores, 8000);
  EXPECT_EQ(r.memory_bytes, 16 * kGi);
  EXPECT_EQ(FormatRequest({500, kGi / 2, 0}), "cpu 500m, memory 512Mi");
}

TEST(FreeCapacityTest, SubtractsHeldPlacementsByNode) {
  std::vector<v1::Node> nodes = {MakeNode("a", 8, 32, {0, 1, 2, 3}, {}, {0, 1, 2, 3, 4, 5, 6, 7}),
                                 MakeNode("b", 4, 16)};
  std::vector<v1::Placement> held = {Held("a", 2000, 4, {1, 3}, {0, 1}), Held("a", 500, 1, {}, {}),
                                     Held("gone", 1000, 1, {0})};
  auto free = FreeCapacity(nodes, held);
  ASSERT_EQ(free.size(), 2u);
  EXPECT_EQ(free[0].node, "a");
  EXPECT_EQ(free[0].cpu_millicores, 5500);
  EXPECT_EQ(free[0].memory_bytes, 27 * kGi);
  EXPECT_THAT(free[0].gpu_ids, ElementsAre(0, 2));
  EXPECT_THAT(free[0].cpu_ids, ElementsAre(2, 3, 4, 5, 6, 7));
  EXPECT_EQ(free[1].cpu_millicores, 4000);
  EXPECT_THAT(free[1].gpu_ids, IsEmpty());
}

TEST(PlaceGangTest, FitsOnOneNode) {
  auto target = Target({MakeNode("a", 16, 64, {0, 1, 2, 3}), MakeNode("b", 16, 64, {0, 1, 2, 3})});
  auto p = PlaceGang(target, Type("gpu-small", 4000, 8, 1), 2, {});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->compute(), "cluster");
  EXPECT_EQ(p->instance_type(), "gpu-small");
  ASSERT_EQ(p->instances_size(), 2);
  EXPECT_THAT(Nodes(*p), ElementsAre("a", "a"));
  EXPECT_EQ(p->instances(0).instance_index(), 0);
  EXPECT_EQ(p->instances(1).instance_index(), 1);
  EXPECT_THAT(Gpus(p->instances(0)), ElementsAre(0));
  EXPECT_THAT(Gpus(p->instances(1)), ElementsAre(1));
  EXPECT_EQ(p->instances(0).cpu_millicores(), 4000);
  EXPECT_EQ(p->instances(0).memory_bytes(), 8 * kGi);
  EXPECT_THAT(p->instances(0).cpu_ids(), IsEmpty());  // not a local target
}

TEST(PlaceGangTest, SpreadsWhenOneNodeIsNotEnough) {
  auto target = Target(
      {MakeNode("a", 8, 32, {0, 1}), MakeNode("b", 8, 32, {0, 1}), MakeNode("c", 8, 32, {0, 1})});
  auto p = PlaceGang(target, Type("g2", 4000, 8, 2), 3, {});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(Nodes(*p), ElementsAre("a", "b", "c"));
  for (const auto& i : p->instances()) EXPECT_THAT(Gpus(i), ElementsAre(0, 1));
}

TEST(PlaceGangTest, InstancesOnOneNodeGetConsecutiveIndices) {
  // Best-fit puts the first instance on the tighter node b, which holds two.
  auto target = Target({MakeNode("a", 16, 64), MakeNode("b", 8, 64)});
  auto p = PlaceGang(target, Type("cpu4", 4000, 8), 3, {});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(Nodes(*p), ElementsAre("b", "b", "a"));
}

TEST(PlaceGangTest, IsDeterministic) {
  auto target = Target({MakeNode("a", 8, 32, {0, 1, 2, 3}), MakeNode("b", 8, 32, {0, 1, 2, 3})});
  auto first = PlaceGang(target, Type("g1", 1000, 2, 1), 5, {});
  ASSERT_TRUE(first.ok());
  for (int i = 0; i < 5; ++i) {
    auto again = PlaceGang(target, Type("g1", 1000, 2, 1), 5, {});
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->SerializeAsString(), first->SerializeAsString());
  }
}

TEST(PlaceGangTest, AllOrNothingNoPartialGang) {
  auto target = Target({MakeNode("a", 8, 32, {0, 1}), MakeNode("b", 8, 32, {0, 1})});
  // Empty, two nodes hold 2 × 2-GPU instances; with b's GPUs held only one fits now.
  std::vector<v1::Placement> held = {Held("b", 1000, 1, {0})};
  auto p = PlaceGang(target, Type("g2", 2000, 4, 2), 2, held);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(p.status().message(),
              HasSubstr("needs 2 × (cpu 2, memory 4Gi, gpu 2) of instance type \"g2\""));
  EXPECT_THAT(p.status().message(), HasSubstr("free now: a cpu 8, memory 32Gi, gpu 2 (fits 1); "
                                              "b cpu 7, memory 31Gi, gpu 1 (fits 0)"));
  // One instance alone does fit.
  EXPECT_TRUE(PlaceGang(target, Type("g2", 2000, 4, 2), 1, held).ok());
}

TEST(PlaceGangTest, HeldPlacementsReduceCapacity) {
  auto target = Target({MakeNode("a", 8, 32), MakeNode("b", 8, 32)});
  auto type = Type("cpu6", 6000, 8);
  EXPECT_TRUE(PlaceGang(target, type, 2, {}).ok());
  std::vector<v1::Placement> held = {Held("a", 3000, 1)};
  auto p = PlaceGang(target, type, 2, held);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnavailable);
  auto one = PlaceGang(target, type, 1, held);
  ASSERT_TRUE(one.ok());
  EXPECT_THAT(Nodes(*one), ElementsAre("b"));
  // Memory is held too.
  held = {Held("a", 0, 30), Held("b", 0, 30)};
  EXPECT_EQ(PlaceGang(target, type, 1, held).status().code(), absl::StatusCode::kUnavailable);
}

TEST(PlaceGangTest, HeldPlacementsOnOtherTargetsAreIgnored) {
  auto target = Target({MakeNode("a", 8, 32, {0})});
  std::vector<v1::Placement> held = {Held("a", 8000, 32, {0}, {}, "other-cluster")};
  EXPECT_TRUE(PlaceGang(target, Type("g1", 8000, 32, 1), 1, held).ok());
  held[0].set_compute("");  // no compute: counts as this target
  EXPECT_EQ(PlaceGang(target, Type("g1", 8000, 32, 1), 1, held).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(PlaceGangTest, NeverFitsNamesTypeRequestAndLargestNode) {
  auto target = Target(
      {MakeNode("small", 4, 16, {0}), MakeNode("big", 8, 64, {0, 1}), MakeNode("mid", 8, 32, {0})});
  auto p = PlaceGang(target, Type("gpu-huge", 4000, 8, 4), 1, {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(p.status().message(),
            "instance type \"gpu-huge\" can never fit on compute \"cluster\": each instance "
            "requests cpu 4, memory 8Gi, gpu 4, but the largest matching node, big, has cpu 8, "
            "memory 64Gi, gpu 2 allocatable (too little gpu); choose a smaller instance type or "
            "add a larger node");

  auto cpu = PlaceGang(target, Type("cpu-huge", 16000, 128), 1, {});
  ASSERT_FALSE(cpu.ok());
  EXPECT_EQ(cpu.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(cpu.status().message(), HasSubstr("instance type \"cpu-huge\""));
  EXPECT_THAT(cpu.status().message(), HasSubstr("requests cpu 16, memory 128Gi,"));
  EXPECT_THAT(cpu.status().message(), HasSubstr("largest matching node, big, has cpu 8"));
  EXPECT_THAT(cpu.status().message(), HasSubstr("too little cpu, memory"));

  // Never-fits wins over "does not fit now", whatever is held.
  std::vector<v1::Placement> held = {Held("big", 8000, 64, {0, 1})};
  EXPECT_EQ(PlaceGang(target, Type("gpu-huge", 4000, 8, 4), 1, held).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(PlaceGangTest, NeverFitsWhenNodesTogetherAreTooSmall) {
  auto target = Target({MakeNode("a", 8, 32, {0, 1}), MakeNode("b", 8, 32, {0, 1})});
  auto p = PlaceGang(target, Type("g2", 2000, 4, 2), 3, {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(p.status().message(),
              HasSubstr("needs 3 × (cpu 2, memory 4Gi, gpu 2) of instance type \"g2\""));
  EXPECT_THAT(p.status().message(),
              HasSubstr("the 2 matching nodes together hold at most 2 such instances even when "
                        "empty (a 1, b 1)"));
}

TEST(PlaceGangTest, NodeSelectorMustMatchAllKeys) {
  auto target = Target(
      {MakeNode("cpu-node", 32, 128, {}, {{"pool", "cpu"}}),
       MakeNode("h100", 32, 128, {0, 1}, {{"accelerator", "nvidia-h100"}}),
       MakeNode("h100-spot", 32, 128, {0, 1}, {{"accelerator", "nvidia-h100"}, {"spot", "true"}})});
  auto p = PlaceGang(
      target, Type("h100-spot", 1000, 1, 1, {{"accelerator", "nvidia-h100"}, {"spot", "true"}}), 2,
      {});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(Nodes(*p), ElementsAre("h100-spot", "h100-spot"));

  auto any_h100 =
      PlaceGang(target, Type("h100", 1000, 1, 1, {{"accelerator", "nvidia-h100"}}), 3, {});
  ASSERT_TRUE(any_h100.ok());
  EXPECT_THAT(Nodes(*any_h100), ElementsAre("h100", "h100", "h100-spot"));
}

TEST(PlaceGangTest, NodeSelectorMismatchMessage) {
  auto target = Target({MakeNode("n1", 8, 32, {}, {{"pool", "cpu"}}),
                        MakeNode("n2", 8, 32, {0}, {{"accelerator", "nvidia-a100"}})});
  auto p = PlaceGang(target,
                     Type("gpu-small", 1000, 1, 1, {{"accelerator", "nvidia-h100"}, {"zone", "1"}}),
                     1, {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(p.status().message(),
            "instance type \"gpu-small\" can never fit on compute \"cluster\": no node matches "
            "nodeSelector {accelerator=nvidia-h100,zone=1}; nodes: n1 {pool=cpu}, "
            "n2 {accelerator=nvidia-a100}");

  auto empty = PlaceGang(Target({}), Type("t", 1000, 1), 1, {});
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(), HasSubstr("no node matches nodeSelector {}"));
  EXPECT_THAT(empty.status().message(), HasSubstr("the compute has no nodes"));
}

TEST(PlaceGangTest, GpuFragmentationChoosesTheNodeItFitsOn) {
  // Three 8-GPU nodes with GPUs held in different patterns: a and c have 5 free, b only 3.
  auto target = Target({MakeNode("a", 64, 512, {0, 1, 2, 3, 4, 5, 6, 7}),
                        MakeNode("b", 64, 512, {0, 1, 2, 3, 4, 5, 6, 7}),
                        MakeNode("c", 64, 512, {0, 1, 2, 3, 4, 5, 6, 7})});
  std::vector<v1::Placement> held = {Held("a", 1000, 1, {0, 2, 4}), Held("b", 1000, 1, {1, 3, 5}),
                                     Held("c", 1000, 1, {5, 6, 7}), Held("b", 1000, 1, {0, 7})};
  // A 4-GPU instance cannot use b (free 2, 4, 6); a and c both leave 1 GPU and the same cpu, so
  // the node order decides: a, with its lowest free ids.
  auto p = PlaceGang(target, Type("g4", 4000, 16, 4), 1, held);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(Nodes(*p), ElementsAre("a"));
  EXPECT_THAT(Gpus(p->instances(0)), ElementsAre(1, 3, 5, 6));

  // A 3-GPU instance best-fits on b, which it fills exactly, leaving a and c whole for 4-GPU jobs.
  auto three = PlaceGang(target, Type("g3", 4000, 16, 3), 1, held);
  ASSERT_TRUE(three.ok());
  EXPECT_THAT(Nodes(*three), ElementsAre("b"));
  EXPECT_THAT(Gpus(three->instances(0)), ElementsAre(2, 4, 6));

  EXPECT_EQ(PlaceGang(target, Type("g6", 4000, 16, 6), 1, held).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(PlaceGangTest, GpuFragmentationOnlyOneOfTwoFits) {
  // One 8-GPU node with 1 GPU held: two 4-GPU instances need 8, only 7 are free.
  auto target = Target({MakeNode("dgx", 128, 1024, {0, 1, 2, 3, 4, 5, 6, 7})});
  std::vector<v1::Placement> held = {Held("dgx", 1000, 1, {3})};
  auto p = PlaceGang(target, Type("g4", 8000, 64, 4), 2, held);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(p.status().message(), HasSubstr("needs 2 × (cpu 8, memory 64Gi, gpu 4)"));
  EXPECT_THAT(p.status().message(), HasSubstr("dgx cpu 127, memory 1023Gi, gpu 7 (fits 1)"));

  auto one = PlaceGang(target, Type("g4", 8000, 64, 4), 1, held);
  ASSERT_TRUE(one.ok());
  EXPECT_THAT(Gpus(one->instances(0)), ElementsAre(0, 1, 2, 4));

  // With nothing held both fit, on distinct GPUs.
  auto two = PlaceGang(target, Type("g4", 8000, 64, 4), 2, {});
  ASSERT_TRUE(two.ok());
  EXPECT_THAT(Gpus(two->instances(0)), ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(Gpus(two->instances(1)), ElementsAre(4, 5, 6, 7));
}

TEST(PlaceGangTest, CpuOnlyInstancesPreferNodesWithoutGpus) {
  auto target = Target({MakeNode("gpu", 32, 128, {0, 1, 2, 3}), MakeNode("cpu", 32, 128)});
  auto p = PlaceGang(target, Type("cpu4", 4000, 8), 1, {});
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(Nodes(*p), ElementsAre("cpu"));
  EXPECT_THAT(Gpus(p->instances(0)), IsEmpty());
}

TEST(PlaceGangTest, RequestsFallBackToLimits) {
  auto target = Target({MakeNode("a", 8, 32), MakeNode("b", 8, 32)});
  v1::InstanceType type = Type("limits-only", 0, 0);
  type.clear_requests();
  type.mutable_limits()->mutable_cpu()->set_value(6000);
  type.mutable_limits()->mutable_memory()->set_value(8 * kGi);
  // With the 6-cpu limit as the request, two instances cannot share a node.
  auto p = PlaceGang(target, type, 2, {});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(Nodes(*p), ElementsAre("a", "b"));
  EXPECT_EQ(p->instances(0).cpu_millicores(), 6000);
  EXPECT_EQ(PlaceGang(target, type, 3, {}).status().code(), absl::StatusCode::kFailedPrecondition);

  // With a smaller request present, requests win: four fit on one node.
  type.mutable_requests()->mutable_cpu()->set_value(2000);
  type.mutable_requests()->mutable_cpu()->set_original("2");
  type.mutable_requests()->mutable_memory()->set_value(kGi);
  type.mutable_requests()->mutable_memory()->set_original("1Gi");
  auto packed = PlaceGang(target, type, 4, {});
  ASSERT_TRUE(packed.ok());
  EXPECT_THAT(Nodes(*packed), ElementsAre("a", "a", "a", "a"));
}

TEST(PlaceGangTest, LocalNodesAssignCpuAffinity) {
  auto target = Target({MakeNode("host", 8, 32, {}, {}, {0, 1, 2, 3, 4, 5, 6, 7})}, /*local=*/true);
  std::vector<v1::Placement> held = {Held("host", 2000, 1, {}, {0, 1})};
  // 1500m rounds up to 2 cpus per instance.
  auto p = PlaceGang(target, Type("cpu1.5", 1500, 2), 3, held);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->instances_size(), 3);
  EXPECT_THAT(p->instances(0).cpu_ids(), ElementsAre(2, 3));
  EXPECT_THAT(p->instances(1).cpu_ids(), ElementsAre(4, 5));
  EXPECT_THAT(p->instances(2).cpu_ids(), ElementsAre(6, 7));

  // Not enough free cpu ids for affinity (cpu is fractional-packed): left empty, still placed.
  auto four = PlaceGang(target, Type("cpu1.5", 1500, 2), 4, held);
  ASSERT_TRUE(four.ok()) << four.status();
  EXPECT_THAT(four->instances(3).cpu_ids(), IsEmpty());

  // A node without cpu_ids gets no affinity.
  auto plain = PlaceGang(Target({MakeNode("host", 8, 32)}, true), Type("c1", 1000, 1), 1, {});
  ASSERT_TRUE(plain.ok());
  EXPECT_THAT(plain->instances(0).cpu_ids(), IsEmpty());
}

TEST(PlaceGangTest, RejectsNonPositiveCount) {
  auto target = Target({MakeNode("a", 8, 32)});
  EXPECT_EQ(PlaceGang(target, Type("t", 1000, 1), 0, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kubetrain::placement
