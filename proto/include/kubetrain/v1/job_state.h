// The one predicate over JobState (status.proto) that every layer needs — the launcher's
// controller, the agent that mirrors instance 0, and the workspace — kept beside the enum so no
// layer writes its own copy.
//
// Thread-safety: pure functions.
#ifndef KUBETRAIN_V1_JOB_STATE_H_
#define KUBETRAIN_V1_JOB_STATE_H_

#include "kubetrain/v1/status.pb.h"

namespace kubetrain::v1 {

// Completed, Failed or Canceled: the job (or instance, or rank) has ended and will not change.
inline bool IsTerminal(JobState state) {
  return state == JOB_STATE_COMPLETED || state == JOB_STATE_FAILED || state == JOB_STATE_CANCELED;
}

}  // namespace kubetrain::v1

#endif  // KUBETRAIN_V1_JOB_STATE_H_
