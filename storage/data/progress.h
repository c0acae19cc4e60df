// A progress bar on stderr for long transfers: "label [=====>    ] 45% 115/256 MiB 210 MiB/s".
// Add() is called from many threads; a background thread redraws at most 4 times a second.
// Disabled (no thread, no output) when `enabled` is false.
#ifndef KUBETRAIN_STORAGE_DATA_PROGRESS_H_
#define KUBETRAIN_STORAGE_DATA_PROGRESS_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace kubetrain::storage::data_internal {

class ProgressBar {
 public:
  ProgressBar(bool enabled, std::string label, int64_t total_bytes);
  ~ProgressBar();  // draws the final state and a newline
  void Add(int64_t bytes) { done_.fetch_add(bytes, std::memory_order_relaxed); }

 private:
  void Draw(bool final);
  bool enabled_;
  std::string label_;
  int64_t total_;
  std::atomic<int64_t> done_{0};
  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace kubetrain::storage::data_internal

#endif  // KUBETRAIN_STORAGE_DATA_PROGRESS_H_
