#include "kubetrain/launcher/backends/kubernetes/cluster.h"

#include <algorithm>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kubetrain/common/quantity.h"
#include "kubetrain/launcher/backends/kubernetes/render.h"
#include "kubetrain/launcher/compute/instance_types.h"

namespace kubetrain::backends::kubernetes {
namespace {

using nlohmann::json;

absl::StatusOr<int64_t> Quantity(const json& list, const char* key, bool cpu,
                                 const std::string& where) {
  if (!list.is_object() || !list.contains(key)) return 0;
  std::string text = list[key].is_string() ? list[key].get<std::string>() : list[key].dump();
  absl::StatusOr<common::ParsedQuantity> q = common::ParseQuantity(text);
  if (!q.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, " ", key, ": ", q.status().message()));
  }
  return cpu ? q->milli : q->Ceil();
}

}  // namespace

absl::Status CheckNamespace(const ApiClient& client, const std::string& ns) {
  absl::StatusOr<json> got = client.Get(absl::StrCat("/api/v1/namespaces/", ns));
  if (got.ok()) return absl::OkStatus();
  if (got.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(
        absl::StrCat("namespace \"", ns, "\" does not exist in the cluster of context \"",
                     client.connection().context, "\"; create it (kubectl create namespace ", ns,
                     ") and apply docker/rbac.yaml in it"));
  }
  return got.status();
}

absl::StatusOr<v1::Node> NodeFromJson(const json& node) {
  v1::Node out;
  out.set_name(node["metadata"].value("name", ""));
  std::string where = absl::StrCat("node ", out.name(), " allocatable");
  json alloc = node.contains("status") ? node["status"].value("allocatable", json::object())
                                       : json::object();
  absl::StatusOr<int64_t> cpu = Quantity(alloc, "cpu", true, where);
  if (!cpu.ok()) return cpu.status();
  absl::StatusOr<int64_t> mem = Quantity(alloc, "memory", false, where);
  if (!mem.ok()) return mem.status();
  absl::StatusOr<int64_t> gpu = Quantity(alloc, "nvidia.com/gpu", false, where);
  if (!gpu.ok()) return gpu.status();
  out.set_cpu_millicores(*cpu);
  out.set_memory_bytes(*mem);
  for (int64_t g = 0; g < *gpu; ++g) out.add_gpu_ids(static_cast<int32_t>(g));
  json labels = node["metadata"].value("labels", json::object());
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    if (it.value().is_string()) (*out.mutable_labels())[it.key()] = it.value().get<std::string>();
  }
  return out;
}

bool NodeSchedulable(const json& node) {
  if (node.contains("spec") && node["spec"].value("unschedulable", false)) return false;
  if (!node.contains("status") || !node["status"].contains("conditions")) return false;
  for (const json& c : node["status"]["conditions"]) {
    if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
  }
  return false;
}

absl::StatusOr<std::vector<v1::Node>> ListReadyNodes(const ApiClient& client) {
  absl::StatusOr<json> list = client.Get("/api/v1/nodes");
  if (!list.ok()) return list.status();
  std::vector<v1::Node> out;
  for (const json& item : (*list)["items"]) {
    if (!NodeSchedulable(item)) continue;
    absl::StatusOr<v1::Node> node = NodeFromJson(item);
    if (!node.ok()) return node.status();
    out.push_back(std::move(*node));
  }
  std::sort(out.begin(), out.end(),
            [](const v1::Node& a, const v1::Node& b) { return a.name() < b.name(); });
  return out;
}

absl::StatusOr<ClusterInstanceTypes> ReadInstanceTypes(const ApiClient& client) {
  ClusterInstanceTypes out;
  absl::StatusOr<json> list = client.Get("/apis/amlarc.azureml.com/v1alpha1/instancetypes");
  if (!list.ok()) {
    if (list.status().code() == absl::StatusCode::kNotFound) {
      out.warnings.push_back(
          "the cluster has no InstanceType custom resource definition "
          "(amlarc.azureml.com/v1alpha1); the compute offers defaultinstancetype and what you add "
          "with `kubetrain instance-type apply`");
      return out;
    }
    return list.status();
  }
  out.crd_installed = true;
  // Keep what Azure ML's schema knows; the API adds bookkeeping (managedFields, uid, status...).
  json doc = {{"apiVersion", "amlarc.azureml.com/v1alpha1"},
              {"kind", "InstanceTypeList"},
              {"items", json::array()}};
  for (const json& item : (*list)["items"]) {
    json clean = {{"apiVersion", "amlarc.azureml.com/v1alpha1"}, {"kind", "InstanceType"}};
    clean["metadata"] = {{"name", item["metadata"].value("name", "")}};
    if (item.contains("spec")) clean["spec"] = item["spec"];
    doc["items"].push_back(clean);
  }
  compute::InstanceTypeParseResult parsed =
      compute::ParseInstanceTypesYaml(doc.dump(), "cluster InstanceType custom resources");
  if (parsed.diagnostics.has_errors()) {
    return absl::InvalidArgumentError(parsed.diagnostics.Format());
  }
  out.items = std::move(parsed.items);
  for (v1::InstanceType& t : out.items) {
    t.mutable_source()->set_file(absl::StrCat("cluster: instancetype/", t.name()));
    t.mutable_source()->set_line(0);
    t.mutable_source()->set_column(0);
  }
  return out;
}

absl::StatusOr<ClusterInventory> ReadClusterInventory(const ApiClient& client,
                                                      const std::string& ns) {
  if (absl::Status s = CheckNamespace(client, ns); !s.ok()) {
    if (s.code() != absl::StatusCode::kUnavailable) return s;
    return absl::UnavailableError(
        absl::StrCat("cannot reach the cluster of context \"", client.connection().context,
                     "\" at ", client.connection().server, " (", s.message(),
                     "); check the kubeconfig's server and that this machine can reach it"));
  }
  ClusterInventory out;
  absl::StatusOr<std::vector<v1::Node>> nodes = ListReadyNodes(client);
  if (!nodes.ok()) return nodes.status();
  out.nodes = std::move(*nodes);
  if (out.nodes.empty()) {
    out.warnings.push_back(
        "the cluster has no Ready, schedulable node; jobs will wait in the queue until one is");
  }
  absl::StatusOr<ClusterInstanceTypes> types = ReadInstanceTypes(client);
  if (!types.ok()) return types.status();
  for (std::string& w : types->warnings) out.warnings.push_back(std::move(w));
  if (types->crd_installed) out.instance_types = std::move(types->items);
  return out;
}

absl::StatusOr<v1::Placement> ForeignHolds(const ApiClient& client,
                                           const std::vector<v1::Node>& nodes,
                                           const std::string& own_workspace_id) {
  absl::StatusOr<json> pods = client.Get("/api/v1/pods");
  if (!pods.ok()) return pods.status();
  struct Usage {
    int64_t cpu = 0, memory = 0, gpus = 0;
  };
  std::map<std::string, Usage> usage;
  for (const v1::Node& n : nodes) usage[n.name()];
  for (const json& pod : (*pods)["items"]) {
    std::string node = pod.contains("spec") ? pod["spec"].value("nodeName", "") : "";
    auto it = usage.find(node);
    if (it == usage.end()) continue;
    std::string phase = pod.contains("status") ? pod["status"].value("phase", "") : "";
    if (phase == "Succeeded" || phase == "Failed") continue;
    json labels = pod["metadata"].value("labels", json::object());
    if (!own_workspace_id.empty() && labels.value(kLabelWorkspace, "") == own_workspace_id) {
      continue;
    }
    std::string where = absl::StrCat("pod ", pod["metadata"].value("namespace", ""), "/",
                                     pod["metadata"].value("name", ""));
    for (const json& c : pod["spec"].value("containers", json::array())) {
      json res = c.value("resources", json::object());
      json req = res.value("requests", json::object());
      json lim = res.value("limits", json::object());
      absl::StatusOr<int64_t> cpu = Quantity(req.contains("cpu") ? req : lim, "cpu", true, where);
      absl::StatusOr<int64_t> mem =
          Quantity(req.contains("memory") ? req : lim, "memory", false, where);
      absl::StatusOr<int64_t> gpu = Quantity(lim, "nvidia.com/gpu", false, where);
      if (!cpu.ok() || !mem.ok() || !gpu.ok()) continue;  // unreadable: counts nothing
      it->second.cpu += *cpu;
      it->second.memory += *mem;
      it->second.gpus += *gpu;
    }
  }
  v1::Placement out;
  for (const v1::Node& n : nodes) {
    const Usage& u = usage[n.name()];
    if (u.cpu == 0 && u.memory == 0 && u.gpus == 0) continue;
    v1::InstancePlacement* held = out.add_instances();
    held->set_node(n.name());
    held->set_cpu_millicores(u.cpu);
    held->set_memory_bytes(u.memory);
    for (int64_t g = 0; g < u.gpus && g < n.gpu_ids_size(); ++g) {
      held->add_gpu_ids(n.gpu_ids(n.gpu_ids_size() - 1 - static_cast<int>(g)));
    }
  }
  return out;
}

}  // namespace kubetrain::backends::kubernetes
