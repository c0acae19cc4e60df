// How the CLI shows a job to people (tables) and scripts (JSON / YAML).
//
// Thread-safety: pure functions writing to the given stream.
#ifndef KUBETRAIN_LAUNCHER_CLI_JOB_VIEW_H_
#define KUBETRAIN_LAUNCHER_CLI_JOB_VIEW_H_

#include <ostream>
#include <string>
#include <vector>

#include "kubetrain/v1/checkpoint.pb.h"
#include "kubetrain/v1/instance_type.pb.h"
#include "kubetrain/v1/job.pb.h"
#include "kubetrain/v1/job_record.pb.h"
#include "nlohmann/json.hpp"

namespace kubetrain::cli {

// The resolved job as `job validate` prints it: what will run, where, with what data.
void PrintResolvedJob(const v1::JobSpec& job, const v1::InstanceType& type, std::ostream& out);

// {"job": JobSpec, "instance_type": InstanceType} for -o json|yaml (source locations left out).
nlohmann::json ResolvedJobJson(const v1::JobSpec& job, const v1::InstanceType& type);

// "Queued: waiting for ...", "Running on 2 instance(s)", "Failed: rank 3 exited with code 1 ...".
std::string StatusLine(const v1::JobRecord& job);

// The end of a job for people: its state, duration, reason and, for a failed rank, its last lines.
void PrintOutcome(const v1::JobRecord& job, std::ostream& out);

// `kubetrain job list`: name, status, compute, instance type, instances × processes, created,
// duration.
void PrintJobTable(const std::vector<v1::JobRecord>& jobs, std::ostream& out);

// `kubetrain job show`: spec summary, placement per instance, status per rank, attempts.
void PrintJobDetails(const v1::JobRecord& job, std::ostream& out);

// The job's checkpoints: step, size, save duration, attempt, created, location (indented by
// `indent`).
void PrintCheckpointTable(const std::vector<v1::CheckpointRecord>& checkpoints,
                          const std::string& indent, std::ostream& out);

// "2 instance(s) × 2 process(es), pytorch: 4 ranks".
std::string Ranks(const v1::JobSpec& job);

// "Running", "Completed", ... from JOB_STATE_*.
std::string StateName(v1::JobState state);

}  // namespace kubetrain::cli

#endif  // KUBETRAIN_LAUNCHER_CLI_JOB_VIEW_H_
