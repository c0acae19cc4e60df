#include "kubetrain/agent/staging/checkpoint_recorder.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "kubetrain/rank/checkpoint.h"
#include "kubetrain/v1/checkpoint.pb.h"

namespace kubetrain::agent {

CheckpointRecorder::CheckpointRecorder(AgentSink* sink, std::string dir, std::string job,
                                       int attempt, absl::Duration interval)
    : sink_(sink),
      dir_(std::move(dir)),
      job_(std::move(job)),
      attempt_(attempt),
      interval_(interval) {}

CheckpointRecorder::~CheckpointRecorder() { Stop(); }

void CheckpointRecorder::Start() {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      lock.unlock();
      ScanOnce();
      lock.lock();
      cv_.wait_for(lock, absl::ToChronoMilliseconds(interval_), [this] { return stopping_; });
    }
  });
}

void CheckpointRecorder::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // The last scan retries records the sink refuses for a while: there is no next scan.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!ScanOnce() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(100));
}

std::set<int64_t> CheckpointRecorder::recorded() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::set<int64_t> steps;
  for (const auto& [step, retired] : recorded_) steps.insert(step);
  return steps;
}

bool CheckpointRecorder::ScanOnce() {
  absl::StatusOr<std::vector<checkpoint::PublishedCheckpoint>> published =
      checkpoint::ListPublishedCheckpoints(dir_);
  if (!published.ok()) return false;  // tried again on the next scan
  bool all = true;
  for (const checkpoint::PublishedCheckpoint& c : *published) {
    const bool retired = !c.present;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = recorded_.find(c.step);
      if (it != recorded_.end() && it->second == retired) continue;
    }
    v1::CheckpointRecord r;
    r.set_job(job_);
    r.set_step(c.step);
    r.set_size_bytes(c.size_bytes);
    r.set_duration_ms(c.save_duration_ms);
    r.set_location(c.location);
    int32_t attempt = attempt_;
    if (!c.attempt.empty()) (void)absl::SimpleAtoi(c.attempt, &attempt);
    r.set_attempt(attempt);
    r.set_created_unix_ms(c.created_unix_ms);
    r.set_retired(retired);
    if (!sink_->RecordCheckpoint(r).ok()) {
      all = false;  // tried again on the next scan
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    recorded_[c.step] = retired;
  }
  return all;
}

}  // namespace kubetrain::agent
