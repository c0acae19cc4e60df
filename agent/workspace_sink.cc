#include "kubetrain/agent/workspace_sink.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kubetrain/common/status_macros.h"

namespace kubetrain::agent {
namespace {

absl::StatusOr<v1::JobStatus> ReadStatus(storage::Workspace& ws, const std::string& job) {
  absl::StatusOr<v1::JobRecord> record = ws.GetJob(job);
  if (!record.ok()) return record.status();
  return record->status();
}

}  // namespace

absl::StatusOr<v1::JobStatus> WorkspaceSink::ReadJobStatus() {
  return ReadStatus(*workspace_, job_);
}

absl::StatusOr<v1::JobStatus> SpooledSink::ReadJobStatus() { return ReadStatus(*workspace_, job_); }

AgentWorkspace::~AgentWorkspace() {
  // Spools first (they write to the workspaces), then the sink that points at them.
  sink_.reset();
  log_spool_.reset();
  metric_spool_.reset();
}

absl::Status AgentWorkspace::ShipMetrics(const v1::MetricBatch& batch) {
  if (metric_spool_ == nullptr) return metrics_->IngestMetrics(batch);
  KT_RETURN_IF_ERROR(metric_spool_->IngestMetrics(batch));
  return metric_spool_->WaitIfConnected(absl::Seconds(5));
}

absl::StatusOr<std::vector<v1::Metric>> AgentWorkspace::MetricHistory(const std::string& key) {
  return metrics_->MetricHistory(job_, key);
}

absl::Status AgentWorkspace::Drain(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  if (metric_spool_ != nullptr) KT_RETURN_IF_ERROR(metric_spool_->Flush(deadline - absl::Now()));
  if (log_spool_ != nullptr) KT_RETURN_IF_ERROR(log_spool_->Flush(deadline - absl::Now()));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<AgentWorkspace>> OpenAgentWorkspace(
    const v1::InstanceLaunch& launch, const storage::WorkspaceConnectOptions& connect) {
  std::string location =
      launch.workspace().empty() ? storage::DefaultWorkspacePath() : launch.workspace();
  std::unique_ptr<AgentWorkspace> aw(new AgentWorkspace());
  aw->job_ = launch.job().name();
  auto open = [&]() -> absl::StatusOr<std::unique_ptr<storage::Workspace>> {
    absl::StatusOr<std::unique_ptr<storage::Workspace>> ws =
        storage::OpenWorkspace(location, connect);
    if (!ws.ok()) {
      return absl::Status(ws.status().code(), absl::StrCat("cannot open the workspace '", location,
                                                           "': ", ws.status().message()));
    }
    return ws;
  };
  KT_ASSIGN_OR_RETURN(aw->logs_, open());
  KT_ASSIGN_OR_RETURN(aw->metrics_, open());
  if (!storage::IsRemoteWorkspace(location)) {
    aw->sink_ = std::make_unique<WorkspaceSink>(aw->logs_.get(), aw->job_);
    return aw;
  }
  const std::string spool_dir =
      launch.job_dir().empty() ? std::string() : launch.job_dir() + "/workspace-spool";
  storage::SpoolOptions logs;
  logs.name = "log spool";
  if (!spool_dir.empty()) logs.directory = spool_dir + "/logs";
  aw->log_spool_ = std::make_unique<storage::WriteSpool>(aw->logs_.get(), logs);
  storage::SpoolOptions metrics;
  metrics.name = "metric spool";
  if (!spool_dir.empty()) metrics.directory = spool_dir + "/metrics";
  aw->metric_spool_ = std::make_unique<storage::WriteSpool>(aw->metrics_.get(), metrics);
  aw->sink_ = std::make_unique<SpooledSink>(aw->log_spool_.get(), aw->logs_.get(), aw->job_);
  return aw;
}

}  // namespace kubetrain::agent
