// Workspace: where jobs, their status, logs, metrics and checkpoint records live.
//
// One interface, two implementations: the embedded workspace (a directory holding SQLite in WAL
// mode plus files; default ~/.kubetrain) and the gRPC client of `kubetrain workspace serve`
// (kubetrain/storage/grpc_workspace.h), which behaves the same from another machine. OpenWorkspace
// there picks one from a location ("DIR" or "grpc://host:port").
// The launcher, every kubetrain-worker and the CLI of one machine may open the same embedded
// workspace at once from different processes; every method is a single transaction.
//
// Ownership: OpenWorkspace returns a uniquely owned object. Thread-safety: all methods may be
// called concurrently from several threads of one process.
#ifndef KUBETRAIN_STORAGE_WORKSPACE_H_
#define KUBETRAIN_STORAGE_WORKSPACE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "kubetrain/v1/asset.pb.h"
#include "kubetrain/v1/checkpoint.pb.h"
#include "kubetrain/v1/compute.pb.h"
#include "kubetrain/v1/datastore.pb.h"
#include "kubetrain/v1/job_record.pb.h"
#include "kubetrain/v1/log.pb.h"
#include "kubetrain/v1/metric.pb.h"
#include "kubetrain/v1/status.pb.h"

namespace kubetrain::storage {

// Which log lines to read. Lines come back in (instance, sequence) order per instance and, across
// instances, ordered by timestamp.
struct LogQuery {
  std::string job;
  int rank = -1;         // only this rank; -1 = all ranks and agent lines
  int attempt = -1;      // only this attempt; -1 = all
  int64_t after_id = 0;  // only lines stored after this cursor (see LogPage::next_id)
  int limit = 10000;     // at most this many lines
};

struct LogPage {
  std::vector<v1::LogLine> lines;
  int64_t next_id = 0;  // pass as after_id to continue where this page ended
};

// What WatchJob follows.
struct WatchQuery {
  std::string job;
  int rank = -1;         // log lines of this rank only; -1 = all ranks and agent lines
  int attempt = -1;      // -1 = all attempts
  int64_t after_id = 0;  // log lines stored after this cursor (0: from the first line)
  bool logs = true;      // false: the record only
  // How often the default (polling) implementation looks for changes, and how often an update
  // is delivered when nothing changed (a heartbeat, so that the caller may stop).
  int poll_ms = 20;
  int heartbeat_ms = 250;
};

// One update of WatchJob. Lines (if any) come before the record (if any) of the same update.
struct JobUpdate {
  std::optional<v1::JobRecord> job;  // set when the record changed (and on the first update)
  std::vector<v1::LogLine> lines;    // new lines, in ReadLogs order
  int64_t next_id = 0;               // the log cursor after these lines
  bool final = false;                // the job ended: `job` is its terminal record, no more follow
};

// One metric key of a run: what `kubetrain job metrics` shows per key. "Latest" is the point with
// the highest step, ties broken by the later timestamp, then by the later delivery (as MLflow's
// latest metric). NaN values are stored and counted but never become min or max (both NaN when
// every value was NaN).
struct MetricKeySummary {
  std::string key;
  double latest = 0;
  int64_t latest_step = 0;
  int64_t latest_timestamp_ms = 0;
  double min = 0;
  double max = 0;
  int64_t count = 0;  // points stored under this key
};

class Workspace {
 public:
  virtual ~Workspace() = default;

  // --- compute targets (the `local` target always exists) ---------------------------------------
  virtual absl::Status PutCompute(const v1::ComputeTarget& target) = 0;  // create or replace
  virtual absl::StatusOr<v1::ComputeTarget> GetCompute(absl::string_view name) = 0;  // NotFound
  virtual absl::StatusOr<std::vector<v1::ComputeTarget>> ListComputes() = 0;

  // --- jobs -----------------------------------------------------------------------------------
  // Stores a new job; assigns record.submit_sequence. AlreadyExists when the name is taken.
  virtual absl::StatusOr<v1::JobRecord> CreateJob(const v1::JobRecord& record) = 0;
  virtual absl::StatusOr<v1::JobRecord> GetJob(absl::string_view name) = 0;  // NotFound
  virtual absl::StatusOr<std::vector<v1::JobRecord>> ListJobs() = 0;         // in submit order

  // Atomically reads the job, lets `mutate` change it and writes it back. If `mutate` returns an
  // error nothing is written and that error is returned. All records of the workspace are passed
  // read-only in `all_jobs` so that a scheduling decision (does this job fit now, is it at the head
  // of the queue) is made under the same lock that records it.
  // `mutate` runs inside the transaction: it must not call back into the Workspace (that would
  // deadlock); read what it needs before calling UpdateJob.
  // Over gRPC the mutation runs in the client on a snapshot and is committed only if nothing it
  // may depend on changed (else it runs again on a new snapshot): the job's whole record and the
  // other jobs' records except their per-instance status (status.instances, which their agents
  // update as ranks start and end; in `all_jobs` it may be a moment old). `mutate` may therefore
  // run more than once: it must only compute `job` from its arguments.
  using JobMutation =
      std::function<absl::Status(const std::vector<v1::JobRecord>& all_jobs, v1::JobRecord& job)>;
  virtual absl::StatusOr<v1::JobRecord> UpdateJob(absl::string_view name,
                                                  const JobMutation& mutate) = 0;

  // Replaces one instance's status inside the job's current status (the worker agent's view).
  virtual absl::Status UpdateInstanceStatus(absl::string_view job,
                                            const v1::InstanceStatus& instance) = 0;

  // Follows a job: calls `on_update` with the job's record whenever it changes (first with the
  // current one) and with its log lines as they are stored, until the job is in a terminal state
  // (the last update has `final` set and comes after every line stored before the end), or until
  // `on_update` returns false. Every `heartbeat_ms` without news `on_update` gets an empty update.
  // NotFound when the job does not exist. The default implementation polls GetJob and ReadLogs
  // every `poll_ms`; the gRPC client gets the updates from the server as a stream.
  virtual absl::Status WatchJob(const WatchQuery& query,
                                const std::function<bool(const JobUpdate&)>& on_update);

  // A credential that lets an agent write job `job` (and nothing else) to this workspace: the
  // workspace server's per-job token. Empty when the workspace needs none (embedded). The token is
  // a secret: pass it in an environment variable, never on a command line or in a log.
  virtual absl::StatusOr<std::string> IssueJobToken(absl::string_view job);

  // --- logs -----------------------------------------------------------------------------------
  // Idempotent: a line with the same (job, attempt, instance, sequence) is stored once.
  virtual absl::Status AppendLogs(absl::Span<const v1::LogLine> lines) = 0;
  virtual absl::StatusOr<LogPage> ReadLogs(const LogQuery& query) = 0;

  // --- run history: metrics, params, tags (one run per job) -----------------------------------
  // Stores a batch in one transaction. Idempotent: when batch.source is set, a batch with the same
  // (job, source, sequence) as one already stored is acknowledged (OK) and not stored again, so a
  // sender retries a batch whose acknowledgement it did not see. A batch without a source is always
  // stored. Params and tags are key/value maps per job: a later value replaces an earlier one.
  // InvalidArgument when batch.job is empty or a metric, param or tag has an empty key. The job
  // need not exist (an agent may ship before the launcher's record is readable).
  virtual absl::Status IngestMetrics(const v1::MetricBatch& batch) = 0;
  // Several batches, in order, each as IngestMetrics (the gRPC client sends them in one stream).
  // Stops at the first error.
  virtual absl::Status IngestMetricBatches(absl::Span<const v1::MetricBatch> batches);
  // One entry per metric key of the job, ordered by key; empty when it logged none.
  virtual absl::StatusOr<std::vector<MetricKeySummary>> MetricSummary(absl::string_view job) = 0;
  // Every point of one key, in (step, timestamp, delivery) order; empty when there is none.
  virtual absl::StatusOr<std::vector<v1::Metric>> MetricHistory(absl::string_view job,
                                                                absl::string_view key) = 0;
  // The job's params / tags, ordered by key.
  virtual absl::StatusOr<std::vector<v1::Param>> ListParams(absl::string_view job) = 0;
  virtual absl::StatusOr<std::vector<v1::Tag>> ListTags(absl::string_view job) = 0;

  // --- datastores -------------------------------------------------------------------------------
  // Create or replace by name. The stored record includes its secrets (account key, SAS token):
  // the embedded workspace keeps them in its 0600 database; callers never print them.
  virtual absl::Status PutDatastore(const v1::Datastore& datastore) = 0;
  virtual absl::StatusOr<v1::Datastore> GetDatastore(absl::string_view name) = 0;  // NotFound
  virtual absl::StatusOr<std::vector<v1::Datastore>> ListDatastores() = 0;  // ordered by name

  // --- registered assets: data assets and environments -----------------------------------------
  // Stores version asset.version() of asset.name(). Versions are immutable: when that name:version
  // exists with the same content (every field but archived, created_unix_ms and source_file) the
  // call succeeds and returns the stored version unchanged (re-running a create is harmless); with
  // other content it fails with AlreadyExists naming the existing version. The workspace sets
  // created_unix_ms and clears archived. InvalidArgument when the name or version is empty.
  virtual absl::StatusOr<v1::DataAsset> CreateDataAsset(const v1::DataAsset& asset) = 0;
  // One version, archived or not. NotFound when there is no such name:version.
  virtual absl::StatusOr<v1::DataAsset> GetDataAsset(absl::string_view name,
                                                     absl::string_view version) = 0;
  // Every version of `name` (every asset when `name` is empty), archived ones included, ordered by
  // name, then by version as CompareAssetVersions orders them (so the last one of a name is its
  // highest version). Empty when there is none.
  virtual absl::StatusOr<std::vector<v1::DataAsset>> ListDataAssets(absl::string_view name) = 0;
  // Archives (true) or restores (false) one version; returns it. NotFound as GetDataAsset.
  virtual absl::StatusOr<v1::DataAsset> SetDataAssetArchived(absl::string_view name,
                                                             absl::string_view version,
                                                             bool archived) = 0;
  // The same four for environments.
  virtual absl::StatusOr<v1::EnvironmentAsset> CreateEnvironment(
      const v1::EnvironmentAsset& environment) = 0;
  virtual absl::StatusOr<v1::EnvironmentAsset> GetEnvironment(absl::string_view name,
                                                              absl::string_view version) = 0;
  virtual absl::StatusOr<std::vector<v1::EnvironmentAsset>> ListEnvironments(
      absl::string_view name) = 0;
  virtual absl::StatusOr<v1::EnvironmentAsset> SetEnvironmentArchived(absl::string_view name,
                                                                      absl::string_view version,
                                                                      bool archived) = 0;

  // --- checkpoint and output upload records ----------------------------------------------------
  // Idempotent: one record per (job, step); a later record of the same step replaces it.
  // InvalidArgument when record.job is empty. The job need not exist.
  virtual absl::Status RecordCheckpoint(const v1::CheckpointRecord& record) = 0;
  // The job's checkpoint records, ascending by step; empty when there are none.
  virtual absl::StatusOr<std::vector<v1::CheckpointRecord>> ListCheckpoints(
      absl::string_view job) = 0;
  // Idempotent: one record per (job, attempt, instance, output); a later one replaces it.
  virtual absl::Status RecordOutputUpload(const v1::OutputUpload& upload) = 0;
  // The job's upload records in (attempt, instance, output) order.
  virtual absl::StatusOr<std::vector<v1::OutputUpload>> ListOutputUploads(
      absl::string_view job) = 0;
};

// The order of asset versions: runs of digits compare as numbers, other characters one by one
// ("2" < "10" < "10a" < "11"; "1.9" < "1.10"). Returns <0, 0 or >0. "Highest" version means last
// in this order.
int CompareAssetVersions(absl::string_view a, absl::string_view b);

// Opens (creating if needed) the embedded workspace in directory `path`.
//
// The directory is created with mode 0700 (parents as needed) and holds `workspace.db`, an SQLite
// database in WAL mode. Several processes may open the same directory at once; writers wait for
// each other up to a busy timeout (30 s) and then fail with Unavailable. Every method is one
// transaction; UpdateJob takes the write lock before reading (BEGIN IMMEDIATE), so its
// read-modify-write is atomic across processes. Errors name the database path and the operation.
//
// The database file is created with mode 0600 (it holds datastore secrets).
//
// The returned object holds one SQLite connection guarded by a mutex. Do not use it across fork():
// a child process opens its own.
//
// The store keeps only what was put in it: the `local` target that exists on every workspace
// without being attached is supplied by the launcher (launcher/compute/targets.h), which also
// detects this machine's GPUs.
absl::StatusOr<std::unique_ptr<Workspace>> OpenEmbeddedWorkspace(const std::string& path);

// The default workspace location: $KUBETRAIN_WORKSPACE when set and non-empty, else
// $HOME/.kubetrain (else ./.kubetrain when HOME is unset).
std::string DefaultWorkspacePath();

}  // namespace kubetrain::storage

#endif  // KUBETRAIN_STORAGE_WORKSPACE_H_
