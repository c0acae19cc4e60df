// Attaching a compute target (`kubetrain compute attach`): the target a local or Kubernetes attach
// makes, and the target to store when one of that name was attached before.
//
// The merge rules on re-attach:
//   - re-attaching keeps the instance types stored before (IT operations curated them with
//     `kubetrain instance-type apply`);
//   - a cluster's InstanceType custom resources are the truth for it: when the cluster has the
//     InstanceType CRD, its resources replace what was there and the target records
//     `instance_types_source: cluster`.
//
// Reading the cluster itself is the Kubernetes backend's (backends/kubernetes/cluster.h,
// ReadClusterInventory); resolving the kubeconfig context is kubeconfig.h's.
//
// Thread-safety: pure functions, except BuildLocalTarget, which reads the nodes file or detects
// this machine (nodes.h).
#ifndef KUBETRAIN_LAUNCHER_COMPUTE_ATTACH_H_
#define KUBETRAIN_LAUNCHER_COMPUTE_ATTACH_H_

#include <optional>
#include <string>
#include <vector>

#include "kubetrain/launcher/spec/diagnostics.h"
#include "kubetrain/v1/compute.pb.h"
#include "kubetrain/v1/instance_type.pb.h"

namespace kubetrain::compute {

// What the user asked to attach. Which fields apply depends on the kind of target; combining them
// is checked by the caller (the CLI), not here.
struct AttachOptions {
  // The target's name, the one jobs use in `compute:`.
  std::string name;
  // local: path of a YAML list of virtual nodes (nodes.h); empty = this machine as one node.
  std::string nodes_file;
  // kubernetes: path of the kubeconfig; stored made absolute.
  std::string kubeconfig;
  // kubernetes: the kubeconfig context, already resolved (never the empty "current-context").
  std::string context;
  // kubernetes: the namespace the jobs run in.
  std::string ns;
  // kubernetes: the workspace the pods report to (grpc://host:port); empty = they report nowhere.
  std::string workspace_url;
  // kubernetes: the image for jobs without environment.image; empty = the default worker image.
  std::string worker_image;
};

// A local target as attached. `diagnostics` holds the nodes file's errors and warnings (to show
// even when there is no error); use `target` only when !diagnostics.has_errors().
struct LocalAttach {
  v1::ComputeTarget target;
  spec::Diagnostics diagnostics;
};

// A `local` target named options.name: the nodes of options.nodes_file, or this machine as one
// node (DetectLocalNode) when it is empty. No instance types (see MergeAttachedTarget).
LocalAttach BuildLocalTarget(const AttachOptions& options);

// A `kubernetes` target named options.name for options' kubeconfig (made absolute), context,
// namespace, workspace URL and worker image, with the cluster's `nodes`. No instance types.
v1::ComputeTarget BuildKubernetesTarget(const AttachOptions& options, std::vector<v1::Node> nodes);

// What attaching leads to.
struct AttachResult {
  // The target to store.
  v1::ComputeTarget target;
  // True when a target of this name with nodes or instance types was stored before: the attach
  // updates it rather than creating it.
  bool existed = false;
};

// The target to store when `attached` (from BuildLocalTarget / BuildKubernetesTarget) is attached
// over `previous` (the target stored under that name, nullopt when none), following the merge
// rules above. `cluster_types` are the cluster's InstanceType custom resources, nullopt when the
// cluster has no InstanceType CRD (and always for a local target).
AttachResult MergeAttachedTarget(const std::optional<v1::ComputeTarget>& previous,
                                 v1::ComputeTarget attached,
                                 const std::optional<std::vector<v1::InstanceType>>& cluster_types);

}  // namespace kubetrain::compute

#endif  // KUBETRAIN_LAUNCHER_COMPUTE_ATTACH_H_
