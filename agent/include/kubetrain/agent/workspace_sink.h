// The agent's connection to its workspace: where its log lines, instance status and metric
// batches go, and where it reads the job's status and a metric's history back.
//
// OpenAgentWorkspace picks the implementation from the plan's workspace location:
//   - a directory: the embedded workspace (SQLite + files, shared with the launcher and the CLI),
//     written directly; the metrics over a connection of their own (metric batches never wait
//     behind log batches);
//   - grpc://HOST:PORT or grpcs://HOST:PORT: the workspace server, with the job's token. Writes go
//     through two WriteSpools (kubetrain/storage/spool.h), one for logs and status and one for
//     metrics (checkpoint records go with the logs), each over its own connection: a lost
//     connection loses nothing (memory-bounded,
//     spilling to <instance dir>/workspace-spool/ past a size, delivered again on reconnect and
//     stored once by the server). Drain() at the end waits for them to be delivered.
// Only built when kubetrain::storage exists (KUBETRAIN_WORKER_HAVE_STORAGE).
//
// Ownership: AgentWorkspace owns its workspaces and spools. Thread-safety: as the Workspace (all
// methods thread-safe).
#ifndef KUBETRAIN_AGENT_WORKSPACE_SINK_H_
#define KUBETRAIN_AGENT_WORKSPACE_SINK_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kubetrain/agent/sink.h"
#include "kubetrain/storage/grpc_workspace.h"
#include "kubetrain/storage/spool.h"
#include "kubetrain/storage/workspace.h"
#include "kubetrain/v1/launch.pb.h"

namespace kubetrain::agent {

// An AgentSink writing straight to a Workspace (the embedded one).
class WorkspaceSink : public AgentSink {
 public:
  WorkspaceSink(storage::Workspace* workspace, std::string job)
      : workspace_(workspace), job_(std::move(job)) {}

  absl::Status AppendLogs(absl::Span<const v1::LogLine> lines) override {
    return workspace_->AppendLogs(lines);
  }
  absl::Status UpdateInstanceStatus(const v1::InstanceStatus& status) override {
    return workspace_->UpdateInstanceStatus(job_, status);
  }
  absl::StatusOr<v1::JobStatus> ReadJobStatus() override;
  absl::Status RecordCheckpoint(const v1::CheckpointRecord& record) override {
    return workspace_->RecordCheckpoint(record);
  }
  absl::StatusOr<v1::Datastore> GetDatastore(const std::string& name) override {
    return workspace_->GetDatastore(name);
  }
  absl::StatusOr<std::vector<v1::Datastore>> ListDatastores() override {
    return workspace_->ListDatastores();
  }
  absl::Status RecordOutputUpload(const v1::OutputUpload& upload) override {
    return workspace_->RecordOutputUpload(upload);
  }

 private:
  storage::Workspace* workspace_;
  std::string job_;
};

// An AgentSink whose writes go through a WriteSpool (a workspace server); reads go straight to it.
class SpooledSink : public AgentSink {
 public:
  SpooledSink(storage::WriteSpool* spool, storage::Workspace* workspace, std::string job)
      : spool_(spool), workspace_(workspace), job_(std::move(job)) {}

  absl::Status AppendLogs(absl::Span<const v1::LogLine> lines) override {
    return spool_->AppendLogs(lines);
  }
  absl::Status UpdateInstanceStatus(const v1::InstanceStatus& status) override {
    return spool_->UpdateInstanceStatus(job_, status);
  }
  absl::Status RecordCheckpoint(const v1::CheckpointRecord& record) override {
    return spool_->RecordCheckpoint(record);
  }
  absl::StatusOr<v1::JobStatus> ReadJobStatus() override;
  // Datastores are read, and the (rare, end-of-job) upload records written, straight through.
  absl::StatusOr<v1::Datastore> GetDatastore(const std::string& name) override {
    return workspace_->GetDatastore(name);
  }
  absl::StatusOr<std::vector<v1::Datastore>> ListDatastores() override {
    return workspace_->ListDatastores();
  }
  absl::Status RecordOutputUpload(const v1::OutputUpload& upload) override {
    return workspace_->RecordOutputUpload(upload);
  }

 private:
  storage::WriteSpool* spool_;
  storage::Workspace* workspace_;
  std::string job_;
};

class AgentWorkspace {
 public:
  ~AgentWorkspace();

  AgentSink* sink() { return sink_.get(); }
  // Stores one metric batch (MlflowEndpoint's shipper). Remote: enqueued, and waited for (up to a
  // few seconds) while the server is reachable, so that what a rank logged is in the history it
  // reads back.
  absl::Status ShipMetrics(const v1::MetricBatch& batch);
  // The stored points of one metric key of the job.
  absl::StatusOr<std::vector<v1::Metric>> MetricHistory(const std::string& key);
  // Waits until every write made so far is stored (remote), at most `timeout`; OK at once for a
  // directory. DeadlineExceeded when writes are still pending (they stay in the spool directory).
  absl::Status Drain(absl::Duration timeout);

 private:
  friend absl::StatusOr<std::unique_ptr<AgentWorkspace>> OpenAgentWorkspace(
      const v1::InstanceLaunch&, const storage::WorkspaceConnectOptions&);
  AgentWorkspace() = default;

  std::string job_;
  std::unique_ptr<storage::Workspace> logs_;           // logs, status, job reads
  std::unique_ptr<storage::Workspace> metrics_;        // metric batches and history
  std::unique_ptr<storage::WriteSpool> log_spool_;     // remote only
  std::unique_ptr<storage::WriteSpool> metric_spool_;  // remote only
  std::unique_ptr<AgentSink> sink_;
};

// Opens the workspace of `launch` (its `workspace`; empty: storage::DefaultWorkspacePath()) for its
// job. `connect` holds the credentials for a workspace server (ignored for a directory).
absl::StatusOr<std::unique_ptr<AgentWorkspace>> OpenAgentWorkspace(
    const v1::InstanceLaunch& launch, const storage::WorkspaceConnectOptions& connect);

}  // namespace kubetrain::agent

#endif  // KUBETRAIN_AGENT_WORKSPACE_SINK_H_
