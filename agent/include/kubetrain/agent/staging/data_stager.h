// The agent's data staging: a job's inputs before its ranks start, its outputs after they end.
// The storage layer does the work (kubetrain/storage/data_stage.h: modes, transfers, path safety);
// this file maps the launch plan onto it and reports.
//
// The plan says what to stage (launcher/backends/launch_plan.h): an input whose input_paths entry
// differs from the spec's path is staged from the spec's path to that local path; an output whose
// spec needs publishing (`upload`, or a remote destination) and whose output_paths entry differs
// from the spec's path is published from that local path to the spec's path. Everything else
// (literals, `direct`, local paths used in place) passes through untouched.
//
// StageInputs stops at the first input that fails (the instance then fails to start: nothing
// runs on missing data). PublishOutputs publishes every output even when one fails, so partial
// results are kept; each is recorded in the workspace (AgentSink::RecordOutputUpload) with its
// files, bytes, duration and status ("completed" / "failed: ..."). Both write one agent line per
// input / output (how, how much, warnings such as ro_mount's symlink fallback) and never a secret.
//
// Datastores come from the sink (the workspace); `workspaceblobstore` defaults to
// <workspace>/datastores/workspaceblobstore. Read-only bind mounts are tried only when the agent is
// PID 1 — the local backend's instance with its own PID and mount namespaces.
//
// Thread-safety: call from the agent's main thread.
#ifndef KUBETRAIN_AGENT_STAGING_DATA_STAGER_H_
#define KUBETRAIN_AGENT_STAGING_DATA_STAGER_H_

#include "absl/status/status.h"
#include "kubetrain/agent/ranks/cancel.h"
#include "kubetrain/agent/ranks/reporter.h"
#include "kubetrain/agent/sink.h"
#include "kubetrain/v1/launch.pb.h"

namespace kubetrain::agent {

// A cancel request (SIGTERM / SIGINT to the agent) stops the staging soon with Cancelled.
absl::Status StageInputs(const v1::InstanceLaunch& launch, AgentSink* sink, Reporter* reporter,
                         CancelToken* cancel = nullptr);

// Returns the first failure (after trying every output).
absl::Status PublishOutputs(const v1::InstanceLaunch& launch, AgentSink* sink, Reporter* reporter);

}  // namespace kubetrain::agent

#endif  // KUBETRAIN_AGENT_STAGING_DATA_STAGER_H_
