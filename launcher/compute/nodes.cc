#include "kubetrain/launcher/compute/nodes.h"

#include <unistd.h>

#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kubetrain/common/quantity.h"
#include "kubetrain/launcher/spec/yaml_reader.h"

#if KUBETRAIN_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace kubetrain::compute {
namespace {

using spec::Field;
using spec::YamlReader;

std::vector<int32_t> IntList(YamlReader& r, const YAML::Node& node, absl::string_view field) {
  std::vector<int32_t> out;
  if (!node.IsSequence()) {
    r.Error(
        node, field,
        absl::StrCat("expected a list of ids such as [0, 1], found ", YamlReader::Describe(node)));
    return out;
  }
  std::set<int32_t> seen;
  for (size_t i = 0; i < node.size(); ++i) {
    std::string f = absl::StrCat(field, "[", i, "]");
    if (auto v = r.Int(node[i], f, 0, 4095)) {
      if (!seen.insert(static_cast<int32_t>(*v)).second) {
        r.Error(node[i], f, absl::StrCat("id ", *v, " is listed twice"));
      }
      out.push_back(static_cast<int32_t>(*v));
    }
  }
  return out;
}

int GpuCount() {
#if KUBETRAIN_HAVE_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
#else
  return 0;
#endif
}

}  // namespace

NodeParseResult ParseNodesYaml(absl::string_view text, const std::string& path) {
  NodeParseResult result;
  YamlReader r(path, text, result.diagnostics);
  std::optional<YAML::Node> root = r.Load();
  if (!root) return result;
  if (!r.ExpectMap(*root, "")) return result;
  r.CheckKeys(*root, "", {"nodes"});
  const YAML::Node& nodes = (*root)["nodes"];
  if (!nodes || !nodes.IsSequence() || nodes.size() == 0) {
    r.Error(nodes ? nodes : *root, "nodes", "expected a non-empty list of nodes");
    return result;
  }
  std::set<std::string> names;
  std::map<int32_t, std::string> gpu_owner, cpu_owner;
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::string field = absl::StrCat("nodes[", i, "]");
    const YAML::Node& n = nodes[i];
    if (!r.ExpectMap(n, field)) continue;
    r.CheckKeys(n, field, {"name", "labels", "cpu", "memory", "gpus", "cpu_ids"});
    v1::Node node;
    if (!n["name"]) {
      r.Error(n, Field(field, "name"), "missing", "name the node");
    } else if (auto name = r.String(n["name"], Field(field, "name"))) {
      if (!names.insert(*name).second) {
        r.Error(n["name"], Field(field, "name"),
                absl::StrCat("node \"", *name, "\" is listed twice"));
      }
      node.set_name(*name);
    }
    if (n["labels"]) {
      if (auto labels = r.StringMap(n["labels"], Field(field, "labels"))) {
        node.mutable_labels()->insert(labels->begin(), labels->end());
      }
    }
    for (const char* key : {"cpu", "memory"}) {
      std::string f = Field(field, key);
      if (!n[key]) {
        r.Error(n, f, "missing", absl::StrCat("give the node's allocatable ", key));
        continue;
      }
      auto text = r.String(n[key], f);
      if (!text) continue;
      auto q = common::ParseQuantity(*text);
      if (!q.ok()) {
        r.Error(n[key], f, std::string(q.status().message()));
      } else if (q->milli == 0) {
        r.Error(n[key], f, absl::StrCat(key, " must be greater than zero"));
      } else if (std::string(key) == "cpu") {
        node.set_cpu_millicores(q->milli);
      } else {
        node.set_memory_bytes(q->Ceil());
      }
    }
    if (n["gpus"]) {
      for (int32_t id : IntList(r, n["gpus"], Field(field, "gpus"))) {
        auto [it, fresh] = gpu_owner.emplace(id, node.name());
        if (!fresh) {
          r.Error(n["gpus"], Field(field, "gpus"),
                  absl::StrCat("GPU ", id, " already belongs to node \"", it->second, "\""));
        }
        node.add_gpu_ids(id);
      }
    }
    if (n["cpu_ids"]) {
      for (int32_t id : IntList(r, n["cpu_ids"], Field(field, "cpu_ids"))) {
        auto [it, fresh] = cpu_owner.emplace(id, node.name());
        if (!fresh) {
          r.Error(n["cpu_ids"], Field(field, "cpu_ids"),
                  absl::StrCat("cpu ", id, " already belongs to node \"", it->second, "\""));
        }
        node.add_cpu_ids(id);
      }
    }
    result.nodes.push_back(std::move(node));
  }
  return result;
}

NodeParseResult ParseNodesFile(const std::string& path) {
  NodeParseResult result;
  std::optional<std::string> text = spec::ReadUserFile(path, result.diagnostics);
  if (!text) return result;
  return ParseNodesYaml(*text, path);
}

v1::Node DetectLocalNode() {
  v1::Node node;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "localhost");
  node.set_name(host);
  (*node.mutable_labels())["kubernetes.io/hostname"] = host;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  node.set_cpu_millicores((cpus > 0 ? cpus : 1) * 1000);
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  node.set_memory_bytes(pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0);
  for (int i = 0, n = GpuCount(); i < n; ++i) node.add_gpu_ids(i);
  return node;
}

v1::ComputeTarget DefaultLocalCompute() {
  v1::ComputeTarget target;
  target.set_name("local");
  target.mutable_local();
  *target.add_nodes() = DetectLocalNode();
  return target;
}

std::string DescribeNode(const v1::Node& node) {
  std::string out = absl::StrCat("cpu ", common::FormatMillicores(node.cpu_millicores()),
                                 ", memory ", common::FormatBytes(node.memory_bytes()));
  if (node.gpu_ids_size() > 0) {
    absl::StrAppend(&out, ", gpus [", absl::StrJoin(node.gpu_ids(), ","), "]");
  }
  return out;
}

}  // namespace kubetrain::compute
