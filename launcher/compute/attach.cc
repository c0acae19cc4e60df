#include "kubetrain/launcher/compute/attach.h"

#include <filesystem>
#include <utility>

#include "kubetrain/launcher/compute/instance_types.h"
#include "kubetrain/launcher/compute/nodes.h"

namespace kubetrain::compute {

LocalAttach BuildLocalTarget(const AttachOptions& options) {
  LocalAttach out;
  out.target.set_name(options.name);
  out.target.mutable_local();
  if (options.nodes_file.empty()) {
    *out.target.add_nodes() = DetectLocalNode();
    return out;
  }
  NodeParseResult nodes = ParseNodesFile(options.nodes_file);
  out.diagnostics = std::move(nodes.diagnostics);
  if (out.diagnostics.has_errors()) return out;
  for (v1::Node& n : nodes.nodes) *out.target.add_nodes() = std::move(n);
  return out;
}

v1::ComputeTarget BuildKubernetesTarget(const AttachOptions& options, std::vector<v1::Node> nodes) {
  v1::ComputeTarget target;
  target.set_name(options.name);
  v1::KubernetesCompute* k = target.mutable_kubernetes();
  k->set_kubeconfig_path(std::filesystem::absolute(options.kubeconfig).string());
  k->set_context(options.context);
  k->set_namespace_(options.ns);
  k->set_workspace_url(options.workspace_url);
  k->set_worker_image(options.worker_image);
  for (v1::Node& n : nodes) *target.add_nodes() = std::move(n);
  return target;
}

AttachResult MergeAttachedTarget(
    const std::optional<v1::ComputeTarget>& previous, v1::ComputeTarget attached,
    const std::optional<std::vector<v1::InstanceType>>& cluster_types) {
  AttachResult out;
  out.target = std::move(attached);
  // Re-attaching keeps the instance types IT operations curated.
  if (previous.has_value() && previous->name() == out.target.name()) {
    out.existed = previous->nodes_size() > 0 || previous->instance_types_size() > 0;
    *out.target.mutable_instance_types() = previous->instance_types();
  }
  // A cluster's InstanceType custom resources are the truth for it: they replace what was there.
  if (cluster_types.has_value()) {
    out.target.clear_instance_types();
    ApplyInstanceTypes(*cluster_types, out.target);
    if (out.target.has_kubernetes()) {
      out.target.mutable_kubernetes()->set_instance_types_source("cluster");
    }
  }
  return out;
}

}  // namespace kubetrain::compute
