// The nodes of compute targets: this machine as one node, or a fixed list of virtual nodes that
// partition it so that multi-node placement is exercised on one host.
//
// Virtual node YAML (for `kubetrain compute attach NAME --type local --nodes FILE`):
//   nodes:
//     - name: node-a
//       labels: {pool: gpu}
//       cpu: "2"          # allocatable, a Kubernetes quantity
//       memory: 8Gi
//       gpus: [0, 1]      # device ids this node owns (optional)
//       cpu_ids: [0, 1]   # host cpus for affinity (optional)
//
// Thread-safety: pure functions, except DetectLocalNode which reads /proc and the GPU driver.
#ifndef KUBETRAIN_LAUNCHER_COMPUTE_NODES_H_
#define KUBETRAIN_LAUNCHER_COMPUTE_NODES_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "kubetrain/launcher/spec/diagnostics.h"
#include "kubetrain/v1/compute.pb.h"

namespace kubetrain::compute {

struct NodeParseResult {
  std::vector<v1::Node> nodes;  // use only when !diagnostics.has_errors()
  spec::Diagnostics diagnostics;
};

NodeParseResult ParseNodesYaml(absl::string_view text, const std::string& path);
NodeParseResult ParseNodesFile(const std::string& path);

// This machine as one node: online cpus, physical memory, GPUs (through CUDA when built with it;
// none otherwise), labels kubernetes.io/hostname=<host>.
v1::Node DetectLocalNode();

// The `local` compute target as it is when nobody configured it: this machine as its one node.
v1::ComputeTarget DefaultLocalCompute();

// A one-line summary of a node's capacity: "cpu 2, memory 8Gi, gpus [0,1]".
std::string DescribeNode(const v1::Node& node);

}  // namespace kubetrain::compute

#endif  // KUBETRAIN_LAUNCHER_COMPUTE_NODES_H_
