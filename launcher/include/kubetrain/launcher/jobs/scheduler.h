// The queue: which job may start now. A pure function of the workspace's job records, called inside
// Workspace::UpdateJob so the decision and the reservation it makes are one transaction.
//
// Rules (DESIGN.md, "Placement"): jobs start in submit order per compute target (strict FIFO: a job
// never overtakes an earlier queued job on the same target, so a big job is not starved); a job
// that fits but not now waits in Queued holding nothing; resources are held only by jobs that are
// Starting or Running (and, for the local backend, whose supervisor is alive).
//
// Thread-safety: pure functions.
#ifndef KUBETRAIN_LAUNCHER_JOBS_SCHEDULER_H_
#define KUBETRAIN_LAUNCHER_JOBS_SCHEDULER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kubetrain/v1/compute.pb.h"
#include "kubetrain/v1/instance_type.pb.h"
#include "kubetrain/v1/job_record.pb.h"

namespace kubetrain::jobs {

// Decides whether `job` (Queued) may start now on `target`, given every job of the workspace.
// `alive(record)` says whether a Starting/Running job really holds its placement (its supervisor
// runs). Returns the placement to take; Unavailable with what it waits for (an earlier job, or
// capacity); FailedPrecondition when it can never fit.
// `external` are holds on the target by others than this workspace's jobs (Backend::Capacity).
absl::StatusOr<v1::Placement> TryStart(const std::vector<v1::JobRecord>& all_jobs,
                                       const v1::JobRecord& job, const v1::ComputeTarget& target,
                                       const v1::InstanceType& type,
                                       const std::function<bool(const v1::JobRecord&)>& alive,
                                       const std::vector<v1::Placement>& external = {});

}  // namespace kubetrain::jobs

#endif  // KUBETRAIN_LAUNCHER_JOBS_SCHEDULER_H_
