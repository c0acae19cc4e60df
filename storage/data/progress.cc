#include "data/progress.h"

#include <cstdio>

namespace kubetrain::storage::data_internal {

ProgressBar::ProgressBar(bool enabled, std::string label, int64_t total_bytes)
    : enabled_(enabled),
      label_(std::move(label)),
      total_(total_bytes),
      start_(std::chrono::steady_clock::now()) {
  if (!enabled_) return;
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(250), [this] { return stop_; })) {
      Draw(false);
    }
  });
}

ProgressBar::~ProgressBar() {
  if (!enabled_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  Draw(true);
}

void ProgressBar::Draw(bool final) {
  const int64_t done = done_.load(std::memory_order_relaxed);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  constexpr int kWidth = 30;
  char bar[kWidth + 1];
  int filled = static_cast<int>(frac * kWidth);
  for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
  bar[kWidth] = '\0';
  const double mib = 1024.0 * 1024.0;
  std::fprintf(stderr, "\r%s [%s] %3d%% %.1f/%.1f MiB %.1f MiB/s%s", label_.c_str(), bar,
               static_cast<int>(frac * 100), done / mib, total_ / mib,
               secs > 0 ? done / mib / secs : 0.0, final ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace kubetrain::storage::data_internal
