// Gang placement: puts all instances of a job on a compute target's fixed nodes, or none of them.
//
// The rules (DESIGN.md, "Placement"):
//  - a node is eligible when its labels contain every key of the instance type's nodeSelector with
//    exactly that value;
//  - an instance reserves its cpu and memory *requests* (Kubernetes semantics: a request that is
//    not given falls back to the limit) from the node's free allocatable capacity;
//  - GPUs are `limits.nvidia.com/gpu` and are assigned as specific device ids from the node's free
//    `gpu_ids`, lowest ids first;
//  - several instances may share a node when its capacity allows;
//  - on local targets, a node that lists `cpu_ids` also gives each instance ceil(cpu request) host
//    cpus for affinity (lowest free ids; left empty when not enough are free — affinity is a
//    preference, not a reservation);
//  - all-or-nothing: either every instance gets a node, or nothing is placed.
// Among the nodes an instance fits on, the one that leaves the least fragmentation wins: fewest
// free GPUs left after placing it, then least free cpu, then least free memory, then the node's
// position in the target. This packs a gang onto as few nodes as possible and keeps CPU-only
// instances off GPU nodes while GPU-less nodes have room.
//
// Everything here is a pure, deterministic function of its arguments: no I/O, no clock.
// Thread-safety: pure functions; safe to call concurrently.
#ifndef KUBETRAIN_LAUNCHER_PLACEMENT_PLACEMENT_H_
#define KUBETRAIN_LAUNCHER_PLACEMENT_PLACEMENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kubetrain/v1/compute.pb.h"
#include "kubetrain/v1/instance_type.pb.h"
#include "kubetrain/v1/placement.pb.h"

namespace kubetrain::placement {

// What one instance of an instance type reserves on a node.
struct ResourceRequest {
  int64_t cpu_millicores = 0;  // requests.cpu, else limits.cpu
  int64_t memory_bytes = 0;    // requests.memory, else limits.memory
  int32_t gpus = 0;            // limits.gpu (else requests.gpu)
};

// The request placement reserves for one instance of `type`.
ResourceRequest EffectiveRequest(const v1::InstanceType& type);

// "cpu 4, memory 8Gi, gpu 1" (the gpu part only when gpus > 0).
std::string FormatRequest(const ResourceRequest& request);

// True when `node`'s labels contain every key of `type.node_selector` with the same value.
bool MatchesNodeSelector(const v1::InstanceType& type, const v1::Node& node);

// What is free on one node.
struct NodeCapacity {
  std::string node;              // the node's name
  int64_t cpu_millicores = 0;    // allocatable minus held requests; negative when overcommitted
  int64_t memory_bytes = 0;      // likewise
  std::vector<int32_t> gpu_ids;  // free device ids, ascending
  std::vector<int32_t> cpu_ids;  // free host cpu ids, ascending (empty when the node lists none)
};

// Free capacity of each node, in the order of `nodes`, given the placements of the jobs that
// currently hold resources. Held instances are matched to nodes by name; instances on nodes not in
// `nodes` are ignored. The caller passes only placements on the same compute target (PlaceGang
// filters by Placement.compute itself).
std::vector<NodeCapacity> FreeCapacity(const std::vector<v1::Node>& nodes,
                                       const std::vector<v1::Placement>& held);

// Places `count` instances of `type` on `target`, all-or-nothing, given the placements `held` by
// other jobs (those whose `compute` is not `target.name()` are ignored; an empty `compute` counts
// as this target). Instance i of the result has instance_index i; instances on one node get
// consecutive indices.
//
// Errors:
//  - InvalidArgument: count < 1.
//  - FailedPrecondition ("can never fit"; the job must be rejected at submit): no node matches the
//    nodeSelector ("no node matches nodeSelector {k=v,...}"); or one instance is bigger than every
//    matching node even when empty (names the instance type, its requests and the largest matching
//    node with its allocatable capacity); or the matching nodes together, empty, cannot hold
//    `count` instances.
//  - Unavailable ("does not fit now"; the job waits in Queued): the message says what it needs and
//    what is free now on each matching node, e.g.
//    `needs 2 × (cpu 4, memory 8Gi, gpu 1) of instance type "gpu-small"; free now: node-a cpu 2,
//    memory 4Gi, gpu 0 (fits 0); node-b cpu 8, memory 32Gi, gpu 1 (fits 1)`.
absl::StatusOr<v1::Placement> PlaceGang(const v1::ComputeTarget& target,
                                        const v1::InstanceType& type, int count,
                                        const std::vector<v1::Placement>& held);

}  // namespace kubetrain::placement

#endif  // KUBETRAIN_LAUNCHER_PLACEMENT_PLACEMENT_H_
