// Work: the handle of one asynchronous collective operation.
//
// Every Communicator call returns a Work right away; the operation runs on the communicator's
// execution stream (a worker thread for host backends, a CUDA stream for NCCL, a nonblocking MPI
// request for MPI). Buffers passed to the call must stay alive and untouched until the Work is
// done. Failures (a dead peer, a timeout, a bad argument) are reported by Wait()/status(), never
// thrown.
//
// Ownership: Work objects are shared (std::shared_ptr); the backend keeps its own reference until
// the operation finishes, so dropping a Work does not cancel the operation.
// Thread-safety: all methods are thread-safe.
#ifndef KUBETRAIN_COLLECTIVE_WORK_H_
#define KUBETRAIN_COLLECTIVE_WORK_H_

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace kubetrain::collective {

class Work {
 public:
  virtual ~Work() = default;

  // Blocks until the operation is done or `timeout` passes. Returns the operation's status when
  // done, or DeadlineExceeded when the wait timed out (the operation keeps running; it is bounded
  // by the communicator's own timeout).
  virtual absl::Status Wait(absl::Duration timeout = absl::InfiniteDuration()) = 0;

  // Non-blocking: true when the operation is done (successfully or not).
  virtual bool Test() = 0;

  // The final status once Test() is true; Unavailable("still running") before.
  virtual absl::Status status() = 0;
};

// A Work completed by a producer thread calling Complete(). Host backends use it directly.
class CompletionWork : public Work {
 public:
  absl::Status Wait(absl::Duration timeout = absl::InfiniteDuration()) override;
  bool Test() override;
  absl::Status status() override;

  // Marks the operation done with `status` and wakes waiters. Later calls are ignored.
  void Complete(absl::Status status);

  // Runs `fn` (once) just before the Work reports done, on the completing thread. Used for
  // finishing steps like copying results out. Must be set before Complete().
  void SetOnComplete(std::function<absl::Status()> fn) { on_complete_ = std::move(fn); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  absl::Status status_;
  std::function<absl::Status()> on_complete_;
};

// A Work that is already done, e.g. for an argument error caught before enqueueing.
std::shared_ptr<Work> MakeCompletedWork(absl::Status status);

}  // namespace kubetrain::collective

#endif  // KUBETRAIN_COLLECTIVE_WORK_H_
