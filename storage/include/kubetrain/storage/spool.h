// WriteSpool: an agent's writes to a workspace that may be out of reach for a while.
//
// AppendLogs, IngestMetrics, UpdateInstanceStatus and RecordCheckpoint only enqueue; a background
// thread delivers the queue in order to the target workspace (consecutive log writes in one
// AppendLogs of up to `max_lines_per_send` lines, consecutive metric batches in one
// IngestMetricBatches). When a delivery fails with an error that may pass (Unavailable,
// DeadlineExceeded, Aborted, ...), the same writes are sent again, with backoff, until they are
// acknowledged: the workspace stores them once, because log lines are idempotent by (job, attempt,
// instance, sequence) and metric batches by (job, source, sequence). A write the workspace rejects
// for good (InvalidArgument, PermissionDenied, NotFound, ...) is dropped with an error in the log.
//
// Bounded: pending writes stay in memory up to `memory_bytes`; past that, new ones are appended
// to segment files in `directory` (in order; memory is refilled from them as it drains). Past
// `max_disk_bytes` on disk, new writes are dropped and counted. Segments left in `directory` by a
// previous spool (an agent that ended before delivering) are delivered first; at destruction the
// spool moves what it could not deliver to `directory` for the next one.
//
// Ownership: borrows the target, which must outlive the spool. Thread-safety: every method may be
// called from any thread.
#ifndef KUBETRAIN_STORAGE_SPOOL_H_
#define KUBETRAIN_STORAGE_SPOOL_H_

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "kubetrain/storage/workspace.h"

namespace kubetrain::storage {

struct SpoolOptions {
  std::string directory;                    // spill files; empty: memory only (drops past memory)
  size_t memory_bytes = 32 << 20;           // pending writes kept in memory
  size_t max_disk_bytes = size_t{2} << 30;  // pending writes kept on disk
  size_t segment_bytes = 4 << 20;           // spill file size before the next one starts
  size_t max_lines_per_send = 5000;
  size_t max_batches_per_send = 64;
  absl::Duration retry_min = absl::Milliseconds(50);
  absl::Duration retry_max = absl::Seconds(2);
  std::string name = "workspace spool";  // in log messages
};

struct SpoolStats {
  int64_t enqueued = 0;      // writes accepted
  int64_t delivered = 0;     // writes the workspace acknowledged
  int64_t dropped = 0;       // writes rejected for good or over the bounds
  int64_t pending = 0;       // enqueued - delivered - dropped
  int64_t memory_bytes = 0;  // pending in memory
  int64_t disk_bytes = 0;    // pending in spill files
  int64_t spilled = 0;       // writes that went to disk (total)
  int64_t failed_sends = 0;  // deliveries that failed and were retried
  bool connected = true;     // the last delivery succeeded
};

class WriteSpool {
 public:
  WriteSpool(Workspace* target, SpoolOptions options);
  ~WriteSpool();
  WriteSpool(const WriteSpool&) = delete;
  WriteSpool& operator=(const WriteSpool&) = delete;

  // Enqueue; OK unless the write is dropped for lack of room (ResourceExhausted).
  absl::Status AppendLogs(absl::Span<const v1::LogLine> lines);
  absl::Status IngestMetrics(const v1::MetricBatch& batch);
  absl::Status UpdateInstanceStatus(absl::string_view job, const v1::InstanceStatus& status);
  absl::Status RecordCheckpoint(const v1::CheckpointRecord& record);

  // Waits until every write enqueued before this call has been delivered (or dropped); then OK.
  // DeadlineExceeded after `timeout` (what is pending stays queued).
  absl::Status Flush(absl::Duration timeout);
  // Like Flush, but returns at once (OK) while deliveries fail: for a caller that wants its write
  // stored before going on when the workspace is reachable, and not to wait when it is not.
  absl::Status WaitIfConnected(absl::Duration timeout);

  SpoolStats stats() const;

 private:
  enum Kind : uint8_t { kLogs = 1, kMetrics = 2, kStatus = 3, kCheckpoint = 4 };
  struct Record {
    Kind kind;
    uint32_t units;       // log lines or metric points (to size a delivery)
    std::string payload;  // AppendLogsRequest, MetricBatch, UpdateInstanceStatusRequest or
                          // CheckpointRecord
  };
  struct Segment {
    int64_t index = 0;
    std::string path;
    int64_t records = 0;
    int64_t bytes = 0;
  };

  absl::Status Enqueue(Kind kind, uint32_t units, std::string payload);
  std::string SegmentPath(int64_t index) const;
  bool WriteRecord(std::FILE* f, const Record& r);
  void Run();
  // Under mu_: moves the oldest segment into memory.
  void RefillLocked();
  // Under mu_: appends a record to the newest segment (starting one as needed).
  bool SpillLocked(const Record& r);
  void CloseWriterLocked();
  absl::Status Send(const std::deque<Record>& records, size_t count);
  void LoadLeftoverSegments();
  void SaveOnExit();

  Workspace* target_;
  SpoolOptions options_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<Record> memory_;
  size_t memory_bytes_ = 0;
  std::deque<Segment> segments_;
  std::FILE* writer_ = nullptr;  // appends to segments_.back() while open
  int64_t next_segment_ = 0;
  int64_t disk_bytes_ = 0;
  SpoolStats stats_;
  int64_t finished_ = 0;  // enqueued writes delivered or dropped
  bool stop_ = false;
  bool warned_drop_ = false;
  bool failing_ = false;
  std::thread thread_;
};

}  // namespace kubetrain::storage

#endif  // KUBETRAIN_STORAGE_SPOOL_H_
