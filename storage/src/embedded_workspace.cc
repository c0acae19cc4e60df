// The embedded workspace: a directory with workspace.db (SQLite, WAL). See workspace.h.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "asset_store.h"
#include "kubetrain/common/status_macros.h"
#include "kubetrain/storage/workspace.h"
#include "sqlite.h"

namespace kubetrain::storage {
namespace {

using storage_internal::Db;
using storage_internal::Statement;
using storage_internal::Transaction;

constexpr int kBusyTimeoutMs = 30000;
constexpr int kSchemaVersion = 3;  // 2: records; 3: assets

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS computes (
  name            TEXT PRIMARY KEY NOT NULL,
  target          BLOB NOT NULL,          -- kubetrain.v1.ComputeTarget
  updated_unix_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
  submit_sequence INTEGER PRIMARY KEY AUTOINCREMENT,
  name            TEXT NOT NULL UNIQUE,
  state           INTEGER NOT NULL,        -- kubetrain.v1.JobState
  compute         TEXT NOT NULL,
  experiment      TEXT NOT NULL,
  created_unix_ms INTEGER NOT NULL,
  updated_unix_ms INTEGER NOT NULL,
  record          BLOB NOT NULL            -- kubetrain.v1.JobRecord
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, submit_sequence);
CREATE INDEX IF NOT EXISTS jobs_by_compute ON jobs(compute, submit_sequence);
CREATE TABLE IF NOT EXISTS log_lines (
  id           INTEGER PRIMARY KEY,        -- the ReadLogs cursor
  job          TEXT NOT NULL,
  attempt      INTEGER NOT NULL,
  instance     INTEGER NOT NULL,
  rank         INTEGER NOT NULL,
  stream       INTEGER NOT NULL,
  timestamp_ns INTEGER NOT NULL,
  sequence     INTEGER NOT NULL,
  text         TEXT NOT NULL,
  UNIQUE (job, attempt, instance, sequence)
);
CREATE INDEX IF NOT EXISTS log_lines_by_job ON log_lines(job, id);
-- Run history. One series per (job, metric key) holds the key's summary, updated with each batch,
-- so `job metrics` reads one row per key; points refer to their series.
CREATE TABLE IF NOT EXISTS metric_series (
  id                INTEGER PRIMARY KEY,
  job               TEXT NOT NULL,
  key               TEXT NOT NULL,
  last_value        REAL,                  -- NULL = NaN
  last_step         INTEGER NOT NULL,
  last_timestamp_ms INTEGER NOT NULL,
  min_value         REAL,                  -- NULL = no non-NaN value yet
  max_value         REAL,
  count             INTEGER NOT NULL,
  UNIQUE (job, key)
);
-- Clustered by series (no secondary index to maintain on ingest); n numbers a series' points in
-- delivery order (metric_series.count before the batch + position in the batch).
CREATE TABLE IF NOT EXISTS metric_points (
  series       INTEGER NOT NULL,           -- metric_series.id
  n            INTEGER NOT NULL,
  step         INTEGER NOT NULL,
  timestamp_ms INTEGER NOT NULL,
  value        REAL,                       -- NULL = NaN
  rank         INTEGER NOT NULL,
  PRIMARY KEY (series, n)
) WITHOUT ROWID;
-- Batches already applied, for idempotent ingest (MetricBatch job, source, sequence).
CREATE TABLE IF NOT EXISTS metric_batches (
  job             TEXT NOT NULL,
  source          TEXT NOT NULL,
  sequence        INTEGER NOT NULL,
  applied_unix_ms INTEGER NOT NULL,
  PRIMARY KEY (job, source, sequence)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_params (
  job   TEXT NOT NULL,
  key   TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (job, key)
) WITHOUT ROWID;
-- Small records kept per job (or per workspace when job = ''), by kind: 'datastore' (key: name),
-- 'checkpoint' (key: the zero-padded step), 'upload' (key: attempt/instance/output).
CREATE TABLE IF NOT EXISTS records (
  kind   TEXT NOT NULL,
  job    TEXT NOT NULL,
  key    TEXT NOT NULL,
  record BLOB NOT NULL,
  PRIMARY KEY (kind, job, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_tags (
  job   TEXT NOT NULL,
  key   TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (job, key)
) WITHOUT ROWID;
)sql";

// Per-key aggregate of one batch, merged into metric_series.
struct SeriesDelta {
  double last_value = 0;
  int64_t last_step = 0;
  int64_t last_timestamp_ms = 0;
  double min_value = std::numeric_limits<double>::quiet_NaN();
  double max_value = std::numeric_limits<double>::quiet_NaN();
  int64_t count = 0;
  int64_t series = 0;
  int64_t next_n = 0;  // metric_points.n of this key's next point in the batch
};

int64_t NowUnixMs() { return absl::ToUnixMillis(absl::Now()); }

// mkdir -p with 0700 for the directories it creates.
absl::Status MakeDirs(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("workspace path is empty");
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("workspace ", path, " exists and is not a directory"));
    }
    return absl::OkStatus();
  }
  size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    KT_RETURN_IF_ERROR(MakeDirs(path.substr(0, slash)));
  }
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::PermissionDeniedError(
        absl::StrCat("workspace: cannot create directory ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

class EmbeddedWorkspace : public Workspace {
 public:
  explicit EmbeddedWorkspace(std::unique_ptr<Db> db) : db_(std::move(db)) {}

  absl::Status Init() {
    std::lock_guard<std::mutex> lock(mu_);
    KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), true, "create schema"));
    KT_RETURN_IF_ERROR(db_->Exec(kSchema, "create schema"));
    KT_RETURN_IF_ERROR(db_->Exec(storage_internal::kAssetSchema, "create schema"));
    KT_ASSIGN_OR_RETURN(Statement version,
                        db_->Prepare("PRAGMA user_version", "read schema version"));
    KT_ASSIGN_OR_RETURN(bool row, version.Step("read schema version"));
    int64_t have = row ? version.ColumnInt(0) : 0;
    if (have > kSchemaVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("workspace ", db_->path(), " has schema version ", have,
                       ", newer than this kubetrain (", kSchemaVersion, "); upgrade kubetrain"));
    }
    if (have < kSchemaVersion) {
      KT_RETURN_IF_ERROR(
          db_->Exec(absl::StrCat("PRAGMA user_version=", kSchemaVersion), "write schema version"));
    }
    return tx.Commit("create schema");
  }

  // --- compute targets --------------------------------------------------------------------------
  absl::Status PutCompute(const v1::ComputeTarget& target) override {
    if (target.name().empty()) {
      return absl::InvalidArgumentError("PutCompute: the compute target has no name");
    }
    std::string op = absl::StrCat("put compute \"", target.name(), "\"");
    std::lock_guard<std::mutex> lock(mu_);
    KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), true, op));
    KT_ASSIGN_OR_RETURN(
        Statement st, db_->Prepare("INSERT OR REPLACE INTO computes(name, target, updated_unix_ms)"
                                   " VALUES(?, ?, ?)",
                                   op));
    st.Bind(1, target.name()).BindBlob(2, target.SerializeAsString()).Bind(3, NowUnixMs());
    KT_RETURN_IF_ERROR(st.Run(op));
    return tx.Commit(op);
  }

  absl::StatusOr<v1::ComputeTarget> GetCompute(absl::string_view name) override {
    std::string op = absl::StrCat("get compute \"", name, "\"");
    std::lock_guard<std::mutex> lock(mu_);
    KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), false, op));
    KT_ASSIGN_OR_RETURN(Statement st,
                        db_->Prepare("SELECT target FROM computes WHERE name = ?", op));
    st.Bind(1, name);
    KT_ASSIGN_OR_RETURN(bool row, st.Step(op));
    if (!row) {
      return absl::NotFoundError(absl::StrCat("compute target \"", name,
                                              "\" not found in workspace ", db_->path(),
                                              "; see `kubetrain compute list`"));
    }
    v1::ComputeTarget target;
    KT_RETURN_IF_ERROR(ParseBlob(st.ColumnBlob(0), target, op));
    KT_RETURN_IF_ERROR(tx.Commit(op));
    return target;
  }

  absl::StatusOr<std::vector<v1::ComputeTarget>> ListComputes() override {
    const std::string op = "list computes";
    std::lock_guard<std::mutex> lock(mu_);
    KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), false, op));
    KT_ASSIGN_OR_RETURN(Statement st,
                        db_->Prepare("SELECT name, target FROM computes ORDER BY name", op));
    std::vector<v1::ComputeTarget> out;
    while (true) {
      KT_ASSIGN_OR_RETURN(bool row, st.Step(op));
      if (!row) break;
      v1::ComputeTarget target;
      KT_RETURN_IF_ERROR(ParseBlob(st.ColumnBlob(1), target, op));
      out.push_back(std::move(target));
    }
    KT_RETURN_IF_ERROR(tx.Commit(op));
    return out;
  }

  // --- jobs -------------------------------------------------------------------------------------
  absl::StatusOr<v1::JobRecord> CreateJob(const v1::JobRecord& record) override {
    const std::string& name = record.spec().name();
    if (name.empty()) return absl::InvalidArgumentError("CreateJob: the job spec has no name");
    std::string op = absl::StrCat("create job \"", name, "\"");
    std::lock_guard<std::mutex> lock(mu_);
    KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), true, op));
    {
      KT_ASSIGN_OR_RETURN(Statement exists, db_->Prepare("SELECT 1 FROM jobs WHERE name = ?", op));
      exists.Bind(1, name);
      KT_ASSIGN_OR_RETURN(bool row, exists.Step(op));
      if (row) {
        return absl::AlreadyExistsError(
            absl::StrCat("a job named \"", name, "\" already exists in workspace ", db_->path(),
                         "; choose another name (--name) or let kubetrain generate one"));
      }
    }
    int64_t now = NowUnixMs();
    KT_ASSIGN_OR_RETURN(
        Statement insert,
        db_->Prepare("INSERT INTO jobs(name, state, compute, experiment, created_unix_ms,"
                     " updated_unix_ms, record) VALUES(?, ?, ?, ?, ?, ?, ?)",
                     op));
    int64_t created =
        record.status().created_unix_ms() != 0 ? record.status().created_unix_ms() : now;
    insert.Bind(1, name)
        .Bind(2, static_cast<int64_t>(record.status().state()))
        .Bind(3, record.spec().compute())
        .Bind(4, record.spec().experiment_name())
        .Bind(5, created)
        .Bind(6, now)
        .BindBlob(7, "");
    KT_RETURN_IF_ERROR(insert.Run(op));
    v1::JobRecord stored = record;
    stored.set_submit_sequence(db_->LastInsertRowId());
    KT_RETURN_IF_ERROR(WriteJob(stored, op));
    KT_RETURN_IF_ERROR(tx.Commit(op));
    return stored;
  }

  absl::StatusOr<v1::JobRecord> GetJob(absl::string_view name) override {
    std::string op = absl::StrCat("get job \"", name, "\"");
    std::lock_guard<std::mutex> lock(mu_);
    KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), false, op));
    KT_ASSIGN_OR_RETURN(v1::JobRecord job, ReadJob(name, op));
    KT_RETURN_IF_ERROR(tx.Commit(op));
    return job;
  }

  absl::StatusOr<std::vector<v1::JobRecord>> ListJobs() override {
    const std::string op = "list jobs";
    std::lock_guard<std::mutex> lock(mu_);
    KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), false, op));
    KT_ASSIGN_OR_RETURN(std::vector<v1::JobRecord> jobs, ReadAllJobs(op));
    KT_RETURN_IF_ERROR(tx.Commit(op));
    return jobs;
  }

  absl::StatusOr<v1::JobRecord> UpdateJob(absl::string_view name,
                                          const JobMutation& mutate) override {
    std::string op = absl::StrCat("update job \"", name, "\"");
    std::lock_guard<std::mutex> lock(mu_);
    KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), true, op));
    KT_ASSIGN_OR_RETURN(std::vector<v1::JobRecord> all, ReadAllJobs(op));
    auto it = std::find_if(all.begin(), all.end(),
                           [&](const v1::JobRecord& j) { return j.spec().name() == name; });
    if (it == all.end()) return NotFoundJob(name);
    v1::JobRecord job = *it;
    KT_RETURN_IF_ERROR(mutate(all, job));
    // The key fields are the workspace's, not the mutation's.
    job.mutable_spec()->set_name(std::string(name));
    job.set_submit_sequence(it->submit_sequence());
    KT_RETURN_IF_ERROR(WriteJob(job, op));
    KT_RETURN_IF_ERROR(tx.Commit(op));
    return job;
  }

  absl::Status UpdateInstanceStatus(absl::string_view name,
                                    const v1::InstanceStatus& instance) override {
    std::string op = absl::StrCat("update instance ", instance.index(), " of job \"", name, "\"");
    std::lock_guard<std::mutex> lock(mu_);
    KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), true, op));
    KT_ASSIGN_OR_RETURN(v1::JobRecord job, ReadJob(name, op));
    auto* instances = job.mutable_status()->mutable_instances();
    auto it = std::find_if(instances->begin(), instances->end(), [&](const v1::InstanceStatus& s) {
      return s.index() == instance.index();
    });
    if (it != instances->end()) {
      *it = instance;
    } else {
      *instances->Add() = instance;
      std::sort(instances->begin(), instances->end(),
                [](const auto& a, const auto& b) { return a.index() < b.index(); });
    }
    KT_RETURN_IF_ERROR(WriteJob(job, op));
    return tx.Commit(op);
  }

  // --- logs -------------------------------------------------------------------------------------
  absl::Status AppendLogs(absl::Span<const v1::LogLine> lines) override {
    if (lines.empty()) return absl::OkStatus();
    std::string op =
        absl::StrCat("append ", lines.size(), " log lines of job \"", lines[0].job(), "\"");
    std::lock_guard<std::mutex> lock(mu_);
    KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), true, op));
    KT_ASSIGN_OR_RETURN(
        Statement st,
        db_->Prepare("INSERT OR IGNORE INTO log_lines(job, attempt, instance, rank, stream,"
                     " timestamp_ns, sequence, text) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                     op));
    for (const v1::LogLine& line : lines) {
      st.Reset();
      st.Bind(1, line.job())
          .Bind(2, static_cast<int64_t>(line.attempt()))
          .Bind(3, static_cast<int64_t>(line.instance()))
          .Bind(4, static_cast<int64_t>(line.rank()))
          .Bind(5, static_cast<int64_t>(line.stream()))
          .Bind(6, line.timestamp_ns())
          .Bind(7, line.sequence())
          .Bind(8, line.text());
      KT_RETURN_IF_ERROR(st.Run(op));
    }
    return tx.Commit(op);
  }

  absl::StatusOr<LogPage> ReadLogs(const LogQuery& query) override {
    std::string op = absl::StrCat("read logs of job \"", query.job, "\"");
    std::string sql =
        "SELECT id, attempt, instance, rank, stream, timestamp_ns, sequence, text FROM log_lines"
        " WHERE job = ?1 AND id > ?2";
    if (query.rank >= 0) sql += " AND rank = ?3";
    if (query.attempt >= 0) sql += " AND attempt = ?4";
    sql += " ORDER BY id LIMIT ?5";
    LogPage page;
    page.next_id = query.after_id;
    std::vector<std::pair<int64_t, v1::LogLine>> rows;
    {
      std::lock_guard<std::mutex> lock(mu_);
      KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), false, op));
      KT_ASSIGN_OR_RETURN(Statement st, db_->Prepare(sql, op));
      st.Bind(1, query.job).Bind(2, query.after_id);
      if (query.rank >= 0) st.Bind(3, static_cast<int64_t>(query.rank));
      if (query.attempt >= 0) st.Bind(4, static_cast<int64_t>(query.attempt));
      st.Bind(5, static_cast<int64_t>(std::max(query.limit, 0)));
      while (true) {
        KT_ASSIGN_OR_RETURN(bool row, st.Step(op));
        if (!row) break;
        v1::LogLine line;
        line.set_job(query.job);
        line.set_attempt(static_cast<int32_t>(st.ColumnInt(1)));
        line.set_instance(static_cast<int32_t>(st.ColumnInt(2)));
        line.set_rank(static_cast<int32_t>(st.ColumnInt(3)));
        line.set_stream(static_cast<v1::LogLine::Stream>(st.ColumnInt(4)));
        line.set_timestamp_ns(st.ColumnInt(5));
        line.set_sequence(st.ColumnInt(6));
        line.set_text(st.ColumnText(7));
        rows.emplace_back(st.ColumnInt(0), std::move(line));
      }
      KT_RETURN_IF_ERROR(tx.Commit(op));
    }
    if (!rows.empty()) page.next_id = rows.back().first;
    page.lines = MergeByTimestamp(std::move(rows));
    return page;
  }

  // --- run history ------------------------------------------------------------------------------
  absl::Status IngestMetrics(const v1::MetricBatch& batch) override {
    if (batch.job().empty())
      return absl::InvalidArgumentError("IngestMetrics: the batch has no job");
    for (const v1::Metric& m : batch.metrics()) {
      if (m.key().empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("IngestMetrics: job \"", batch.job(), "\": a metric has an empty key"));
      }
    }
    for (const v1::Param& p : batch.params()) {
      if (p.key().empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("IngestMetrics: job \"", batch.job(), "\": a param has an empty key"));
      }
    }
    for (const v1::Tag& t : batch.tags()) {
      if (t.key().empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("IngestMetrics: job \"", batch.job(), "\": a tag has an empty key"));
      }
    }
    // Aggregate per key outside the lock.
    absl::flat_hash_map<std::string, SeriesDelta> deltas;
    for (const v1::Metric& m : batch.metrics()) {
      auto [it, inserted] = deltas.try_emplace(m.key());
      SeriesDelta& d = it->second;
      if (inserted || std::make_pair(m.step(), m.timestamp_ms()) >=
                          std::make_pair(d.last_step, d.last_timestamp_ms)) {
        d.last_value = m.value();
        d.last_step = m.step();
        d.last_timestamp_ms = m.timestamp_ms();
      }
      if (!std::isnan(m.value())) {
        if (std::isnan(d.min_value) || m.value() < d.min_value) d.min_value = m.value();
        if (std::isnan(d.max_value) || m.value() > d.max_value) d.max_value = m.value();
      }
      ++d.count;
    }
    std::string op = absl::StrCat("ingest metrics of job \"", batch.job(), "\" (source \"",
                                  batch.source(), "\", batch ", batch.sequence(), ")");
    std::lock_guard<std::mutex> lock(mu_);
    KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), true, op));
    if (!batch.source().empty()) {
      KT_ASSIGN_OR_RETURN(Statement mark,
                          db_->Prepare("INSERT OR IGNORE INTO metric_batches(job, source, sequence,"
                                       " applied_unix_ms) VALUES(?, ?, ?, ?)",
                                       op));
      mark.Bind(1, batch.job())
          .Bind(2, batch.source())
          .Bind(3, batch.sequence())
          .Bind(4, NowUnixMs());
      KT_RETURN_IF_ERROR(mark.Run(op));
      if (db_->Changes() == 0) return tx.Commit(op);  // delivered before: stored once
    }
    if (!deltas.empty()) {
      KT_ASSIGN_OR_RETURN(
          Statement upsert,
          db_->Prepare(
              "INSERT INTO metric_series(job, key, last_value, last_step, last_timestamp_ms,"
              " min_value, max_value, count) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
              " ON CONFLICT(job, key) DO UPDATE SET"
              "  last_value = CASE WHEN (?4 > last_step OR (?4 = last_step AND ?5 >= "
              "last_timestamp_ms))"
              "                    THEN ?3 ELSE last_value END,"
              "  last_timestamp_ms = CASE WHEN (?4 > last_step OR (?4 = last_step AND"
              "                    ?5 >= last_timestamp_ms)) THEN ?5 ELSE last_timestamp_ms END,"
              "  last_step = max(last_step, ?4),"
              "  min_value = CASE WHEN ?6 IS NULL THEN min_value WHEN min_value IS NULL THEN ?6"
              "                   ELSE min(min_value, ?6) END,"
              "  max_value = CASE WHEN ?7 IS NULL THEN max_value WHEN max_value IS NULL THEN ?7"
              "                   ELSE max(max_value, ?7) END,"
              "  count = count + ?8"
              " RETURNING id, count",
              op));
      for (auto& [key, d] : deltas) {
        upsert.Reset();
        upsert.Bind(1, batch.job()).Bind(2, key);
        BindValue(upsert, 3, d.last_value);
        upsert.Bind(4, d.last_step).Bind(5, d.last_timestamp_ms);
        BindValue(upsert, 6, d.min_value);
        BindValue(upsert, 7, d.max_value);
        upsert.Bind(8, d.count);
        KT_ASSIGN_OR_RETURN(bool row, upsert.Step(op));
        if (!row) return absl::InternalError(absl::StrCat(op, ": upsert returned no series id"));
        d.series = upsert.ColumnInt(0);
        d.next_n = upsert.ColumnInt(1) - d.count;
        KT_RETURN_IF_ERROR(upsert.Run(op));
      }
      KT_ASSIGN_OR_RETURN(Statement insert,
                          db_->Prepare("INSERT INTO metric_points(series, n, step, timestamp_ms,"
                                       " value, rank) VALUES(?, ?, ?, ?, ?, ?)",
                                       op));
      // Numbered in delivery order, inserted series by series: each series' points append to its
      // end of the clustered table instead of alternating between insertion points.
      std::vector<std::tuple<int64_t, int64_t, const v1::Metric*>> rows;
      rows.reserve(batch.metrics_size());
      for (const v1::Metric& m : batch.metrics()) {
        SeriesDelta& d = deltas.find(m.key())->second;
        rows.emplace_back(d.series, d.next_n++, &m);
      }
      std::sort(rows.begin(), rows.end());
      for (const auto& [series, n, metric] : rows) {
        const v1::Metric& m = *metric;
        insert.Reset();
        insert.Bind(1, series).Bind(2, n).Bind(3, m.step()).Bind(4, m.timestamp_ms());
        BindValue(insert, 5, m.value());
        insert.Bind(6, static_cast<int64_t>(m.rank()));
        KT_RETURN_IF_ERROR(insert.Run(op));
      }
    }
    if (batch.params_size() > 0) {
      KT_ASSIGN_OR_RETURN(
          Statement st,
          db_->Prepare("INSERT OR REPLACE INTO run_params(job, key, value) VALUES(?, ?, ?)", op));
      for (const v1::Param& p : batch.params()) {
        st.Reset();
        st.Bind(1, batch.job()).Bind(2, p.key()).Bind(3, p.value());
        KT_RETURN_IF_ERROR(st.Run(op));
      }
    }
    if (batch.tags_size() > 0) {
      KT_ASSIGN_OR_RETURN(
          Statement st,
          db_->Prepare("INSERT OR REPLACE INTO run_tags(job, key, value) VALUES(?, ?, ?)", op));
      for (const v1::Tag& t : batch.tags()) {
        st.Reset();
        st.Bind(1, batch.job()).Bind(2, t.key()).Bind(3, t.value());
        KT_RETURN_IF_ERROR(st.Run(op));
      }
    }
    return tx.Commit(op);
  }

  absl::StatusOr<std::vector<MetricKeySummary>> MetricSummary(absl::string_view job) override {
    std::string op = absl::StrCat("read metric summary of job \"", job, "\"");
    std::lock_guard<std::mutex> lock(mu_);
    KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), false, op));
    KT_ASSIGN_OR_RETURN(Statement st,
                        db_->Prepare("SELECT key, last_value, last_step, last_timestamp_ms,"
                                     " min_value, max_value, count FROM metric_series"
                                     " WHERE job = ? ORDER BY key",
                                     op));
    st.Bind(1, job);
    std::vector<MetricKeySummary> out;
    while (true) {
      KT_ASSIGN_OR_RETURN(bool row, st.Step(op));
      if (!row) break;
      MetricKeySummary s;
      s.key = st.ColumnText(0);
      s.latest = ColumnValue(st, 1);
      s.latest_step = st.ColumnInt(2);
      s.latest_timestamp_ms = st.ColumnInt(3);
      s.min = ColumnValue(st, 4);
      s.max = ColumnValue(st, 5);
      s.count = st.ColumnInt(6);
      out.push_back(std::move(s));
    }
    KT_RETURN_IF_ERROR(tx.Commit(op));
    return out;
  }

  absl::StatusOr<std::vector<v1::Metric>> MetricHistory(absl::string_view job,
                                                        absl::string_view key) override {
    std::string op = absl::StrCat("read history of metric \"", key, "\" of job \"", job, "\"");
    std::lock_guard<std::mutex> lock(mu_);
    KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), false, op));
    KT_ASSIGN_OR_RETURN(
        Statement st,
        db_->Prepare("SELECT p.step, p.timestamp_ms, p.value, p.rank FROM metric_points p"
                     " JOIN metric_series s ON p.series = s.id WHERE s.job = ? AND s.key = ?"
                     " ORDER BY p.step, p.timestamp_ms, p.n",
                     op));
    st.Bind(1, job).Bind(2, key);
    std::vector<v1::Metric> out;
    while (true) {
      KT_ASSIGN_OR_RETURN(bool row, st.Step(op));
      if (!row) break;
      v1::Metric m;
      m.set_key(std::string(key));
      m.set_step(st.ColumnInt(0));
      m.set_timestamp_ms(st.ColumnInt(1));
      m.set_value(ColumnValue(st, 2));
      m.set_rank(static_cast<int32_t>(st.ColumnInt(3)));
      out.push_back(std::move(m));
    }
    KT_RETURN_IF_ERROR(tx.Commit(op));
    return out;
  }

  absl::StatusOr<std::vector<v1::Param>> ListParams(absl::string_view job) override {
    std::vector<v1::Param> out;
    KT_RETURN_IF_ERROR(ReadKeyValues("run_params", job, [&](std::string k, std::string v) {
      v1::Param p;
      p.set_key(std::move(k));
      p.set_value(std::move(v));
      out.push_back(std::move(p));
    }));
    return out;
  }

  absl::StatusOr<std::vector<v1::Tag>> ListTags(absl::string_view job) override {
    std::vector<v1::Tag> out;
    KT_RETURN_IF_ERROR(ReadKeyValues("run_tags", job, [&](std::string k, std::string v) {
      v1::Tag t;
      t.set_key(std::move(k));
      t.set_value(std::move(v));
      out.push_back(std::move(t));
    }));
    return out;
  }

  // --- datastores -------------------------------------------------------------------------------
  absl::Status PutDatastore(const v1::Datastore& datastore) override {
    if (datastore.name().empty()) {
      return absl::InvalidArgumentError("PutDatastore: the datastore has no name");
    }
    return PutRecord("datastore", "", datastore.name(), datastore);
  }

  absl::StatusOr<v1::Datastore> GetDatastore(absl::string_view name) override {
    KT_ASSIGN_OR_RETURN(std::vector<v1::Datastore> found,
                        ListRecords<v1::Datastore>("datastore", "", name));
    if (found.empty()) {
      return absl::NotFoundError(absl::StrCat("datastore \"", name, "\" not found in workspace ",
                                              db_->path(), "; see `kubetrain datastore list`"));
    }
    return std::move(found.front());
  }

  absl::StatusOr<std::vector<v1::Datastore>> ListDatastores() override {
    return ListRecords<v1::Datastore>("datastore", "", std::nullopt);
  }

  // --- data assets and environments (asset_store.cc) ------------------------------------------
  absl::StatusOr<v1::DataAsset> CreateDataAsset(const v1::DataAsset& asset) override {
    std::lock_guard<std::mutex> lock(mu_);
    return storage_internal::CreateDataAsset(db_.get(), asset);
  }
  absl::StatusOr<v1::DataAsset> GetDataAsset(absl::string_view name,
                                             absl::string_view version) override {
    std::lock_guard<std::mutex> lock(mu_);
    return storage_internal::GetDataAsset(db_.get(), name, version);
  }
  absl::StatusOr<std::vector<v1::DataAsset>> ListDataAssets(absl::string_view name) override {
    std::lock_guard<std::mutex> lock(mu_);
    return storage_internal::ListDataAssets(db_.get(), name);
  }
  absl::StatusOr<v1::DataAsset> SetDataAssetArchived(absl::string_view name,
                                                     absl::string_view version,
                                                     bool archived) override {
    std::lock_guard<std::mutex> lock(mu_);
    return storage_internal::SetDataAssetArchived(db_.get(), name, version, archived);
  }
  absl::StatusOr<v1::EnvironmentAsset> CreateEnvironment(
      const v1::EnvironmentAsset& environment) override {
    std::lock_guard<std::mutex> lock(mu_);
    return storage_internal::CreateEnvironment(db_.get(), environment);
  }
  absl::StatusOr<v1::EnvironmentAsset> GetEnvironment(absl::string_view name,
                                                      absl::string_view version) override {
    std::lock_guard<std::mutex> lock(mu_);
    return storage_internal::GetEnvironment(db_.get(), name, version);
  }
  absl::StatusOr<std::vector<v1::EnvironmentAsset>> ListEnvironments(
      absl::string_view name) override {
    std::lock_guard<std::mutex> lock(mu_);
    return storage_internal::ListEnvironments(db_.get(), name);
  }
  absl::StatusOr<v1::EnvironmentAsset> SetEnvironmentArchived(absl::string_view name,
                                                              absl::string_view version,
                                                              bool archived) override {
    std::lock_guard<std::mutex> lock(mu_);
    return storage_internal::SetEnvironmentArchived(db_.get(), name, version, archived);
  }

  // --- checkpoint and output upload records ----------------------------------------------------
  absl::Status RecordCheckpoint(const v1::CheckpointRecord& record) override {
    if (record.job().empty()) {
      return absl::InvalidArgumentError("RecordCheckpoint: the record has no job");
    }
    if (record.step() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("RecordCheckpoint: step ", record.step(), " is negative"));
    }
    return PutRecord("checkpoint", record.job(), absl::StrFormat("%020d", record.step()), record);
  }

  absl::StatusOr<std::vector<v1::CheckpointRecord>> ListCheckpoints(
      absl::string_view job) override {
    return ListRecords<v1::CheckpointRecord>("checkpoint", job, std::nullopt);
  }

  absl::Status RecordOutputUpload(const v1::OutputUpload& upload) override {
    if (upload.job().empty()) {
      return absl::InvalidArgumentError("RecordOutputUpload: the record has no job");
    }
    return PutRecord(
        "upload", upload.job(),
        absl::StrFormat("%010d/%010d/%s", upload.attempt(), upload.instance(), upload.output()),
        upload);
  }

  absl::StatusOr<std::vector<v1::OutputUpload>> ListOutputUploads(absl::string_view job) override {
    return ListRecords<v1::OutputUpload>("upload", job, std::nullopt);
  }

 private:
  absl::Status PutRecord(absl::string_view kind, absl::string_view job, absl::string_view key,
                         const google::protobuf::MessageLite& record) {
    std::string op = absl::StrCat("put ", kind, " \"", key, "\"",
                                  job.empty() ? "" : absl::StrCat(" of job \"", job, "\""));
    std::lock_guard<std::mutex> lock(mu_);
    KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), true, op));
    KT_ASSIGN_OR_RETURN(
        Statement st,
        db_->Prepare("INSERT OR REPLACE INTO records(kind, job, key, record) VALUES(?, ?, ?, ?)",
                     op));
    st.Bind(1, kind).Bind(2, job).Bind(3, key).BindBlob(4, record.SerializeAsString());
    KT_RETURN_IF_ERROR(st.Run(op));
    return tx.Commit(op);
  }

  // The records of one kind and job ordered by key; only the one with `key` when given.
  template <typename Message>
  absl::StatusOr<std::vector<Message>> ListRecords(absl::string_view kind, absl::string_view job,
                                                   std::optional<absl::string_view> key) {
    std::string op = absl::StrCat("list ", kind, " records",
                                  job.empty() ? "" : absl::StrCat(" of job \"", job, "\""));
    std::lock_guard<std::mutex> lock(mu_);
    KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), false, op));
    KT_ASSIGN_OR_RETURN(
        Statement st,
        db_->Prepare(key.has_value() ? "SELECT record FROM records WHERE kind = ? AND job = ?"
                                       " AND key = ?"
                                     : "SELECT record FROM records WHERE kind = ? AND job = ?"
                                       " ORDER BY key",
                     op));
    st.Bind(1, kind).Bind(2, job);
    if (key.has_value()) st.Bind(3, *key);
    std::vector<Message> out;
    while (true) {
      KT_ASSIGN_OR_RETURN(bool row, st.Step(op));
      if (!row) break;
      Message m;
      KT_RETURN_IF_ERROR(ParseBlob(st.ColumnBlob(0), m, op));
      out.push_back(std::move(m));
    }
    KT_RETURN_IF_ERROR(tx.Commit(op));
    return out;
  }

  static void BindValue(Statement& st, int index, double value) {
    if (std::isnan(value)) {
      st.BindNull(index);
    } else {
      st.BindDouble(index, value);
    }
  }
  static double ColumnValue(const Statement& st, int index) {
    return st.ColumnIsNull(index) ? std::numeric_limits<double>::quiet_NaN()
                                  : st.ColumnDouble(index);
  }

  absl::Status ReadKeyValues(absl::string_view table, absl::string_view job,
                             const std::function<void(std::string, std::string)>& emit) {
    std::string op = absl::StrCat("read ", table, " of job \"", job, "\"");
    std::lock_guard<std::mutex> lock(mu_);
    KT_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(db_.get(), false, op));
    KT_ASSIGN_OR_RETURN(Statement st, db_->Prepare(absl::StrCat("SELECT key, value FROM ", table,
                                                                " WHERE job = ? ORDER BY key"),
                                                   op));
    st.Bind(1, job);
    while (true) {
      KT_ASSIGN_OR_RETURN(bool row, st.Step(op));
      if (!row) break;
      emit(st.ColumnText(0), st.ColumnText(1));
    }
    return tx.Commit(op);
  }

  // Orders one page: (attempt, instance, sequence) order within each instance, and the instances
  // merged by timestamp (earliest head first; ties by attempt, instance).
  // Takes `rows` by value and moves the lines out (clang-tidy 14 misses moves through the
  // structured binding below).
  // NOLINTBEGIN(performance-unnecessary-value-param)
  static std::vector<v1::LogLine> MergeByTimestamp(
      std::vector<std::pair<int64_t, v1::LogLine>> rows) {
    // NOLINTEND(performance-unnecessary-value-param)
    std::map<std::pair<int32_t, int32_t>, std::vector<v1::LogLine>> groups;
    for (auto& [id, line] : rows) {
      groups[{line.attempt(), line.instance()}].push_back(std::move(line));
    }
    std::vector<std::pair<std::vector<v1::LogLine>*, size_t>> heads;
    for (auto& [key, lines] : groups) {
      std::stable_sort(lines.begin(), lines.end(), [](const v1::LogLine& a, const v1::LogLine& b) {
        return a.sequence() < b.sequence();
      });
      heads.emplace_back(&lines, 0);
    }
    std::vector<v1::LogLine> out;
    out.reserve(rows.size());
    while (true) {
      int best = -1;
      for (size_t i = 0; i < heads.size(); ++i) {
        if (heads[i].second >= heads[i].first->size()) continue;
        if (best < 0 || (*heads[i].first)[heads[i].second].timestamp_ns() <
                            (*heads[best].first)[heads[best].second].timestamp_ns()) {
          best = static_cast<int>(i);
        }
      }
      if (best < 0) break;
      out.push_back(std::move((*heads[best].first)[heads[best].second++]));
    }
    return out;
  }

  absl::Status NotFoundJob(absl::string_view name) const {
    return absl::NotFoundError(absl::StrCat("job \"", name, "\" not found in workspace ",
                                            db_->path(), "; see `kubetrain job list`"));
  }

  template <typename Message>
  absl::Status ParseBlob(const std::string& blob, Message& message, absl::string_view op) const {
    if (!message.ParseFromString(blob)) {
      return absl::DataLossError(absl::StrCat("workspace ", db_->path(), ": ", op,
                                              ": stored record does not parse as ",
                                              message.GetTypeName()));
    }
    return absl::OkStatus();
  }

  // Within a transaction (mu_ held).
  absl::StatusOr<v1::JobRecord> ReadJob(absl::string_view name, absl::string_view op) {
    KT_ASSIGN_OR_RETURN(
        Statement st, db_->Prepare("SELECT submit_sequence, record FROM jobs WHERE name = ?", op));
    st.Bind(1, name);
    KT_ASSIGN_OR_RETURN(bool row, st.Step(op));
    if (!row) return NotFoundJob(name);
    v1::JobRecord job;
    KT_RETURN_IF_ERROR(ParseBlob(st.ColumnBlob(1), job, op));
    job.set_submit_sequence(st.ColumnInt(0));
    return job;
  }

  absl::StatusOr<std::vector<v1::JobRecord>> ReadAllJobs(absl::string_view op) {
    KT_ASSIGN_OR_RETURN(
        Statement st,
        db_->Prepare("SELECT submit_sequence, record FROM jobs ORDER BY submit_sequence", op));
    std::vector<v1::JobRecord> jobs;
    while (true) {
      KT_ASSIGN_OR_RETURN(bool row, st.Step(op));
      if (!row) break;
      v1::JobRecord job;
      KT_RETURN_IF_ERROR(ParseBlob(st.ColumnBlob(1), job, op));
      job.set_submit_sequence(st.ColumnInt(0));
      jobs.push_back(std::move(job));
    }
    return jobs;
  }

  absl::Status WriteJob(const v1::JobRecord& job, absl::string_view op) {
    KT_ASSIGN_OR_RETURN(Statement st,
                        db_->Prepare("UPDATE jobs SET state = ?, compute = ?, experiment = ?,"
                                     " updated_unix_ms = ?, record = ? WHERE name = ?",
                                     op));
    st.Bind(1, static_cast<int64_t>(job.status().state()))
        .Bind(2, job.spec().compute())
        .Bind(3, job.spec().experiment_name())
        .Bind(4, NowUnixMs())
        .BindBlob(5, job.SerializeAsString())
        .Bind(6, job.spec().name());
    KT_RETURN_IF_ERROR(st.Run(op));
    if (db_->Changes() != 1) return NotFoundJob(job.spec().name());
    return absl::OkStatus();
  }

  std::mutex mu_;
  std::unique_ptr<Db> db_;
};

}  // namespace

std::string DefaultWorkspacePath() {
  const char* env = std::getenv("KUBETRAIN_WORKSPACE");
  if (env != nullptr && env[0] != '\0') return env;
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] != '\0') return absl::StrCat(home, "/.kubetrain");
  return ".kubetrain";
}

absl::StatusOr<std::unique_ptr<Workspace>> OpenEmbeddedWorkspace(const std::string& path) {
  KT_RETURN_IF_ERROR(MakeDirs(path));
  std::string db_path = absl::StrCat(path, "/workspace.db");
  // Several processes opening a fresh workspace at once race to switch it to WAL and create the
  // schema; SQLite reports some of those conflicts as BUSY without waiting in its busy handler.
  // Retry the whole open, with backoff, within the busy timeout.
  absl::Time deadline = absl::Now() + absl::Milliseconds(kBusyTimeoutMs);
  absl::Duration backoff = absl::Milliseconds(2);
  while (true) {
    absl::StatusOr<std::unique_ptr<Db>> db = Db::Open(db_path, kBusyTimeoutMs);
    absl::Status status = db.status();
    // It holds datastore secrets; SQLite gives the -wal and -shm files the database's mode.
    if (db.ok()) chmod(db_path.c_str(), 0600);
    if (db.ok()) {
      auto workspace = std::make_unique<EmbeddedWorkspace>(std::move(*db));
      status = workspace->Init();
      if (status.ok()) return workspace;
    }
    if (status.code() != absl::StatusCode::kUnavailable || absl::Now() >= deadline) return status;
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Milliseconds(100));
  }
}

}  // namespace kubetrain::storage
