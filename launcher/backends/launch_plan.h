// Builds the InstanceLaunch plan each worker agent runs from, the same for every backend.
//
// Inputs: literals pass through; local paths (already absolute) are used in place. Outputs go to
// their local `path:` or, by default, to <job_dir>/outputs/<name>, which survives retries.
// Remote data (azureml://, https://, wasbs://) is staged by the storage layer; until it is wired
// in, a job naming remote data fails at launch with a message that says so.
//
// Thread-safety: pure function.
#ifndef KUBETRAIN_LAUNCHER_BACKENDS_LAUNCH_PLAN_H_
#define KUBETRAIN_LAUNCHER_BACKENDS_LAUNCH_PLAN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kubetrain/v1/launch.pb.h"
#include "launcher/backends/backend.h"

namespace kubetrain::backends {

// The plan of instance `index`. `hosts` holds every instance's address by index.
absl::StatusOr<v1::InstanceLaunch> BuildInstanceLaunch(const LaunchRequest& request, int index,
                                                       const std::vector<std::string>& hosts,
                                                       int master_port);

}  // namespace kubetrain::backends

#endif  // KUBETRAIN_LAUNCHER_BACKENDS_LAUNCH_PLAN_H_
