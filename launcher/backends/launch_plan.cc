#include "kubetrain/launcher/backends/launch_plan.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace kubetrain::backends {
namespace {

bool IsRemote(const std::string& path) {
  return absl::StrContains(path, "://") || absl::StartsWith(path, "azureml:");
}

// The last segment of a data path ("model.bin" of ".../paths/out/model.bin"), for uri_file
// inputs and outputs, whose local path is a file inside a folder of its own.
std::string BaseName(const std::string& path) {
  absl::string_view p = path;
  while (absl::EndsWith(p, "/")) p.remove_suffix(1);
  size_t slash = p.rfind('/');
  std::string base(slash == absl::string_view::npos ? p : p.substr(slash + 1));
  return base.empty() || base == "." || base == ".." ? "data" : base;
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
  // Inputs: literals and `direct` pass through; everything else is staged by the agent
  // (agent/staging/data_stager.h) to a folder of this instance under the job's folder, kept across
  // attempts so a retried download resumes.
  const std::string data_dir = absl::StrCat(request.job.job_dir(), "/data/instance-", index);
  for (const auto& [name, input] : spec.inputs()) {
    if (input.type() == v1::DATA_TYPE_LITERAL) {
      (*launch.mutable_input_paths())[name] = input.literal();
    } else if (input.mode() == v1::DATA_MODE_DIRECT || input.path().empty()) {
      (*launch.mutable_input_paths())[name] = input.path();
    } else {
      std::string target = absl::StrCat(data_dir, "/inputs/", name);
      if (input.type() == v1::DATA_TYPE_URI_FILE)
        absl::StrAppend(&target, "/", BaseName(input.path()));
      (*launch.mutable_input_paths())[name] = target;
    }
  }
  // Outputs: `direct` passes the URI through; a local path in rw_mount mode is written in place;
  // the default (no path) is <job_dir>/outputs/<name>; anything uploaded at the end (`upload`, or
  // a remote destination) is written to a folder of this instance first.
  for (const auto& [name, output] : spec.outputs()) {
    std::string local;
    if (output.mode() == v1::DATA_MODE_DIRECT) {
      local = output.path();
    } else if (output.path().empty()) {
      local = absl::StrCat(request.job.job_dir(), "/outputs/", name);
    } else if (!IsRemote(output.path()) && output.mode() != v1::DATA_MODE_UPLOAD) {
      local = output.path();
    } else {
      local = absl::StrCat(data_dir, "/outputs/", name);
      if (output.type() == v1::DATA_TYPE_URI_FILE)
        absl::StrAppend(&local, "/", BaseName(output.path()));
    }
    (*launch.mutable_output_paths())[name] = local;
  }
  return launch;
}

}  // namespace kubetrain::backends
