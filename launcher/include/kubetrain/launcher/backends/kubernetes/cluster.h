// What kubetrain reads from a cluster: the namespace, its Ready nodes and their capacity, the
// Azure ML InstanceType custom resources, and what other pods already hold on each node.
//
// Thread-safety: functions; concurrent calls are fine (the client is thread-safe).
#ifndef KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_CLUSTER_H_
#define KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_CLUSTER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kubetrain/launcher/backends/kubernetes/api_client.h"
#include "kubetrain/v1/compute.pb.h"
#include "kubetrain/v1/instance_type.pb.h"
#include "kubetrain/v1/placement.pb.h"
#include "nlohmann/json.hpp"

namespace kubetrain::backends::kubernetes {

// NotFound (with the kubectl command that creates it) when the namespace does not exist.
absl::Status CheckNamespace(const ApiClient& client, const std::string& ns);

// A Node object → v1::Node: allocatable cpu (millicores), memory (bytes), nvidia.com/gpu as ids
// 0..n-1, and the labels. InvalidArgument when a quantity cannot be parsed.
absl::StatusOr<v1::Node> NodeFromJson(const nlohmann::json& node);

// True when the node's Ready condition is True and it is not cordoned (spec.unschedulable).
bool NodeSchedulable(const nlohmann::json& node);

// The cluster's schedulable Ready nodes, in name order.
absl::StatusOr<std::vector<v1::Node>> ListReadyNodes(const ApiClient& client);

struct ClusterInstanceTypes {
  bool crd_installed = false;  // the amlarc.azureml.com/v1alpha1 InstanceType CRD answers
  std::vector<v1::InstanceType> items;
  std::vector<std::string> warnings;
};

// Lists InstanceType custom resources and parses them with Azure ML's rules
// (launcher/compute/instance_types.h). A missing CRD is not an error (crd_installed false); an
// invalid custom resource is InvalidArgument naming it.
absl::StatusOr<ClusterInstanceTypes> ReadInstanceTypes(const ApiClient& client);

// What attaching a compute target to a namespace of a cluster reads from the cluster.
struct ClusterInventory {
  // The schedulable Ready nodes, in name order (ListReadyNodes); may be empty (see warnings).
  std::vector<v1::Node> nodes;
  // The InstanceType custom resources (ReadInstanceTypes); nullopt when the cluster has no
  // InstanceType CRD, which is not an error.
  std::optional<std::vector<v1::InstanceType>> instance_types;
  // One line each, to show the user: no Ready node, no InstanceType CRD.
  std::vector<std::string> warnings;
};

// Reads what `kubetrain compute attach` stores for namespace `ns`: checks the namespace
// (CheckNamespace's NotFound; Unavailable "cannot reach the cluster of context ..." naming the
// server when it does not answer), then the Ready nodes and the InstanceType custom resources.
// The client's own connection warnings (KubeConnection::warnings) are not repeated here.
absl::StatusOr<ClusterInventory> ReadClusterInventory(const ApiClient& client,
                                                      const std::string& ns);

// What pods kubetrain's workspace did not start hold on `nodes`: the cpu / memory requests (a
// request not given counts as its limit, as Kubernetes does) and nvidia.com/gpu limits of every
// pod bound to one of them that is not Succeeded or Failed, leaving out pods labelled
// kubetrain.io/workspace=`own_workspace_id` (the workspace counts its own jobs itself). One
// InstancePlacement per node that has such pods; GPUs are held as the node's highest ids (the
// device plugin, not kubetrain, picks the real devices; placement counts them).
absl::StatusOr<v1::Placement> ForeignHolds(const ApiClient& client,
                                           const std::vector<v1::Node>& nodes,
                                           const std::string& own_workspace_id);

}  // namespace kubetrain::backends::kubernetes

#endif  // KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_CLUSTER_H_
