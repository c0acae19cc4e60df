// The rank-side runtime library: who this rank is, and metrics that never slow a training step.
//
//   #include "kubetrain/rank/runtime.h"
//   namespace rt = kubetrain::runtime;
//   rt::LogParam("lr", "0.1");
//   for (int64_t step = 0; ...; ++step) rt::LogMetric("loss", loss, step);   // ~tens of ns
//
// Under kubetrain every rank has MLFLOW_TRACKING_URI (its kubetrain-worker's MLflow-compatible
// endpoint, agent/metrics/mlflow_endpoint.h) and MLFLOW_RUN_ID; the library ships there with
// MLflow's runs/log-batch, tagging each request with the rank (X-Kubetrain-Rank), so the agent
// stores the points with their rank and batches them on to the workspace.
//
// How logging stays off the training thread: LogMetric appends a 32-byte record to a lock-free
// single-producer ring owned by the calling thread (key strings are interned once per thread),
// with a coarse clock for the timestamp. One background thread drains every thread's ring into
// requests of at most 1000 points. When a ring is full (the endpoint is slower than the producer
// or unreachable), LogMetric waits up to `RuntimeOptions::full_wait` for room, then drops the
// point and counts it (GetRuntimeStats().dropped; the run gets the tag kubetrain.runtime_dropped
// and a line on stderr). A request the endpoint refuses (4xx) is reported on stderr and not
// retried; connection errors and 5xx are retried until Flush's timeout or exit.
//
// Flushing: Flush() waits until everything logged before it was acknowledged. At exit (atexit)
// and on SIGTERM, SIGINT, SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT (only where no handler was
// installed before the first log call) the library flushes for up to 2 s, then lets the process
// end as it would have. Without MLFLOW_TRACKING_URI (not under kubetrain) points are counted and
// discarded, with one line on stderr.
//
// Thread-safety: every function may be called from any thread. Each thread's ring is written only
// by that thread. The library's state lives until the process ends.
#ifndef KUBETRAIN_RANK_RUNTIME_H_
#define KUBETRAIN_RANK_RUNTIME_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "kubetrain/rank/rank_info.h"

namespace kubetrain::runtime {

// This rank (kubetrain/rank/rank_info.h), read from the environment once, on first use; a process
// without a rank environment is rank 0 of 1, and a malformed one is reported on stderr once.
using RankInfo = rank::RankInfo;
const RankInfo& GetRankInfo();

struct RuntimeOptions {
  std::string tracking_uri;      // "http://127.0.0.1:PORT"; empty: $MLFLOW_TRACKING_URI
  std::string run_id;            // empty: $MLFLOW_RUN_ID
  int rank = -1;                 // recorded with each point; -1: GetRankInfo().rank
  size_t ring_points = 1 << 17;  // per-thread ring capacity (rounded up to a power of two)
  absl::Duration flush_interval = absl::Milliseconds(100);  // the drain period
  absl::Duration full_wait = absl::Seconds(2);  // wait for room in a full ring, then drop
  bool install_signal_handlers = true;          // flush on the signals listed above
};

// Configures the library; optional (the first Log call uses the defaults). FailedPrecondition
// once anything has been logged.
absl::Status InitRuntime(const RuntimeOptions& options);

// Records one point of `key`. Non-blocking unless this thread's ring is full (see above).
void LogMetric(absl::string_view key, double value, int64_t step = 0);
// Params and tags go out with the next request (MLflow: a param cannot change once logged).
void LogParam(absl::string_view key, absl::string_view value);
void SetTag(absl::string_view key, absl::string_view value);

// Waits until everything logged before the call has been acknowledged by the endpoint.
// DeadlineExceeded after `timeout` (points stay queued and are retried); Unavailable when there is
// no endpoint (nothing can be shipped).
absl::Status Flush(absl::Duration timeout = absl::Seconds(30));

struct RuntimeStats {
  int64_t logged = 0;           // LogMetric calls
  int64_t shipped = 0;          // points acknowledged by the endpoint
  int64_t dropped = 0;          // points dropped: full ring, no endpoint, or refused by it
  int64_t requests = 0;         // requests sent
  int64_t failed_requests = 0;  // requests that failed (retried, or refused)
};
RuntimeStats GetRuntimeStats();

}  // namespace kubetrain::runtime

#endif  // KUBETRAIN_RANK_RUNTIME_H_
