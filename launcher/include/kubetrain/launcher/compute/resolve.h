// Checks a parsed job against the workspace: does its compute target exist, does the target offer
// its instance type, can the distribution run on it. Errors point back into the job file through
// JobSpec.locations.
//
// Thread-safety: pure function over the given target list.
#ifndef KUBETRAIN_LAUNCHER_COMPUTE_RESOLVE_H_
#define KUBETRAIN_LAUNCHER_COMPUTE_RESOLVE_H_

#include <optional>
#include <vector>

#include "kubetrain/launcher/spec/diagnostics.h"
#include "kubetrain/v1/compute.pb.h"
#include "kubetrain/v1/instance_type.pb.h"
#include "kubetrain/v1/job.pb.h"

namespace kubetrain::compute {

struct ResolvedJob {
  v1::ComputeTarget target;
  v1::InstanceType instance_type;
};

// `targets` are the workspace's compute targets (including `local`). Records errors in
// `diagnostics` and returns nullopt when the job cannot be resolved.
std::optional<ResolvedJob> ResolveJob(const v1::JobSpec& job,
                                      const std::vector<v1::ComputeTarget>& targets,
                                      spec::Diagnostics& diagnostics);

}  // namespace kubetrain::compute

#endif  // KUBETRAIN_LAUNCHER_COMPUTE_RESOLVE_H_
