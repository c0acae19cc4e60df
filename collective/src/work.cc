#include "kubetrain/collective/work.h"

#include "absl/strings/str_cat.h"

namespace kubetrain::collective {

absl::Status CompletionWork::Wait(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (timeout == absl::InfiniteDuration()) {
    cv_.wait(lock, [&] { return done_; });
  } else if (!cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] { return done_; })) {
    return absl::DeadlineExceededError(absl::StrCat(
        "collective operation still running after waiting ", absl::FormatDuration(timeout)));
  }
  return status_;
}

bool CompletionWork::Test() {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

absl::Status CompletionWork::status() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!done_) return absl::UnavailableError("collective operation still running");
  return status_;
}

void CompletionWork::Complete(absl::Status status) {
  if (status.ok() && on_complete_) status = on_complete_();
  std::lock_guard<std::mutex> lock(mu_);
  if (done_) return;
  done_ = true;
  status_ = std::move(status);
  cv_.notify_all();
}

std::shared_ptr<Work> MakeCompletedWork(absl::Status status) {
  auto work = std::make_shared<CompletionWork>();
  work->Complete(std::move(status));
  return work;
}

}  // namespace kubetrain::collective
