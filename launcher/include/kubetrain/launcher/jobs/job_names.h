// Job names, generated the way Azure ML does when a file gives none: "<adjective>_<noun>_<suffix>"
// such as "calm_lamp_8k2jx4qz".
//
// Thread-safety: thread-safe (uses absl::BitGen per call).
#ifndef KUBETRAIN_LAUNCHER_JOBS_JOB_NAMES_H_
#define KUBETRAIN_LAUNCHER_JOBS_JOB_NAMES_H_

#include <string>

namespace kubetrain::jobs {

std::string GenerateJobName();

}  // namespace kubetrain::jobs

#endif  // KUBETRAIN_LAUNCHER_JOBS_JOB_NAMES_H_
