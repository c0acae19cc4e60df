#include "kubetrain/launcher/compute/resolve.h"

#include "absl/strings/str_cat.h"
#include "kubetrain/launcher/compute/instance_types.h"
#include "kubetrain/launcher/spec/suggest.h"

namespace kubetrain::compute {
namespace {

spec::Location Where(const v1::JobSpec& job, const std::string& field) {
  auto it = job.locations().find(field);
  if (it == job.locations().end()) return {job.source_file(), 0, 0, ""};
  return {it->second.file(), it->second.line(), it->second.column(), ""};
}

}  // namespace

std::optional<ResolvedJob> ResolveJob(const v1::JobSpec& job,
                                      const std::vector<v1::ComputeTarget>& targets,
                                      spec::Diagnostics& diagnostics) {
  const v1::ComputeTarget* target = nullptr;
  std::vector<std::string> names;
  for (const v1::ComputeTarget& t : targets) {
    names.push_back(t.name());
    if (t.name() == job.compute()) target = &t;
  }
  if (target == nullptr) {
    std::string close = spec::ClosestMatch(job.compute(), names);
    diagnostics.Error(
        Where(job, "compute"), "compute",
        absl::StrCat("no compute target named \"", job.compute(), "\" is attached"),
        close.empty()
            ? absl::StrCat("attach it with `kubetrain compute attach`, or run here with --set "
                           "compute=local")
            : absl::StrCat("did you mean `", close, "`? (or --set compute=local)"));
    return std::nullopt;
  }
  absl::StatusOr<v1::InstanceType> type =
      FindInstanceType(*target, job.resources().instance_type());
  if (!type.ok()) {
    diagnostics.Error(Where(job, "resources.instance_type"), "resources.instance_type",
                      std::string(type.status().message()));
    return std::nullopt;
  }
  int procs = job.distribution().process_count_per_instance();
  int gpus = type->limits().gpu();
  if (gpus > 0 && procs > gpus) {
    diagnostics.Warning(
        Where(job, "distribution.process_count_per_instance"),
        "distribution.process_count_per_instance",
        absl::StrCat(procs, " processes per instance share ", gpus, " GPU(s) of instance type \"",
                     type->name(), "\""),
        "NCCL needs one GPU per rank; set process_count_per_instance to the GPU count");
  }
  return ResolvedJob{*target, *type};
}

}  // namespace kubetrain::compute
