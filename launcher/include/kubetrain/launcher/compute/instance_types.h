// InstanceType custom resources (apiVersion amlarc.azureml.com/v1alpha1), as Azure ML defines them.
//
// Parsing follows Azure ML's rules: kind InstanceType or InstanceTypeList; metadata.name a
// Kubernetes resource name; spec.resources.limits must give cpu and memory (non-zero quantities);
// requests are optional and default to the limits, and must not exceed them; nvidia.com/gpu is a
// whole number and only allowed under limits; nodeSelector is optional. `defaultinstancetype`
// exists on every compute target unless one with that name is defined; a job without
// `instance_type` gets it.
//
// Thread-safety: pure functions.
#ifndef KUBETRAIN_LAUNCHER_COMPUTE_INSTANCE_TYPES_H_
#define KUBETRAIN_LAUNCHER_COMPUTE_INSTANCE_TYPES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kubetrain/launcher/spec/diagnostics.h"
#include "kubetrain/v1/compute.pb.h"
#include "kubetrain/v1/instance_type.pb.h"

namespace kubetrain::compute {

inline constexpr char kDefaultInstanceTypeName[] = "defaultinstancetype";

struct InstanceTypeParseResult {
  std::vector<v1::InstanceType> items;  // use only when !diagnostics.has_errors()
  spec::Diagnostics diagnostics;
};

// Parses one YAML document holding an InstanceType or an InstanceTypeList.
InstanceTypeParseResult ParseInstanceTypesYaml(absl::string_view text, const std::string& path);
InstanceTypeParseResult ParseInstanceTypesFile(const std::string& path);

// Azure ML's built-in default: requests cpu 100m / memory 2Gi, limits cpu 2 / memory 2Gi, no GPU.
v1::InstanceType DefaultInstanceType();

// The instance types a target offers: its own plus defaultinstancetype unless it defines one.
std::vector<v1::InstanceType> EffectiveInstanceTypes(const v1::ComputeTarget& target);

// Looks `name` up on `target` (empty name means defaultinstancetype). NotFound names the target,
// suggests a close name and lists the available ones.
absl::StatusOr<v1::InstanceType> FindInstanceType(const v1::ComputeTarget& target,
                                                  absl::string_view name);

// Adds or replaces `items` (by name) in `target`.
void ApplyInstanceTypes(const std::vector<v1::InstanceType>& items, v1::ComputeTarget& target);

}  // namespace kubetrain::compute

#endif  // KUBETRAIN_LAUNCHER_COMPUTE_INSTANCE_TYPES_H_
