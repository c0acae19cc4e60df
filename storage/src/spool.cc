// WriteSpool (kubetrain/storage/spool.h).
#include "kubetrain/storage/spool.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "kubetrain/v1/workspace.pb.h"
#include "spdlog/spdlog.h"

namespace kubetrain::storage {
namespace {

constexpr int64_t kFirstSegment = 500000000000;  // leaves room for segments saved before it
constexpr size_t kRecordOverhead = 64;
constexpr char kSegmentPrefix[] = "spool-";
constexpr char kSegmentSuffix[] = ".seg";

bool Permanent(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kDataLoss:
      return true;
    default:
      return false;
  }
}

void MakeDirs(const std::string& path) {
  if (path.empty()) return;
  size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) MakeDirs(path.substr(0, slash));
  mkdir(path.c_str(), 0700);
}

// Reads the records of a segment file; false when it cannot be read (a torn tail is ignored).
template <typename Fn>
bool ReadSegment(const std::string& path, Fn&& on_record) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  while (true) {
    unsigned char header[9];
    if (std::fread(header, 1, sizeof(header), f) != sizeof(header)) break;
    uint32_t len = 0, units = 0;
    std::memcpy(&len, header, 4);
    std::memcpy(&units, header + 5, 4);
    std::string payload(len, '\0');
    if (len > 0 && std::fread(payload.data(), 1, len, f) != len) break;
    on_record(header[4], units, std::move(payload));
  }
  std::fclose(f);
  return true;
}

}  // namespace

WriteSpool::WriteSpool(Workspace* target, SpoolOptions options)
    : target_(target), options_(std::move(options)), next_segment_(kFirstSegment) {
  options_.segment_bytes = std::max<size_t>(
      1, std::min(options_.segment_bytes, std::max<size_t>(options_.memory_bytes / 2, 1)));
  if (!options_.directory.empty()) {
    MakeDirs(options_.directory);
    LoadLeftoverSegments();
  }
  thread_ = std::thread([this] { Run(); });
}

WriteSpool::~WriteSpool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  SaveOnExit();
  CloseWriterLocked();
}

std::string WriteSpool::SegmentPath(int64_t index) const {
  return absl::StrFormat("%s/%s%013d%s", options_.directory, kSegmentPrefix, index, kSegmentSuffix);
}

void WriteSpool::LoadLeftoverSegments() {
  DIR* dir = opendir(options_.directory.c_str());
  if (dir == nullptr) return;
  std::vector<int64_t> found;
  while (dirent* e = readdir(dir)) {
    absl::string_view name = e->d_name;
    if (!absl::ConsumePrefix(&name, kSegmentPrefix) ||
        !absl::ConsumeSuffix(&name, kSegmentSuffix)) {
      continue;
    }
    int64_t index = 0;
    if (absl::SimpleAtoi(name, &index)) found.push_back(index);
  }
  closedir(dir);
  std::sort(found.begin(), found.end());
  for (int64_t index : found) {
    Segment seg;
    seg.index = index;
    seg.path = SegmentPath(index);
    ReadSegment(seg.path, [&](uint8_t, uint32_t, const std::string& payload) {
      ++seg.records;
      seg.bytes += static_cast<int64_t>(payload.size() + kRecordOverhead);
    });
    if (seg.records == 0) {
      unlink(seg.path.c_str());
      continue;
    }
    stats_.enqueued += seg.records;
    disk_bytes_ += seg.bytes;
    next_segment_ = std::max(next_segment_, index + 1);
    segments_.push_back(std::move(seg));
  }
  if (!segments_.empty()) {
    spdlog::info("{}: delivering {} write(s) a previous agent left in {}", options_.name,
                 stats_.enqueued, options_.directory);
  }
}

absl::Status WriteSpool::AppendLogs(absl::Span<const v1::LogLine> lines) {
  if (lines.empty()) return absl::OkStatus();
  v1::AppendLogsRequest req;
  req.mutable_lines()->Reserve(static_cast<int>(lines.size()));
  for (const v1::LogLine& l : lines) *req.add_lines() = l;
  return Enqueue(kLogs, static_cast<uint32_t>(lines.size()), req.SerializeAsString());
}

absl::Status WriteSpool::IngestMetrics(const v1::MetricBatch& batch) {
  return Enqueue(kMetrics, static_cast<uint32_t>(batch.metrics_size()), batch.SerializeAsString());
}

absl::Status WriteSpool::UpdateInstanceStatus(absl::string_view job,
                                              const v1::InstanceStatus& status) {
  v1::UpdateInstanceStatusRequest req;
  req.set_job(std::string(job));
  *req.mutable_instance() = status;
  return Enqueue(kStatus, 1, req.SerializeAsString());
}

absl::Status WriteSpool::RecordCheckpoint(const v1::CheckpointRecord& record) {
  return Enqueue(kCheckpoint, 1, record.SerializeAsString());
}

absl::Status WriteSpool::Enqueue(Kind kind, uint32_t units, std::string payload) {
  const size_t size = payload.size() + kRecordOverhead;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Record r{kind, units, std::move(payload)};
    bool stored = false;
    if (!stop_) {
      if (segments_.empty() && memory_bytes_ + size <= options_.memory_bytes) {
        memory_bytes_ += size;
        memory_.push_back(std::move(r));
        stored = true;
      } else if (!options_.directory.empty() && disk_bytes_ + static_cast<int64_t>(size) <=
                                                    static_cast<int64_t>(options_.max_disk_bytes)) {
        stored = SpillLocked(r);
      }
    }
    if (!stored) {
      ++stats_.dropped;
      if (!warned_drop_) {
        spdlog::error(
            "{}: the workspace has been out of reach too long and the spool is full ({} in "
            "memory, {} on disk); dropping new writes",
            options_.name, memory_bytes_, disk_bytes_);
        warned_drop_ = true;
      }
      return absl::ResourceExhaustedError(
          absl::StrCat(options_.name, ": spool full; write dropped"));
    }
    ++stats_.enqueued;
  }
  work_cv_.notify_one();
  return absl::OkStatus();
}

bool WriteSpool::WriteRecord(std::FILE* f, const Record& r) {
  unsigned char header[9];
  uint32_t len = static_cast<uint32_t>(r.payload.size());
  std::memcpy(header, &len, 4);
  header[4] = r.kind;
  std::memcpy(header + 5, &r.units, 4);
  return std::fwrite(header, 1, sizeof(header), f) == sizeof(header) &&
         std::fwrite(r.payload.data(), 1, r.payload.size(), f) == r.payload.size();
}

bool WriteSpool::SpillLocked(const Record& r) {
  if (writer_ == nullptr || segments_.empty() ||
      segments_.back().bytes >= static_cast<int64_t>(options_.segment_bytes)) {
    CloseWriterLocked();
    Segment seg;
    seg.index = next_segment_++;
    seg.path = SegmentPath(seg.index);
    writer_ = std::fopen(seg.path.c_str(), "wb");
    if (writer_ == nullptr) {
      spdlog::error("{}: cannot create the spill file {}: {}", options_.name, seg.path,
                    std::strerror(errno));
      return false;
    }
    segments_.push_back(std::move(seg));
  }
  if (!WriteRecord(writer_, r)) {
    spdlog::error("{}: cannot write the spill file {}: {}", options_.name, segments_.back().path,
                  std::strerror(errno));
    return false;
  }
  const int64_t size = static_cast<int64_t>(r.payload.size() + kRecordOverhead);
  segments_.back().records += 1;
  segments_.back().bytes += size;
  disk_bytes_ += size;
  ++stats_.spilled;
  return true;
}

void WriteSpool::CloseWriterLocked() {
  if (writer_ != nullptr) {
    std::fclose(writer_);
    writer_ = nullptr;
  }
}

void WriteSpool::RefillLocked() {
  if (segments_.empty()) return;
  if (segments_.size() == 1) CloseWriterLocked();  // the one being written: the next starts anew
  Segment seg = std::move(segments_.front());
  segments_.pop_front();
  int64_t loaded = 0;
  bool ok = ReadSegment(seg.path, [&](uint8_t kind, uint32_t units, std::string payload) {
    memory_bytes_ += payload.size() + kRecordOverhead;
    memory_.push_back(Record{static_cast<Kind>(kind), units, std::move(payload)});
    ++loaded;
  });
  disk_bytes_ -= seg.bytes;
  if (!ok || loaded < seg.records) {
    int64_t lost = seg.records - loaded;
    spdlog::error("{}: lost {} write(s) of the spill file {}", options_.name, lost, seg.path);
    stats_.dropped += lost;
    finished_ += lost;
  }
  unlink(seg.path.c_str());
}

absl::Status WriteSpool::Send(const std::deque<Record>& records, size_t count) {
  const Kind kind = records.front().kind;
  if (kind == kLogs) {
    std::vector<v1::LogLine> lines;
    for (size_t i = 0; i < count; ++i) {
      v1::AppendLogsRequest req;
      if (!req.ParseFromString(records[i].payload)) {
        return absl::DataLossError("a spooled log write does not parse");
      }
      for (v1::LogLine& l : *req.mutable_lines()) lines.push_back(std::move(l));
    }
    return target_->AppendLogs(lines);
  }
  if (kind == kMetrics) {
    std::vector<v1::MetricBatch> batches(count);
    for (size_t i = 0; i < count; ++i) {
      if (!batches[i].ParseFromString(records[i].payload)) {
        return absl::DataLossError("a spooled metric batch does not parse");
      }
    }
    return target_->IngestMetricBatches(batches);
  }
  if (kind == kCheckpoint) {
    v1::CheckpointRecord record;
    if (!record.ParseFromString(records.front().payload)) {
      return absl::DataLossError("a spooled checkpoint record does not parse");
    }
    return target_->RecordCheckpoint(record);
  }
  v1::UpdateInstanceStatusRequest req;
  if (!req.ParseFromString(records.front().payload)) {
    return absl::DataLossError("a spooled status update does not parse");
  }
  return target_->UpdateInstanceStatus(req.job(), req.instance());
}

void WriteSpool::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  absl::Duration backoff = options_.retry_min;
  while (true) {
    work_cv_.wait(lock, [&] { return stop_ || !memory_.empty() || !segments_.empty(); });
    if (stop_) return;
    if (memory_.empty()) RefillLocked();
    if (memory_.empty()) {
      done_cv_.notify_all();
      continue;
    }
    // The delivery: the oldest write and the ones of its kind right behind it.
    const Kind kind = memory_.front().kind;
    size_t count = 1;
    size_t units = memory_.front().units;
    if (kind == kLogs || kind == kMetrics) {
      const size_t max_units = kind == kLogs ? options_.max_lines_per_send : SIZE_MAX;
      const size_t max_count = kind == kMetrics ? options_.max_batches_per_send : SIZE_MAX;
      while (count < memory_.size() && memory_[count].kind == kind && count < max_count &&
             units + memory_[count].units <= max_units) {
        units += memory_[count].units;
        ++count;
      }
    }
    std::deque<Record> batch(memory_.begin(), memory_.begin() + static_cast<ptrdiff_t>(count));
    lock.unlock();
    absl::Status status = Send(batch, count);
    lock.lock();
    if (status.ok() || Permanent(status.code())) {
      for (size_t i = 0; i < count; ++i) {
        memory_bytes_ -= memory_.front().payload.size() + kRecordOverhead;
        memory_.pop_front();
      }
      finished_ += static_cast<int64_t>(count);
      if (status.ok()) {
        stats_.delivered += static_cast<int64_t>(count);
        if (failing_) spdlog::info("{}: the workspace is reachable again", options_.name);
        failing_ = false;
        stats_.connected = true;
        backoff = options_.retry_min;
      } else {
        stats_.dropped += static_cast<int64_t>(count);
        spdlog::error("{}: the workspace rejected {} write(s) for good: {}", options_.name, count,
                      status.ToString());
      }
      done_cv_.notify_all();
      continue;
    }
    ++stats_.failed_sends;
    if (!failing_) {
      spdlog::warn("{}: cannot deliver to the workspace ({}); keeping writes and retrying",
                   options_.name, status.ToString());
    }
    failing_ = true;
    stats_.connected = false;
    done_cv_.notify_all();
    work_cv_.wait_for(lock, absl::ToChronoNanoseconds(backoff), [&] { return stop_; });
    backoff = std::min(backoff * 2, options_.retry_max);
  }
}

void WriteSpool::SaveOnExit() {
  if (memory_.empty() || options_.directory.empty()) return;
  CloseWriterLocked();
  const int64_t index = segments_.empty() ? next_segment_++ : segments_.front().index - 1;
  std::string path = SegmentPath(index);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  bool ok = f != nullptr;
  for (const Record& r : memory_) ok = ok && WriteRecord(f, r);
  if (f != nullptr) ok = std::fclose(f) == 0 && ok;
  int64_t total = static_cast<int64_t>(memory_.size());
  for (const Segment& s : segments_) total += s.records;
  if (ok) {
    spdlog::warn("{}: {} write(s) not delivered; kept in {} for the next agent", options_.name,
                 total, options_.directory);
  } else {
    spdlog::error("{}: {} write(s) not delivered and could not be saved to {}", options_.name,
                  memory_.size(), path);
  }
}

absl::Status WriteSpool::Flush(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const int64_t target = stats_.enqueued;
  const bool done = done_cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                                      [&] { return finished_ >= target; });
  if (done) return absl::OkStatus();
  return absl::DeadlineExceededError(absl::StrCat(
      options_.name, ": ", target - finished_, " write(s) not yet delivered after ",
      absl::FormatDuration(timeout), (failing_ ? " (the workspace is out of reach)" : "")));
}

absl::Status WriteSpool::WaitIfConnected(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const int64_t target = stats_.enqueued;
  done_cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                    [&] { return finished_ >= target || failing_; });
  return absl::OkStatus();
}

SpoolStats WriteSpool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  SpoolStats s = stats_;
  s.pending = s.enqueued - finished_;
  s.memory_bytes = static_cast<int64_t>(memory_bytes_);
  s.disk_bytes = disk_bytes_;
  return s;
}

}  // namespace kubetrain::storage
