#include "kubetrain/launcher/jobs/scheduler.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kubetrain/launcher/placement/placement.h"

namespace kubetrain::jobs {

absl::StatusOr<v1::Placement> TryStart(const std::vector<v1::JobRecord>& all_jobs,
                                       const v1::JobRecord& job, const v1::ComputeTarget& target,
                                       const v1::InstanceType& type,
                                       const std::function<bool(const v1::JobRecord&)>& alive,
                                       const std::vector<v1::Placement>& external) {
  std::vector<v1::Placement> held = external;
  for (const v1::JobRecord& other : all_jobs) {
    if (other.spec().name() == job.spec().name() || other.spec().compute() != target.name()) {
      continue;
    }
    v1::JobState state = other.status().state();
    if (state == v1::JOB_STATE_QUEUED && other.submit_sequence() < job.submit_sequence()) {
      return absl::UnavailableError(absl::StrCat("waiting for earlier job \"", other.spec().name(),
                                                 "\" to start first (queue order)"));
    }
    if ((state == v1::JOB_STATE_STARTING || state == v1::JOB_STATE_RUNNING) && alive(other)) {
      held.push_back(other.placement());
    }
  }
  return placement::PlaceGang(target, type, job.spec().resources().instance_count(), held);
}

}  // namespace kubetrain::jobs
