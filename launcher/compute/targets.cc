#include "kubetrain/launcher/compute/targets.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kubetrain/launcher/compute/nodes.h"

namespace kubetrain::compute {

absl::StatusOr<std::vector<v1::ComputeTarget>> LoadComputeTargets(storage::Workspace& workspace) {
  absl::StatusOr<std::vector<v1::ComputeTarget>> targets = workspace.ListComputes();
  if (!targets.ok()) return targets.status();
  bool has_local = false;
  for (const v1::ComputeTarget& t : *targets) has_local |= t.name() == "local";
  if (!has_local) targets->insert(targets->begin(), DefaultLocalCompute());
  return targets;
}

absl::StatusOr<v1::ComputeTarget> FindComputeTarget(storage::Workspace& workspace,
                                                    const std::string& name) {
  absl::StatusOr<std::vector<v1::ComputeTarget>> targets = LoadComputeTargets(workspace);
  if (!targets.ok()) return targets.status();
  std::vector<std::string> names;
  for (v1::ComputeTarget& t : *targets) {
    if (t.name() == name) return std::move(t);
    names.push_back(t.name());
  }
  return absl::NotFoundError(absl::StrCat("no compute target named \"", name,
                                          "\" (attached: ", absl::StrJoin(names, ", "), ")"));
}

}  // namespace kubetrain::compute
