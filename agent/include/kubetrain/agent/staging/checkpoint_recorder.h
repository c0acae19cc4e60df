// CheckpointRecorder: reports the job's complete checkpoints to the workspace.
//
// Ranks write checkpoints themselves (kubetrain/rank/checkpoint.h) into the job's checkpoint
// directory; the agent of instance 0 watches that directory while the ranks run and records each
// complete checkpoint it finds (step, size, save duration, location, attempt) through its sink, so
// `kubetrain job show` and `kubetrain job checkpoints` list them — also for a remote workspace, and
// without the ranks needing any connection of their own.
//
// What was published is read with ListPublishedCheckpoints (the directory's journal, which rank 0
// appends to after each publishing rename, plus every complete step-<N>/), so a checkpoint that
// retention removed between two scans is recorded too; a checkpoint retention removes after it
// was recorded is recorded again as retired. A record the sink refuses is tried again on the next
// scan.
//
// Ownership: borrows the sink, which must outlive the recorder. Thread-safety: Start/Stop from one
// thread; the scanning runs on the recorder's own thread.
#ifndef KUBETRAIN_AGENT_STAGING_CHECKPOINT_RECORDER_H_
#define KUBETRAIN_AGENT_STAGING_CHECKPOINT_RECORDER_H_

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "kubetrain/agent/sink.h"

namespace kubetrain::agent {

class CheckpointRecorder {
 public:
  CheckpointRecorder(AgentSink* sink, std::string dir, std::string job, int attempt,
                     absl::Duration interval = absl::Seconds(1));
  ~CheckpointRecorder();  // Stop()
  CheckpointRecorder(const CheckpointRecorder&) = delete;
  CheckpointRecorder& operator=(const CheckpointRecorder&) = delete;

  // Starts scanning every `interval`.
  void Start();
  // Stops scanning, then scans once more so a checkpoint published just before the ranks ended is
  // recorded too (retrying records the sink refuses for up to 5 s). Idempotent.
  void Stop();

  // Steps recorded so far.
  std::set<int64_t> recorded() const;

 private:
  // Records what is new; false when something could not be read or recorded.
  bool ScanOnce();

  AgentSink* const sink_;
  const std::string dir_;
  const std::string job_;
  const int attempt_;
  const absl::Duration interval_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<int64_t, bool> recorded_;  // step -> recorded as retired; guarded by mu_
  std::thread thread_;
};

}  // namespace kubetrain::agent

#endif  // KUBETRAIN_AGENT_STAGING_CHECKPOINT_RECORDER_H_
