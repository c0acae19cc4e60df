// Builds the InstanceLaunch plan each worker agent runs from, the same for every backend.
//
// Inputs: literals and `direct` inputs pass through as written; every other input (local or
// remote) is staged by the worker agent to <job_dir>/data/instance-<i>/inputs/<name> (plus the
// file's name for uri_file), kept across retries. Outputs: `direct` passes through, a local `path:`
// in rw_mount mode is written in place, no path means <job_dir>/outputs/<name>; an output the agent
// uploads at the end (`upload`, or a remote destination) is written to
// <job_dir>/data/instance-<i>/outputs/<name> first. See agent/staging/data_stager.h.
//
// Thread-safety: pure function.
#ifndef KUBETRAIN_LAUNCHER_BACKENDS_LAUNCH_PLAN_H_
#define KUBETRAIN_LAUNCHER_BACKENDS_LAUNCH_PLAN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kubetrain/launcher/backends/backend.h"
#include "kubetrain/v1/launch.pb.h"

namespace kubetrain::backends {

// The plan of instance `index`. `hosts` holds every instance's address by index.
absl::StatusOr<v1::InstanceLaunch> BuildInstanceLaunch(const LaunchRequest& request, int index,
                                                       const std::vector<std::string>& hosts,
                                                       int master_port);

}  // namespace kubetrain::backends

#endif  // KUBETRAIN_LAUNCHER_BACKENDS_LAUNCH_PLAN_H_
