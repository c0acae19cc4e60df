// Pod phase and container state → what kubetrain reports (JobState, a reason, a sentence).
//
//   Pending, container waiting ContainerCreating / PodInitializing / ErrImagePull   → Starting
//   Pending, container waiting ImagePullBackOff / InvalidImageName / ErrImageNeverPull
//                                                     → Failed, reason ImagePullBackOff
//   container waiting CreateContainerConfigError / CreateContainerError / RunContainerError
//                                                     → Failed, that reason
//   Running (container running)                       → Running
//   Succeeded                                         → Completed
//   container terminated OOMKilled                    → Failed, reason OOMKilled
//   Failed with status.reason Evicted                 → Failed, reason Evicted
//   Failed, AGENT_EXIT_TIMED_OUT (launch.proto)       → Failed, reason Timeout (limits.timeout)
//   Failed otherwise                                  → Failed, reason InstanceFailed (exit code)
//   deleted by someone else, or its node lost it      → Failed, reason PodDeleted / NodeLost
//
// Thread-safety: pure functions.
#ifndef KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_POD_STATUS_H_
#define KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_POD_STATUS_H_

#include <string>

#include "kubetrain/v1/status.pb.h"
#include "nlohmann/json.hpp"

namespace kubetrain::backends::kubernetes {

struct PodOutcome {
  v1::JobState state = v1::JOB_STATE_STARTING;  // STARTING, RUNNING, COMPLETED or FAILED
  std::string reason;   // for FAILED: ImagePullBackOff, OOMKilled, Evicted, Timeout, ...
  std::string message;  // a sentence naming the pod and node
  int exit_code = 0;    // the container's, when it terminated
  int signal = 0;       // exit codes above 128 from a signal: the signal
};

PodOutcome ClassifyPod(const nlohmann::json& pod);

}  // namespace kubetrain::backends::kubernetes

#endif  // KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_POD_STATUS_H_
