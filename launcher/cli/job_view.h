// How the CLI shows a job to people (tables) and scripts (JSON / YAML).
//
// Thread-safety: pure functions writing to the given stream.
#ifndef KUBETRAIN_LAUNCHER_CLI_JOB_VIEW_H_
#define KUBETRAIN_LAUNCHER_CLI_JOB_VIEW_H_

#include <ostream>

#include "kubetrain/v1/instance_type.pb.h"
#include "kubetrain/v1/job.pb.h"
#include "nlohmann/json.hpp"

namespace kubetrain::cli {

// The resolved job as `job validate` prints it: what will run, where, with what data.
void PrintResolvedJob(const v1::JobSpec& job, const v1::InstanceType& type, std::ostream& out);

// {"job": JobSpec, "instance_type": InstanceType} for -o json|yaml (source locations left out).
nlohmann::json ResolvedJobJson(const v1::JobSpec& job, const v1::InstanceType& type);

}  // namespace kubetrain::cli

#endif  // KUBETRAIN_LAUNCHER_CLI_JOB_VIEW_H_
