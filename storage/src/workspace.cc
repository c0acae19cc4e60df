// The Workspace methods every implementation shares unless it has a better way (workspace.h).
#include "kubetrain/storage/workspace.h"

#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "deterministic.h"
#include "kubetrain/common/status_macros.h"
#include "kubetrain/v1/job_state.h"

namespace kubetrain::storage {

absl::Status Workspace::IngestMetricBatches(absl::Span<const v1::MetricBatch> batches) {
  for (const v1::MetricBatch& b : batches) KT_RETURN_IF_ERROR(IngestMetrics(b));
  return absl::OkStatus();
}

absl::StatusOr<std::string> Workspace::IssueJobToken(absl::string_view) { return std::string(); }

absl::Status Workspace::WatchJob(const WatchQuery& query,
                                 const std::function<bool(const JobUpdate&)>& on_update) {
  int64_t cursor = query.after_id;
  std::string last_record;  // serialized; empty before the first
  absl::Time last_sent = absl::Now();
  // Delivers every line stored after `cursor`, a page per update; false when the caller stopped.
  auto drain = [&](bool* stopped) -> absl::Status {
    if (!query.logs) return absl::OkStatus();
    while (true) {
      LogQuery q;
      q.job = query.job;
      q.rank = query.rank;
      q.attempt = query.attempt;
      q.after_id = cursor;
      KT_ASSIGN_OR_RETURN(LogPage page, ReadLogs(q));
      if (page.lines.empty()) return absl::OkStatus();
      cursor = page.next_id;
      JobUpdate u;
      u.lines = std::move(page.lines);
      u.next_id = cursor;
      last_sent = absl::Now();
      if (!on_update(u)) {
        *stopped = true;
        return absl::OkStatus();
      }
    }
  };
  while (true) {
    KT_ASSIGN_OR_RETURN(v1::JobRecord job, GetJob(query.job));
    bool stopped = false;
    KT_RETURN_IF_ERROR(drain(&stopped));
    if (stopped) return absl::OkStatus();
    const bool terminal = v1::IsTerminal(job.status().state());
    if (terminal) {
      KT_RETURN_IF_ERROR(drain(&stopped));  // lines stored just before the end
      if (stopped) return absl::OkStatus();
      JobUpdate u;
      u.job = std::move(job);
      u.next_id = cursor;
      u.final = true;
      on_update(u);
      return absl::OkStatus();
    }
    std::string serialized = storage_internal::SerializeDeterministic(job);
    if (serialized != last_record || last_record.empty()) {
      last_record = std::move(serialized);
      JobUpdate u;
      u.job = std::move(job);
      u.next_id = cursor;
      last_sent = absl::Now();
      if (!on_update(u)) return absl::OkStatus();
    } else if (absl::Now() - last_sent >= absl::Milliseconds(query.heartbeat_ms)) {
      JobUpdate u;
      u.next_id = cursor;
      last_sent = absl::Now();
      if (!on_update(u)) return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(query.poll_ms));
  }
}

}  // namespace kubetrain::storage
