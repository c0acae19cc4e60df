// WorkspaceSink: the AgentSink that stores the agent's log lines and instance status in a
// kubetrain workspace (storage/include/kubetrain/storage/workspace.h).
//
// OpenWorkspaceSink picks the implementation from the location: a directory is the embedded
// workspace (SQLite + files, shared with the launcher and the CLI); "grpc://..." is not supported
// yet. Only built when kubetrain::storage exists (KUBETRAIN_WORKER_HAVE_STORAGE).
//
// Ownership: owns the Workspace. Thread-safety: as the Workspace (all methods thread-safe).
#ifndef KUBETRAIN_WORKER_WORKSPACE_SINK_H_
#define KUBETRAIN_WORKER_WORKSPACE_SINK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kubetrain/storage/workspace.h"
#include "worker/sink.h"

namespace kubetrain::worker {

class WorkspaceSink : public AgentSink {
 public:
  WorkspaceSink(std::unique_ptr<storage::Workspace> workspace, std::string job)
      : workspace_(std::move(workspace)), job_(std::move(job)) {}

  absl::Status AppendLogs(absl::Span<const v1::LogLine> lines) override {
    return workspace_->AppendLogs(lines);
  }
  absl::Status UpdateInstanceStatus(const v1::InstanceStatus& status) override {
    return workspace_->UpdateInstanceStatus(job_, status);
  }
  absl::StatusOr<v1::JobStatus> ReadJobStatus() override {
    absl::StatusOr<v1::JobRecord> job = workspace_->GetJob(job_);
    if (!job.ok()) return job.status();
    return job->status();
  }
  absl::Status RecordCheckpoint(const v1::CheckpointRecord& record) override {
    return workspace_->RecordCheckpoint(record);
  }
  storage::Workspace* workspace() { return workspace_.get(); }

 private:
  std::unique_ptr<storage::Workspace> workspace_;
  std::string job_;
};

// Opens the workspace at `location` (empty: storage::DefaultWorkspacePath()) for job `job`.
absl::StatusOr<std::unique_ptr<WorkspaceSink>> OpenWorkspaceSink(const std::string& location,
                                                                 const std::string& job);

}  // namespace kubetrain::worker

#endif  // KUBETRAIN_WORKER_WORKSPACE_SINK_H_
