#include "kubetrain/launcher/placement/placement.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kubetrain/common/quantity.h"

namespace kubetrain::placement {
namespace {

// How many nodes an error message lists before "and N more".
constexpr size_t kMaxNodesInMessage = 8;

bool Given(const v1::Quantity& q) { return q.value() != 0 || !q.original().empty(); }

// How many instances of `request` fit into the given free resources (capped at `cap`).
int FitCount(const ResourceRequest& request, int64_t cpu, int64_t memory, int64_t gpus, int cap) {
  int64_t n = cap;
  auto limit = [&n](int64_t free, int64_t need) {
    if (need <= 0) return;
    n = std::min<int64_t>(n, free <= 0 ? 0 : free / need);
  };
  limit(cpu, request.cpu_millicores);
  limit(memory, request.memory_bytes);
  limit(gpus, request.gpus);
  return static_cast<int>(std::max<int64_t>(n, 0));
}

std::string FormatSelector(const v1::InstanceType& type) {
  std::map<std::string, std::string> sorted(type.node_selector().begin(),
                                            type.node_selector().end());
  return absl::StrCat("{", absl::StrJoin(sorted, ",", absl::PairFormatter("=")), "}");
}

std::string FormatLabels(const v1::Node& node) {
  std::map<std::string, std::string> sorted(node.labels().begin(), node.labels().end());
  return absl::StrCat("{", absl::StrJoin(sorted, ",", absl::PairFormatter("=")), "}");
}

std::string FormatCapacity(int64_t cpu, int64_t memory, int64_t gpus) {
  return absl::StrCat("cpu ", common::FormatMillicores(std::max<int64_t>(cpu, 0)), ", memory ",
                      common::FormatBytes(std::max<int64_t>(memory, 0)), ", gpu ", gpus);
}

std::string TypeName(const v1::InstanceType& type) {
  return absl::StrCat("instance type \"", type.name(), "\"");
}

std::string MoreNodes(size_t total) {
  return total > kMaxNodesInMessage ? absl::StrCat("; and ", total - kMaxNodesInMessage, " more")
                                    : "";
}

}  // namespace

ResourceRequest EffectiveRequest(const v1::InstanceType& type) {
  ResourceRequest r;
  r.cpu_millicores =
      Given(type.requests().cpu()) ? type.requests().cpu().value() : type.limits().cpu().value();
  r.memory_bytes = Given(type.requests().memory()) ? type.requests().memory().value()
                                                   : type.limits().memory().value();
  r.gpus = type.limits().gpu() > 0 ? type.limits().gpu() : type.requests().gpu();
  return r;
}

std::string FormatRequest(const ResourceRequest& request) {
  std::string out = absl::StrCat("cpu ", common::FormatMillicores(request.cpu_millicores),
                                 ", memory ", common::FormatBytes(request.memory_bytes));
  if (request.gpus > 0) absl::StrAppend(&out, ", gpu ", request.gpus);
  return out;
}

bool MatchesNodeSelector(const v1::InstanceType& type, const v1::Node& node) {
  for (const auto& [key, value] : type.node_selector()) {
    auto it = node.labels().find(key);
    if (it == node.labels().end() || it->second != value) return false;
  }
  return true;
}

std::vector<NodeCapacity> FreeCapacity(const std::vector<v1::Node>& nodes,
                                       const std::vector<v1::Placement>& held) {
  std::vector<NodeCapacity> out;
  out.reserve(nodes.size());
  std::map<std::string, size_t> index;
  std::vector<std::set<int32_t>> held_gpus(nodes.size()), held_cpus(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    NodeCapacity c;
    c.node = nodes[i].name();
    c.cpu_millicores = nodes[i].cpu_millicores();
    c.memory_bytes = nodes[i].memory_bytes();
    out.push_back(std::move(c));
    index.emplace(nodes[i].name(), i);  // the first node of a name wins
  }
  for (const v1::Placement& placement : held) {
    for (const v1::InstancePlacement& instance : placement.instances()) {
      auto it = index.find(instance.node());
      if (it == index.end()) continue;
      NodeCapacity& c = out[it->second];
      c.cpu_millicores -= instance.cpu_millicores();
      c.memory_bytes -= instance.memory_bytes();
      held_gpus[it->second].insert(instance.gpu_ids().begin(), instance.gpu_ids().end());
      held_cpus[it->second].insert(instance.cpu_ids().begin(), instance.cpu_ids().end());
    }
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::set<int32_t> gpus(nodes[i].gpu_ids().begin(), nodes[i].gpu_ids().end());
    for (int32_t id : gpus) {
      if (!held_gpus[i].count(id)) out[i].gpu_ids.push_back(id);
    }
    std::set<int32_t> cpus(nodes[i].cpu_ids().begin(), nodes[i].cpu_ids().end());
    for (int32_t id : cpus) {
      if (!held_cpus[i].count(id)) out[i].cpu_ids.push_back(id);
    }
  }
  return out;
}

absl::StatusOr<v1::Placement> PlaceGang(const v1::ComputeTarget& target,
                                        const v1::InstanceType& type, int count,
                                        const std::vector<v1::Placement>& held) {
  if (count < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot place ", count, " instances of ", TypeName(type), "; instance_count must be >= 1"));
  }
  const ResourceRequest request = EffectiveRequest(type);
  const std::string needs =
      absl::StrCat(count, " × (", FormatRequest(request), ") of ", TypeName(type));

  // Matching nodes, in the target's order.
  std::vector<v1::Node> nodes;
  for (const v1::Node& node : target.nodes()) {
    if (MatchesNodeSelector(type, node)) nodes.push_back(node);
  }
  if (nodes.empty()) {
    std::string msg = absl::StrCat(TypeName(type), " can never fit on compute \"", target.name(),
                                   "\": no node matches nodeSelector ", FormatSelector(type));
    if (target.nodes_size() == 0) {
      absl::StrAppend(&msg, " (the compute has no nodes)");
    } else {
      std::vector<std::string> listed;
      for (int i = 0; i < target.nodes_size() && listed.size() < kMaxNodesInMessage; ++i) {
        listed.push_back(absl::StrCat(target.nodes(i).name(), " ", FormatLabels(target.nodes(i))));
      }
      absl::StrAppend(&msg, "; nodes: ", absl::StrJoin(listed, ", "),
                      MoreNodes(target.nodes_size()));
    }
    return absl::FailedPreconditionError(msg);
  }

  // Can it ever fit? Each node on its own, empty.
  std::vector<int> empty_fits(nodes.size());
  int empty_total = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    empty_fits[i] = FitCount(request, nodes[i].cpu_millicores(), nodes[i].memory_bytes(),
                             nodes[i].gpu_ids_size(), count);
    empty_total = std::min(count, empty_total + empty_fits[i]);
  }
  if (*std::max_element(empty_fits.begin(), empty_fits.end()) == 0) {
    // The largest matching node: by gpus first when GPUs are requested, else by cpu.
    auto key = [&](const v1::Node& n) {
      return request.gpus > 0 ? std::make_tuple<int64_t, int64_t, int64_t>(
                                    n.gpu_ids_size(), n.cpu_millicores(), n.memory_bytes())
                              : std::make_tuple<int64_t, int64_t, int64_t>(
                                    n.cpu_millicores(), n.memory_bytes(), n.gpu_ids_size());
    };
    size_t largest = 0;
    for (size_t i = 1; i < nodes.size(); ++i) {
      if (key(nodes[i]) > key(nodes[largest])) largest = i;
    }
    const v1::Node& big = nodes[largest];
    std::vector<std::string> short_of;
    if (request.cpu_millicores > big.cpu_millicores()) short_of.push_back("cpu");
    if (request.memory_bytes > big.memory_bytes()) short_of.push_back("memory");
    if (request.gpus > big.gpu_ids_size()) short_of.push_back("gpu");
    return absl::FailedPreconditionError(
        absl::StrCat(TypeName(type), " can never fit on compute \"", target.name(),
                     "\": each instance requests ", FormatRequest(request),
                     ", but the largest matching node, ", big.name(), ", has ",
                     FormatCapacity(big.cpu_millicores(), big.memory_bytes(), big.gpu_ids_size()),
                     " allocatable (too little ", absl::StrJoin(short_of, ", "),
                     "); choose a smaller instance type or add a larger node"));
  }
  if (empty_total < count) {
    std::vector<std::string> per_node;
    for (size_t i = 0; i < nodes.size() && per_node.size() < kMaxNodesInMessage; ++i) {
      per_node.push_back(absl::StrCat(nodes[i].name(), " ", empty_fits[i]));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "job can never fit on compute \"", target.name(), "\": it needs ", needs, ", but the ",
        nodes.size(), " matching node", nodes.size() == 1 ? "" : "s", " together hold at most ",
        empty_total, " such instance", empty_total == 1 ? "" : "s", " even when empty (",
        absl::StrJoin(per_node, ", "), MoreNodes(nodes.size()),
        "); lower instance_count or choose a smaller instance type"));
  }

  // Free capacity now, from placements on this target.
  std::vector<v1::Placement> held_here;
  for (const v1::Placement& p : held) {
    if (p.compute().empty() || p.compute() == target.name()) held_here.push_back(p);
  }
  std::vector<NodeCapacity> free = FreeCapacity(nodes, held_here);

  // Greedy best-fit. Instances are identical, so each node's fit count is independent of the
  // others and the gang fits iff the counts add up to `count`; greedy never misses a placement.
  std::vector<int> placed_on;  // node index per instance, in placement order
  std::vector<NodeCapacity> left = free;
  for (int k = 0; k < count; ++k) {
    int best = -1;
    std::tuple<int64_t, int64_t, int64_t, size_t> best_key;
    for (size_t i = 0; i < left.size(); ++i) {
      const NodeCapacity& c = left[i];
      if (FitCount(request, c.cpu_millicores, c.memory_bytes,
                   static_cast<int64_t>(c.gpu_ids.size()), 1) < 1) {
        continue;
      }
      auto key = std::make_tuple(static_cast<int64_t>(c.gpu_ids.size()) - request.gpus,
                                 c.cpu_millicores - request.cpu_millicores,
                                 c.memory_bytes - request.memory_bytes, i);
      if (best < 0 || key < best_key) {
        best = static_cast<int>(i);
        best_key = key;
      }
    }
    if (best < 0) break;
    NodeCapacity& c = left[best];
    c.cpu_millicores -= request.cpu_millicores;
    c.memory_bytes -= request.memory_bytes;
    c.gpu_ids.erase(c.gpu_ids.begin(), c.gpu_ids.begin() + request.gpus);
    placed_on.push_back(best);
  }
  if (static_cast<int>(placed_on.size()) < count) {
    std::vector<std::string> per_node;
    for (size_t i = 0; i < free.size() && per_node.size() < kMaxNodesInMessage; ++i) {
      const NodeCapacity& c = free[i];
      per_node.push_back(absl::StrCat(
          c.node, " ",
          FormatCapacity(c.cpu_millicores, c.memory_bytes, static_cast<int64_t>(c.gpu_ids.size())),
          " (fits ",
          FitCount(request, c.cpu_millicores, c.memory_bytes,
                   static_cast<int64_t>(c.gpu_ids.size()), count),
          ")"));
    }
    return absl::UnavailableError(absl::StrCat(
        "needs ", needs, "; free now: ", absl::StrJoin(per_node, "; "), MoreNodes(free.size())));
  }

  // Group instances by node (stable, in order of first use) so a node's instances are consecutive.
  std::vector<int> order;
  for (int node : placed_on) {
    if (std::find(order.begin(), order.end(), node) == order.end()) order.push_back(node);
  }
  v1::Placement placement;
  placement.set_compute(target.name());
  placement.set_instance_type(type.name());
  const bool affinity = target.has_local();
  const int64_t cpus_wanted = (request.cpu_millicores + 999) / 1000;
  int index = 0;
  for (int node : order) {
    NodeCapacity& c = free[node];
    const int on_node = static_cast<int>(std::count(placed_on.begin(), placed_on.end(), node));
    for (int k = 0; k < on_node; ++k) {
      v1::InstancePlacement* instance = placement.add_instances();
      instance->set_instance_index(index++);
      instance->set_node(c.node);
      instance->set_cpu_millicores(request.cpu_millicores);
      instance->set_memory_bytes(request.memory_bytes);
      for (int g = 0; g < request.gpus; ++g) instance->add_gpu_ids(c.gpu_ids[g]);
      c.gpu_ids.erase(c.gpu_ids.begin(), c.gpu_ids.begin() + request.gpus);
      if (affinity && cpus_wanted > 0 && static_cast<int64_t>(c.cpu_ids.size()) >= cpus_wanted) {
        for (int64_t p = 0; p < cpus_wanted; ++p) instance->add_cpu_ids(c.cpu_ids[p]);
        c.cpu_ids.erase(c.cpu_ids.begin(), c.cpu_ids.begin() + cpus_wanted);
      }
    }
  }
  return placement;
}

}  // namespace kubetrain::placement
