#include "launcher/backends/launch_plan.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace kubetrain::backends {
namespace {

bool IsRemote(const std::string& path) {
  return absl::StrContains(path, "://") || absl::StartsWith(path, "azureml:");
}

}  // namespace

absl::StatusOr<v1::InstanceLaunch> BuildInstanceLaunch(const LaunchRequest& request, int index,
                                                       const std::vector<std::string>& hosts,
                                                       int master_port) {
  const v1::JobSpec& spec = request.job.spec();
  v1::InstanceLaunch launch;
  *launch.mutable_job() = spec;
  *launch.mutable_placement() = request.job.placement();
  launch.set_instance_index(index);
  launch.set_attempt(request.attempt);
  for (const std::string& h : hosts) launch.add_instance_hosts(h);
  launch.set_master_port(master_port);
  launch.set_workspace(request.workspace);
  launch.set_job_dir(absl::StrCat(request.attempt_dir, "/instance-", index));
  launch.set_checkpoint_dir(request.checkpoint_dir);
  launch.set_grace_period_ms(absl::ToInt64Milliseconds(request.grace));
  for (const auto& [name, input] : spec.inputs()) {
    if (input.type() == v1::DATA_TYPE_LITERAL) {
      (*launch.mutable_input_paths())[name] = input.literal();
    } else if (IsRemote(input.path()) && input.mode() != v1::DATA_MODE_DIRECT) {
      return absl::UnimplementedError(absl::StrCat(
          "input \"", name, "\" reads remote data (", input.path(),
          "); staging remote data is not available in this build yet: use a local path, or "
          "`mode: direct` to hand the URI to the script"));
    } else {
      (*launch.mutable_input_paths())[name] = input.path();
    }
  }
  for (const auto& [name, output] : spec.outputs()) {
    if (IsRemote(output.path())) {
      return absl::UnimplementedError(absl::StrCat(
          "output \"", name, "\" writes remote data (", output.path(),
          "); uploading outputs is not available in this build yet: leave `path:` out (the "
          "output then goes to the job's folder in the workspace) or give a local path"));
    }
    (*launch.mutable_output_paths())[name] =
        output.path().empty() ? absl::StrCat(request.job.job_dir(), "/outputs/", name)
                              : output.path();
  }
  return launch;
}

}  // namespace kubetrain::backends
