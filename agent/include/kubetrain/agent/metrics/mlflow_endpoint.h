// The agent's MLflow-compatible tracking endpoint: MLflow's REST API (the subset a training script
// uses) on a loopback port, so that `mlflow.log_metric` or a plain HTTP client logs to kubetrain.
//
// Served under /api/2.0/mlflow/ (and /api/2.0/preview/mlflow/):
//   POST runs/create, GET runs/get, POST runs/update, POST runs/log-metric, POST runs/log-batch,
//   POST runs/log-parameter, POST runs/set-tag, GET metrics/get-history,
//   GET experiments/get-by-name, GET experiments/get, POST experiments/create.
// Request and response bodies have MLflow's JSON shapes (int64 fields accepted as numbers or
// strings; metric values as numbers or "NaN" / "Infinity" / "-Infinity"). Errors are MLflow's:
// {"error_code": "INVALID_PARAMETER_VALUE", "message": ...} with 400 (missing or malformed fields,
// log-batch over 1000 metrics / 100 params / 100 tags / 1000 items, a param changed after it was
// logged), {"error_code": "RESOURCE_DOES_NOT_EXIST", ...} with 404 (unknown run or experiment),
// RESOURCE_ALREADY_EXISTS (400) for experiments/create of an existing name, ENDPOINT_NOT_FOUND
// (404) for other paths.
//
// The run model: one run per job. Its run_id is the job name (the agent sets MLFLOW_RUN_ID to it),
// its experiment id and name are the job's experiment name (MLFLOW_EXPERIMENT_ID). runs/create in
// any known experiment returns this run (a script that starts its own run still logs to the job),
// applying the request's run_name and tags. Other experiments made with experiments/create live in
// this endpoint only.
//
// Points are stored with rank -1 (MLflow requests do not say which rank sent them) unless the
// request carries `X-Kubetrain-Rank: N`, as the runtime library's do (kubetrain/rank/runtime.h).
//
// Delivery: a request only validates, updates the endpoint's in-memory view of the run (for
// runs/get and metrics/get-history) and enqueues its points; a background thread ships them with
// `ship` in MetricBatch-es of at most `batch_points` metrics, every `flush_interval` or as soon as
// a batch is full. A failed batch is retried with the same (source, sequence), so the workspace
// stores it once. While shipping fails points accumulate up to `max_buffered_points`; beyond that
// the oldest pending points are dropped, an error is logged and the run gets the tag
// `kubetrain.metrics_dropped` (the count). Stop() ships what is left, retrying for up to
// `final_flush_timeout`.
//
// Ownership: owns its server and shipper thread; `ship` must stay callable until Stop() returns.
// Thread-safety: Handle() may be called from any thread (it locks); Start/Stop from one thread.
#ifndef KUBETRAIN_AGENT_METRICS_MLFLOW_ENDPOINT_H_
#define KUBETRAIN_AGENT_METRICS_MLFLOW_ENDPOINT_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kubetrain/agent/metrics/http_server.h"
#include "kubetrain/v1/metric.pb.h"

namespace kubetrain::agent {

// Reads the stored points of one metric key of the run (Workspace::MetricHistory in the agent).
using HistoryReader = std::function<absl::StatusOr<std::vector<v1::Metric>>(const std::string&)>;

struct MlflowEndpointOptions {
  std::string job;              // the run id (MLFLOW_RUN_ID) and MetricBatch.job; required
  std::string run_name;         // the run's name (the job's display_name); empty: the job name
  std::string experiment_name;  // the experiment's id and name; empty: "Default"
  std::string source;           // MetricBatch.source: unique per agent process; required
  int port = 0;                 // loopback port; 0 = any free one
  absl::Duration flush_interval = absl::Milliseconds(250);
  size_t batch_points = 1000;            // metrics per shipped batch (MLflow's batch limit)
  size_t max_buffered_points = 4000000;  // pending points kept while shipping fails
  absl::Duration retry_backoff = absl::Milliseconds(200);
  absl::Duration final_flush_timeout = absl::Seconds(15);
  // metrics/get-history: with a reader, the stored points plus those not yet shipped (a batch
  // being shipped at that instant may be missing from one response); the reader is called with
  // the endpoint locked. Without one, every point is kept in memory when keep_history is set.
  HistoryReader history_reader;
  bool keep_history = true;
};

// Ships one batch to the workspace (Workspace::IngestMetrics in the agent).
using MetricShipper = std::function<absl::Status(const v1::MetricBatch&)>;

class MlflowEndpoint {
 public:
  MlflowEndpoint(MlflowEndpointOptions options, MetricShipper ship);
  ~MlflowEndpoint() { Stop(); }
  MlflowEndpoint(const MlflowEndpoint&) = delete;
  MlflowEndpoint& operator=(const MlflowEndpoint&) = delete;

  // Starts the HTTP server on 127.0.0.1 and the shipper thread.
  absl::Status Start();
  // Stops serving, then ships what is pending (see the header comment). Idempotent.
  void Stop();
  // "http://127.0.0.1:PORT" (after Start): MLFLOW_TRACKING_URI for the ranks.
  std::string uri() const;

  // Serves one request (what the HTTP server calls; tests may call it directly).
  HttpResponse Handle(const HttpRequest& request);

  // Ships everything pending now and waits until it is shipped or shipping failed once (tests).
  absl::Status Flush();

  struct Stats {
    int64_t accepted_points = 0;
    int64_t shipped_points = 0;
    int64_t dropped_points = 0;
    int64_t shipped_batches = 0;
    int64_t failed_ships = 0;
  };
  Stats stats() const;

 private:
  struct Point {
    double value;
    int64_t step;
    int64_t timestamp_ms;
  };
  struct Experiment {
    std::string id;
    std::string name;
    int64_t created_ms = 0;
  };

  // `mu_` held. `endpoint` is the path after the API prefix ("runs/log-metric").
  HttpResponse Dispatch(const std::string& method, const std::string& endpoint,
                        const HttpRequest& request);
  // The run as MLflow's Run / RunInfo JSON objects (serialized), `mu_` held.
  std::string RunInfoJson() const;
  std::string RunJson() const;
  // Records one metric (validated), `mu_` held.
  void AddMetric(v1::Metric metric);
  void ShipLoop();
  // Builds the next batch from pending_ (mu_ held); empty optional when nothing is pending.
  std::optional<v1::MetricBatch> TakeBatch();
  void EnqueueTag(const std::string& key, const std::string& value);  // mu_ held

  MlflowEndpointOptions options_;
  MetricShipper ship_;
  std::unique_ptr<HttpServer> server_;
  std::thread shipper_;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // wakes the shipper
  std::condition_variable flushed_;  // wakes Flush()
  bool stopping_ = false;
  bool flush_requested_ = false;
  absl::Status last_ship_status_;

  // The run.
  std::string run_name_;
  std::string status_ = "RUNNING";
  int64_t start_time_ms_ = 0;
  int64_t end_time_ms_ = 0;
  std::map<std::string, std::string> params_;
  std::map<std::string, std::string> tags_;
  std::map<std::string, v1::Metric> latest_;
  std::map<std::string, std::vector<Point>> history_;
  std::map<std::string, Experiment> experiments_;  // by name

  // Not yet shipped.
  std::deque<v1::Metric> pending_metrics_;
  std::vector<v1::Param> pending_params_;
  std::vector<v1::Tag> pending_tags_;
  std::optional<v1::MetricBatch> in_flight_;  // built, not yet acknowledged (retried as is)
  int64_t next_sequence_ = 1;
  Stats stats_;
};

}  // namespace kubetrain::agent

#endif  // KUBETRAIN_AGENT_METRICS_MLFLOW_ENDPOINT_H_
