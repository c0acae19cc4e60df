// Where the agent's log lines and instance status go.
//
// The agent writes through this small interface so that the supervision code runs (and is tested)
// without the workspace store: production uses WorkspaceSink (agent/workspace_sink.h), tests use
// MemorySink, and a build or run without a workspace uses NullSink.
//
// Thread-safety: implementations must allow calls from several threads; MemorySink locks.
#ifndef KUBETRAIN_AGENT_SINK_H_
#define KUBETRAIN_AGENT_SINK_H_

#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kubetrain/v1/checkpoint.pb.h"
#include "kubetrain/v1/datastore.pb.h"
#include "kubetrain/v1/log.pb.h"
#include "kubetrain/v1/status.pb.h"

namespace kubetrain::agent {

class AgentSink {
 public:
  virtual ~AgentSink() = default;
  // Stores lines; must be idempotent on (job, attempt, instance, sequence) so a failed batch can
  // be sent again.
  virtual absl::Status AppendLogs(absl::Span<const v1::LogLine> lines) = 0;
  // Replaces this instance's status in the job's status.
  virtual absl::Status UpdateInstanceStatus(const v1::InstanceStatus& status) = 0;
  // The job's current status (every instance's view), for an mpi instance > 0 that waits for
  // instance 0's mpirun. Unimplemented when the sink cannot read (then it does not wait).
  virtual absl::StatusOr<v1::JobStatus> ReadJobStatus() {
    return absl::UnimplementedError("this sink cannot read the job's status");
  }
  // Records a complete checkpoint of the job (idempotent per step). Default: discarded.
  virtual absl::Status RecordCheckpoint(const v1::CheckpointRecord& record) {
    (void)record;
    return absl::OkStatus();
  }
  // The workspace's datastores, with their secrets, for staging a job's data
  // (agent/staging/data_stager.h). GetDatastore: NotFound when `name` is not registered. Default:
  // no datastores.
  virtual absl::StatusOr<v1::Datastore> GetDatastore(const std::string& name) {
    return absl::NotFoundError("no datastore '" + name + "' (this agent has no workspace)");
  }
  virtual absl::StatusOr<std::vector<v1::Datastore>> ListDatastores() {
    return std::vector<v1::Datastore>();
  }
  // Records one output upload (idempotent per job, attempt, instance, output). Default: discarded.
  virtual absl::Status RecordOutputUpload(const v1::OutputUpload& upload) {
    (void)upload;
    return absl::OkStatus();
  }
};

// Discards everything (no workspace).
class NullSink : public AgentSink {
 public:
  absl::Status AppendLogs(absl::Span<const v1::LogLine>) override { return absl::OkStatus(); }
  absl::Status UpdateInstanceStatus(const v1::InstanceStatus&) override { return absl::OkStatus(); }
};

// Keeps everything in memory (tests). `fail_appends` makes AppendLogs fail that many times first.
class MemorySink : public AgentSink {
 public:
  absl::Status AppendLogs(absl::Span<const v1::LogLine> lines) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++append_calls_;
    if (fail_appends_ > 0) {
      --fail_appends_;
      return absl::UnavailableError("MemorySink: injected failure");
    }
    for (const v1::LogLine& l : lines) {
      if (seen_.insert({l.job(), l.attempt(), l.instance(), l.sequence()}).second) {
        lines_.push_back(l);
      }
    }
    return absl::OkStatus();
  }
  absl::Status UpdateInstanceStatus(const v1::InstanceStatus& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    statuses_.push_back(status);
    return absl::OkStatus();
  }

  absl::StatusOr<v1::JobStatus> ReadJobStatus() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!job_status_.has_value()) return AgentSink::ReadJobStatus();
    return *job_status_;
  }
  // Makes ReadJobStatus return `status` (tests of the mpi wait).
  void set_job_status(const v1::JobStatus& status) {
    std::lock_guard<std::mutex> lock(mu_);
    job_status_ = status;
  }

  void set_fail_appends(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_appends_ = n;
  }
  std::vector<v1::LogLine> lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  std::vector<v1::InstanceStatus> statuses() const {
    std::lock_guard<std::mutex> lock(mu_);
    return statuses_;
  }
  int append_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return append_calls_;
  }
  absl::Status RecordCheckpoint(const v1::CheckpointRecord& record) override {
    std::lock_guard<std::mutex> lock(mu_);
    checkpoints_.push_back(record);
    return absl::OkStatus();
  }
  std::vector<v1::CheckpointRecord> checkpoints() const {
    std::lock_guard<std::mutex> lock(mu_);
    return checkpoints_;
  }
  absl::StatusOr<v1::Datastore> GetDatastore(const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const v1::Datastore& d : datastores_) {
      if (d.name() == name) return d;
    }
    return absl::NotFoundError("no datastore '" + name + "'");
  }
  absl::StatusOr<std::vector<v1::Datastore>> ListDatastores() override {
    std::lock_guard<std::mutex> lock(mu_);
    return datastores_;
  }
  void add_datastore(const v1::Datastore& d) {
    std::lock_guard<std::mutex> lock(mu_);
    datastores_.push_back(d);
  }
  absl::Status RecordOutputUpload(const v1::OutputUpload& upload) override {
    std::lock_guard<std::mutex> lock(mu_);
    uploads_.push_back(upload);
    return absl::OkStatus();
  }
  std::vector<v1::OutputUpload> uploads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return uploads_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<v1::LogLine> lines_;
  std::set<std::tuple<std::string, int, int, int64_t>> seen_;
  std::vector<v1::InstanceStatus> statuses_;
  std::optional<v1::JobStatus> job_status_;
  std::vector<v1::CheckpointRecord> checkpoints_;
  std::vector<v1::Datastore> datastores_;
  std::vector<v1::OutputUpload> uploads_;
  int fail_appends_ = 0;
  int append_calls_ = 0;
};

}  // namespace kubetrain::agent

#endif  // KUBETRAIN_AGENT_SINK_H_
