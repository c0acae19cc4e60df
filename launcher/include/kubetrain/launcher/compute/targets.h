// The compute targets of a workspace as the launcher sees them: what was attached, plus `local`
// (this machine as one node, GPUs detected) when nothing was attached under that name.
//
// Thread-safety: as the Workspace passed in.
#ifndef KUBETRAIN_LAUNCHER_COMPUTE_TARGETS_H_
#define KUBETRAIN_LAUNCHER_COMPUTE_TARGETS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kubetrain/storage/workspace.h"
#include "kubetrain/v1/compute.pb.h"

namespace kubetrain::compute {

absl::StatusOr<std::vector<v1::ComputeTarget>> LoadComputeTargets(storage::Workspace& workspace);

// One target by name. NotFound lists the attached ones.
absl::StatusOr<v1::ComputeTarget> FindComputeTarget(storage::Workspace& workspace,
                                                    const std::string& name);

}  // namespace kubetrain::compute

#endif  // KUBETRAIN_LAUNCHER_COMPUTE_TARGETS_H_
