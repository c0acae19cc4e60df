#include "kubetrain/agent/metrics/mlflow_endpoint.h"

#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace kubetrain::agent {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxMetricsPerBatch = 1000;
constexpr size_t kMaxParamsPerBatch = 100;
constexpr size_t kMaxTagsPerBatch = 100;
constexpr size_t kMaxEntitiesPerBatch = 1000;
constexpr size_t kMaxKeyLength = 250;
constexpr size_t kMaxParamValueLength = 6000;
constexpr size_t kMaxTagValueLength = 8000;

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

HttpResponse Json(const std::string& body) {
  HttpResponse r;
  r.body = body;
  return r;
}

HttpResponse Error(int status, const char* code, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.body = json{{"error_code", code}, {"message", message}}.dump();
  return r;
}

HttpResponse Invalid(const std::string& message) {
  return Error(400, "INVALID_PARAMETER_VALUE", message);
}

HttpResponse Missing(const std::string& field) {
  return Invalid(absl::StrCat("Missing value for required parameter '", field,
                              "'. See the API docs for more information about request "
                              "parameters."));
}

// A metric value as MLflow writes it in JSON: numbers stay numbers, non-finite values are the
// strings protobuf's JSON mapping uses.
json ValueJson(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return v;
}

bool ParseInt64(const json& v, int64_t* out) {
  if (v.is_number_integer()) {
    *out = v.get<int64_t>();
    return true;
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::floor(d) != d || !std::isfinite(d)) return false;
    *out = static_cast<int64_t>(d);
    return true;
  }
  if (v.is_string()) return absl::SimpleAtoi(v.get<std::string>(), out);
  return false;
}

bool ParseDouble(const json& v, double* out) {
  if (v.is_number()) {
    *out = v.get<double>();
    return true;
  }
  if (!v.is_string()) return false;
  const std::string s = v.get<std::string>();
  if (s == "NaN") {
    *out = std::numeric_limits<double>::quiet_NaN();
  } else if (s == "Infinity") {
    *out = std::numeric_limits<double>::infinity();
  } else if (s == "-Infinity") {
    *out = -std::numeric_limits<double>::infinity();
  } else {
    return absl::SimpleAtod(s, out);
  }
  return true;
}

std::string Shown(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// Reads a required string field; returns an error response when missing or not a string.
std::optional<HttpResponse> RequireString(const json& args, const char* field, std::string* out) {
  auto it = args.find(field);
  if (it == args.end() || it->is_null()) return Missing(field);
  if (!it->is_string()) {
    return Invalid(absl::StrCat("Invalid value ", it->dump(), " for parameter '", field,
                                "' supplied: expected a string"));
  }
  *out = it->get<std::string>();
  return std::nullopt;
}

std::optional<HttpResponse> CheckKey(const std::string& what, const std::string& key) {
  if (key.empty()) return Invalid(absl::StrCat(what, " key must not be empty"));
  if (key.size() > kMaxKeyLength) {
    return Invalid(absl::StrCat(what, " '", key.substr(0, 32), "...' had length ", key.size(),
                                ", which exceeded length limit of ", kMaxKeyLength));
  }
  return std::nullopt;
}

// Parses one metric object {key, value, timestamp, step} (MLflow: key, value, timestamp required).
std::optional<HttpResponse> ParseMetric(const json& m, v1::Metric* out) {
  if (!m.is_object()) return Invalid("a metric must be an object with key, value, timestamp, step");
  std::string key;
  if (auto e = RequireString(m, "key", &key)) return e;
  if (auto e = CheckKey("Metric", key)) return e;
  out->set_key(key);
  auto value = m.find("value");
  if (value == m.end() || value->is_null()) return Missing("value");
  double v = 0;
  if (!ParseDouble(*value, &v)) {
    return Invalid(
        absl::StrCat("Got invalid value ", Shown(*value), " for metric '", key,
                     "' (timestamp=", m.value("timestamp", json()).dump(),
                     "). Please specify value as a valid double (64-bit floating point)"));
  }
  out->set_value(v);
  auto ts = m.find("timestamp");
  if (ts == m.end() || ts->is_null()) return Missing("timestamp");
  int64_t t = 0;
  if (!ParseInt64(*ts, &t)) {
    return Invalid(absl::StrCat("Got invalid timestamp ", Shown(*ts), " for metric '", key,
                                "' (value=", Shown(*value), "). Timestamp must be an integer"));
  }
  out->set_timestamp_ms(t);
  int64_t step = 0;
  if (auto s = m.find("step"); s != m.end() && !s->is_null() && !ParseInt64(*s, &step)) {
    return Invalid(absl::StrCat("Got invalid step ", Shown(*s), " for metric '", key,
                                "' (value=", Shown(*value), "). Step must be an integer"));
  }
  out->set_step(step);
  out->set_rank(-1);  // which rank sent an MLflow request is not known
  return std::nullopt;
}

std::optional<HttpResponse> ParseKeyValue(const json& kv, const std::string& what, size_t max_value,
                                          std::string* key, std::string* value) {
  if (!kv.is_object()) return Invalid(absl::StrCat("a ", what, " must be an object {key, value}"));
  if (auto e = RequireString(kv, "key", key)) return e;
  if (auto e = CheckKey(what, *key)) return e;
  if (auto e = RequireString(kv, "value", value)) return e;
  if (value->size() > max_value) {
    return Invalid(absl::StrCat(what, " '", *key, "' had value length ", value->size(),
                                ", which exceeded length limit of ", max_value));
  }
  return std::nullopt;
}

}  // namespace

MlflowEndpoint::MlflowEndpoint(MlflowEndpointOptions options, MetricShipper ship)
    : options_(std::move(options)), ship_(std::move(ship)) {
  if (options_.experiment_name.empty()) options_.experiment_name = "Default";
  run_name_ = options_.run_name.empty() ? options_.job : options_.run_name;
  start_time_ms_ = NowMs();
  experiments_[options_.experiment_name] = {options_.experiment_name, options_.experiment_name,
                                            start_time_ms_};
}

absl::Status MlflowEndpoint::Start() {
  if (options_.job.empty() || options_.source.empty()) {
    return absl::InvalidArgumentError("MLflow endpoint: the job and the source must be set");
  }
  HttpServerOptions http;
  http.port = options_.port;
  server_ = std::make_unique<HttpServer>(http, [this](const HttpRequest& r) { return Handle(r); });
  if (absl::Status s = server_->Start(); !s.ok()) return s;
  shipper_ = std::thread([this] { ShipLoop(); });
  return absl::OkStatus();
}

void MlflowEndpoint::Stop() {
  if (server_ != nullptr) server_->Stop();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (shipper_.joinable()) shipper_.join();
}

std::string MlflowEndpoint::uri() const {
  return absl::StrCat("http://127.0.0.1:", server_ != nullptr ? server_->port() : 0);
}

MlflowEndpoint::Stats MlflowEndpoint::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

absl::Status MlflowEndpoint::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!shipper_.joinable()) return absl::FailedPreconditionError("MLflow endpoint not started");
  flush_requested_ = true;
  last_ship_status_ = absl::OkStatus();
  cv_.notify_all();
  flushed_.wait(lock, [&] {
    return (pending_metrics_.empty() && pending_params_.empty() && pending_tags_.empty() &&
            !in_flight_.has_value()) ||
           !last_ship_status_.ok() || stopping_;
  });
  return last_ship_status_;
}

std::optional<v1::MetricBatch> MlflowEndpoint::TakeBatch() {
  if (in_flight_.has_value()) return in_flight_;
  if (pending_metrics_.empty() && pending_params_.empty() && pending_tags_.empty()) {
    return std::nullopt;
  }
  v1::MetricBatch batch;
  batch.set_job(options_.job);
  batch.set_source(options_.source);
  batch.set_sequence(next_sequence_++);
  size_t n = std::min(pending_metrics_.size(), options_.batch_points);
  for (size_t i = 0; i < n; ++i) {
    *batch.add_metrics() = std::move(pending_metrics_.front());
    pending_metrics_.pop_front();
  }
  for (auto& p : pending_params_) *batch.add_params() = std::move(p);
  pending_params_.clear();
  for (auto& t : pending_tags_) *batch.add_tags() = std::move(t);
  pending_tags_.clear();
  in_flight_ = std::move(batch);
  return in_flight_;
}

void MlflowEndpoint::ShipLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  absl::Time final_deadline = absl::InfiniteFuture();
  absl::Duration wait = options_.flush_interval;
  while (true) {
    cv_.wait_for(lock, absl::ToChronoNanoseconds(wait), [&] {
      return stopping_ || flush_requested_ || pending_metrics_.size() >= options_.batch_points;
    });
    if (stopping_ && final_deadline == absl::InfiniteFuture()) {
      final_deadline = absl::Now() + options_.final_flush_timeout;
    }
    wait = options_.flush_interval;
    // Ship every full batch (or everything, on a flush, a tick, or at the end).
    while (true) {
      std::optional<v1::MetricBatch> batch = TakeBatch();
      if (!batch.has_value()) break;
      lock.unlock();
      absl::Status status = ship_(*batch);
      lock.lock();
      if (status.ok()) {
        in_flight_.reset();
        stats_.shipped_points += batch->metrics_size();
        ++stats_.shipped_batches;
        continue;
      }
      ++stats_.failed_ships;
      last_ship_status_ = status;
      if (stats_.failed_ships == 1 || stats_.failed_ships % 100 == 0) {
        spdlog::warn(
            "metrics: shipping batch {} ({} points) to the workspace failed ({} failures "
            "so far; retrying): {}",
            batch->sequence(), batch->metrics_size(), stats_.failed_ships,
            std::string(status.message()));
      }
      wait = options_.retry_backoff;
      break;
    }
    flush_requested_ = false;
    flushed_.notify_all();
    if (stopping_) {
      bool done = !in_flight_.has_value() && pending_metrics_.empty() && pending_params_.empty() &&
                  pending_tags_.empty();
      if (done) return;
      if (absl::Now() >= final_deadline) {
        int64_t lost = static_cast<int64_t>(pending_metrics_.size()) +
                       (in_flight_.has_value() ? in_flight_->metrics_size() : 0);
        spdlog::error(
            "metrics: {} points of job {} could not be shipped to the workspace before "
            "the agent exited: {}",
            lost, options_.job, std::string(last_ship_status_.message()));
        return;
      }
    }
  }
}

void MlflowEndpoint::EnqueueTag(const std::string& key, const std::string& value) {
  tags_[key] = value;
  v1::Tag t;
  t.set_key(key);
  t.set_value(value);
  pending_tags_.push_back(std::move(t));
}

void MlflowEndpoint::AddMetric(v1::Metric metric) {
  auto [it, inserted] = latest_.try_emplace(metric.key(), metric);
  if (!inserted && std::make_pair(metric.step(), metric.timestamp_ms()) >=
                       std::make_pair(it->second.step(), it->second.timestamp_ms())) {
    it->second = metric;
  }
  if (options_.keep_history && !options_.history_reader) {
    history_[metric.key()].push_back({metric.value(), metric.step(), metric.timestamp_ms()});
  }
  ++stats_.accepted_points;
  pending_metrics_.push_back(std::move(metric));
  if (pending_metrics_.size() > options_.max_buffered_points) {
    size_t drop = pending_metrics_.size() - options_.max_buffered_points;
    pending_metrics_.erase(pending_metrics_.begin(),
                           pending_metrics_.begin() + static_cast<std::ptrdiff_t>(drop));
    if (stats_.dropped_points == 0) {
      spdlog::error(
          "metrics: more than {} points of job {} are waiting for the workspace; "
          "dropping the oldest (see the run tag kubetrain.metrics_dropped)",
          options_.max_buffered_points, options_.job);
    }
    stats_.dropped_points += static_cast<int64_t>(drop);
    // Replaces any pending value of the same tag when shipped (tags: the last value wins).
    EnqueueTag("kubetrain.metrics_dropped", std::to_string(stats_.dropped_points));
  }
}

std::string MlflowEndpoint::RunInfoJson() const {
  json info = {{"run_id", options_.job},
               {"run_uuid", options_.job},
               {"run_name", run_name_},
               {"experiment_id", options_.experiment_name},
               {"user_id", ""},
               {"status", status_},
               {"start_time", start_time_ms_},
               {"artifact_uri", ""},
               {"lifecycle_stage", "active"}};
  if (end_time_ms_ != 0) info["end_time"] = end_time_ms_;
  return info.dump();
}

std::string MlflowEndpoint::RunJson() const {
  json metrics = json::array(), params = json::array(), tags = json::array();
  for (const auto& [key, m] : latest_) {
    metrics.push_back({{"key", key},
                       {"value", ValueJson(m.value())},
                       {"timestamp", m.timestamp_ms()},
                       {"step", m.step()}});
  }
  for (const auto& [k, v] : params_) params.push_back({{"key", k}, {"value", v}});
  for (const auto& [k, v] : tags_) tags.push_back({{"key", k}, {"value", v}});
  json data = {{"metrics", metrics}, {"params", params}, {"tags", tags}};
  return absl::StrCat(R"({"info":)", RunInfoJson(), R"(,"data":)", data.dump(), R"(,"inputs":{}})");
}

HttpResponse MlflowEndpoint::Handle(const HttpRequest& request) {
  static constexpr absl::string_view kPrefixes[] = {"/api/2.0/mlflow/", "/api/2.0/preview/mlflow/"};
  for (absl::string_view prefix : kPrefixes) {
    if (absl::StartsWith(request.path, prefix)) {
      std::string endpoint = request.path.substr(prefix.size());
      std::lock_guard<std::mutex> lock(mu_);
      HttpResponse response = Dispatch(request.method, endpoint, request);
      if (pending_metrics_.size() >= options_.batch_points) cv_.notify_all();
      return response;
    }
  }
  if (request.path == "/health") return Json("OK");
  return Error(404, "ENDPOINT_NOT_FOUND",
               absl::StrCat("No API endpoint at ", request.method, " ", request.path));
}

HttpResponse MlflowEndpoint::Dispatch(const std::string& method, const std::string& endpoint,
                                      const HttpRequest& request) {
  struct Route {
    const char* path;
    const char* method;
  };
  static constexpr Route kRoutes[] = {
      {"runs/create", "POST"},
      {"runs/get", "GET"},
      {"runs/update", "POST"},
      {"runs/log-metric", "POST"},
      {"runs/log-batch", "POST"},
      {"runs/log-parameter", "POST"},
      {"runs/set-tag", "POST"},
      {"metrics/get-history", "GET"},
      {"experiments/get-by-name", "GET"},
      {"experiments/get", "GET"},
      {"experiments/create", "POST"},
  };
  const Route* route = nullptr;
  for (const Route& r : kRoutes) {
    if (endpoint == r.path) route = &r;
  }
  if (route == nullptr) {
    return Error(404, "ENDPOINT_NOT_FOUND",
                 absl::StrCat("No API endpoint at ", method, " /api/2.0/mlflow/", endpoint));
  }
  if (method != route->method) {
    return Error(
        405, "BAD_REQUEST",
        absl::StrCat("/api/2.0/mlflow/", endpoint, " takes ", route->method, ", not ", method));
  }
  // Arguments: the query string for GET, the JSON body for POST.
  json args = json::object();
  if (method == "GET") {
    for (const auto& [k, v] : request.query) args[k] = v;
  } else if (!request.body.empty()) {
    args = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (args.is_discarded() || !args.is_object()) {
      return Invalid("Malformed request body: expected a JSON object");
    }
  }
  // The kubetrain runtime library (kubetrain/rank/runtime.h) names the sending rank.
  int sender_rank = -1;
  if (auto it = request.headers.find("x-kubetrain-rank"); it != request.headers.end()) {
    if (!absl::SimpleAtoi(it->second, &sender_rank)) sender_rank = -1;
  }
  // Every runs/* and metrics/* call names the run (run_id, or the deprecated run_uuid).
  auto check_run = [&]() -> std::optional<HttpResponse> {
    std::string run_id;
    if (auto it = args.find("run_id"); it != args.end() && it->is_string()) {
      run_id = it->get<std::string>();
    } else if (auto u = args.find("run_uuid"); u != args.end() && u->is_string()) {
      run_id = u->get<std::string>();
    }
    if (run_id.empty()) return Missing("run_id");
    if (run_id != options_.job) {
      return Error(404, "RESOURCE_DOES_NOT_EXIST",
                   absl::StrCat("Run with id=", run_id, " not found"));
    }
    return std::nullopt;
  };

  if (endpoint == "experiments/get-by-name") {
    std::string name;
    if (auto e = RequireString(args, "experiment_name", &name)) return *e;
    auto it = experiments_.find(name);
    if (it == experiments_.end()) {
      return Error(404, "RESOURCE_DOES_NOT_EXIST",
                   absl::StrCat("Could not find experiment with name '", name, "'"));
    }
    json e = {{"experiment_id", it->second.id},
              {"name", it->second.name},
              {"artifact_location", ""},
              {"lifecycle_stage", "active"},
              {"creation_time", it->second.created_ms},
              {"last_update_time", it->second.created_ms}};
    return Json(json{{"experiment", e}}.dump());
  }
  if (endpoint == "experiments/get") {
    std::string id;
    if (auto e = RequireString(args, "experiment_id", &id)) return *e;
    for (const auto& [name, exp] : experiments_) {
      if (exp.id == id) {
        json e = {{"experiment_id", exp.id},         {"name", exp.name},
                  {"artifact_location", ""},         {"lifecycle_stage", "active"},
                  {"creation_time", exp.created_ms}, {"last_update_time", exp.created_ms}};
        return Json(json{{"experiment", e}}.dump());
      }
    }
    return Error(404, "RESOURCE_DOES_NOT_EXIST",
                 absl::StrCat("No Experiment with id=", id, " exists"));
  }
  if (endpoint == "experiments/create") {
    std::string name;
    if (auto e = RequireString(args, "name", &name)) return *e;
    if (name.empty()) return Invalid("Invalid experiment name: ''");
    if (experiments_.count(name) > 0) {
      return Error(400, "RESOURCE_ALREADY_EXISTS",
                   absl::StrCat("Experiment '", name, "' already exists."));
    }
    experiments_[name] = {name, name, NowMs()};
    return Json(json{{"experiment_id", name}}.dump());
  }
  if (endpoint == "runs/create") {
    if (auto it = args.find("experiment_id"); it != args.end() && !it->is_null()) {
      std::string id = it->is_string() ? it->get<std::string>() : it->dump();
      bool known = id == "0";  // MLflow's Default experiment: the job's run lives there too
      for (const auto& [name, exp] : experiments_) known = known || exp.id == id;
      if (!known) {
        return Error(404, "RESOURCE_DOES_NOT_EXIST",
                     absl::StrCat("No Experiment with id=", id, " exists"));
      }
    }
    std::vector<std::pair<std::string, std::string>> tags;
    if (auto it = args.find("tags"); it != args.end() && !it->is_null()) {
      if (!it->is_array()) return Invalid("'tags' must be a list of {key, value}");
      for (const json& t : *it) {
        std::string k, v;
        if (auto e = ParseKeyValue(t, "Tag", kMaxTagValueLength, &k, &v)) return *e;
        tags.emplace_back(k, v);
      }
    }
    if (auto it = args.find("run_name");
        it != args.end() && it->is_string() && !it->get<std::string>().empty()) {
      run_name_ = it->get<std::string>();
    }
    for (const auto& [k, v] : tags) {
      if (k == "mlflow.runName" && !v.empty()) run_name_ = v;
      EnqueueTag(k, v);
    }
    EnqueueTag("mlflow.runName", run_name_);
    status_ = "RUNNING";
    end_time_ms_ = 0;
    return Json(absl::StrCat(R"({"run":)", RunJson(), "}"));
  }
  // The rest name a run.
  if (auto e = check_run()) return *e;
  if (endpoint == "runs/get") return Json(absl::StrCat(R"({"run":)", RunJson(), "}"));
  if (endpoint == "runs/update") {
    if (auto it = args.find("status"); it != args.end() && !it->is_null()) {
      static const char* const kStatuses[] = {"RUNNING", "SCHEDULED", "FINISHED", "FAILED",
                                              "KILLED"};
      std::string s = it->is_string() ? it->get<std::string>() : it->dump();
      bool valid = false;
      for (const char* k : kStatuses) valid = valid || s == k;
      if (!valid) return Invalid(absl::StrCat("Invalid value ", s, " for parameter 'status'"));
      status_ = s;
      EnqueueTag("kubetrain.run_status", s);
    }
    if (auto it = args.find("end_time"); it != args.end() && !it->is_null()) {
      if (!ParseInt64(*it, &end_time_ms_)) {
        return Invalid(absl::StrCat("Invalid value ", Shown(*it), " for parameter 'end_time'"));
      }
    }
    if (auto it = args.find("run_name");
        it != args.end() && it->is_string() && !it->get<std::string>().empty()) {
      run_name_ = it->get<std::string>();
      EnqueueTag("mlflow.runName", run_name_);
    }
    return Json(absl::StrCat(R"({"run_info":)", RunInfoJson(), "}"));
  }
  if (endpoint == "runs/log-metric") {
    v1::Metric m;
    if (auto e = ParseMetric(args, &m)) return *e;
    m.set_rank(sender_rank);
    AddMetric(std::move(m));
    return Json("{}");
  }
  if (endpoint == "runs/log-parameter" || endpoint == "runs/set-tag") {
    const bool param = endpoint == "runs/log-parameter";
    std::string k, v;
    if (auto e = ParseKeyValue(args, param ? "Param" : "Tag",
                               param ? kMaxParamValueLength : kMaxTagValueLength, &k, &v)) {
      return *e;
    }
    if (!param) {
      EnqueueTag(k, v);
      return Json("{}");
    }
    if (auto it = params_.find(k); it != params_.end()) {
      if (it->second == v) return Json("{}");  // logging the same value again is allowed
      return Invalid(absl::StrCat("Changing param values is not allowed. Param with key='", k,
                                  "' was already logged with value='", it->second, "' for run ID='",
                                  options_.job, "'. Attempted logging new value '", v, "'."));
    }
    params_[k] = v;
    v1::Param p;
    p.set_key(k);
    p.set_value(v);
    pending_params_.push_back(std::move(p));
    return Json("{}");
  }
  if (endpoint == "runs/log-batch") {
    auto list = [&](const char* field, const json** out) -> std::optional<HttpResponse> {
      static const json kEmpty = json::array();
      *out = &kEmpty;
      auto it = args.find(field);
      if (it == args.end() || it->is_null()) return std::nullopt;
      if (!it->is_array()) return Invalid(absl::StrCat("'", field, "' must be a list"));
      *out = &*it;
      return std::nullopt;
    };
    const json *metrics, *params, *tags;
    if (auto e = list("metrics", &metrics)) return *e;
    if (auto e = list("params", &params)) return *e;
    if (auto e = list("tags", &tags)) return *e;
    if (metrics->size() > kMaxMetricsPerBatch) {
      return Invalid(absl::StrCat("A batch logging request can contain at most ",
                                  kMaxMetricsPerBatch, " metrics. Got ", metrics->size(),
                                  " metrics. Please split up metrics across multiple requests "
                                  "and try again."));
    }
    if (params->size() > kMaxParamsPerBatch) {
      return Invalid(absl::StrCat("A batch logging request can contain at most ",
                                  kMaxParamsPerBatch, " params. Got ", params->size(),
                                  " params. Please split up params across multiple requests and "
                                  "try again."));
    }
    if (tags->size() > kMaxTagsPerBatch) {
      return Invalid(absl::StrCat("A batch logging request can contain at most ", kMaxTagsPerBatch,
                                  " tags. Got ", tags->size(),
                                  " tags. Please split up tags across multiple requests and try "
                                  "again."));
    }
    size_t total = metrics->size() + params->size() + tags->size();
    if (total > kMaxEntitiesPerBatch) {
      return Invalid(absl::StrCat("A batch logging request can contain at most ",
                                  kMaxEntitiesPerBatch, " total metrics, params, and tags. Got ",
                                  total,
                                  " total. Please split up the data across multiple requests and "
                                  "try again."));
    }
    // Validate everything before applying anything.
    std::vector<v1::Metric> ms(metrics->size());
    for (size_t i = 0; i < metrics->size(); ++i) {
      if (auto e = ParseMetric((*metrics)[i], &ms[i])) return *e;
      ms[i].set_rank(sender_rank);
    }
    std::vector<std::pair<std::string, std::string>> ps, ts;
    for (const json& p : *params) {
      std::string k, v;
      if (auto e = ParseKeyValue(p, "Param", kMaxParamValueLength, &k, &v)) return *e;
      if (auto it = params_.find(k); it != params_.end() && it->second != v) {
        return Invalid(absl::StrCat("Changing param values is not allowed. Param with key='", k,
                                    "' was already logged with value='", it->second,
                                    "' for run ID='", options_.job,
                                    "'. Attempted logging new value '", v, "'."));
      }
      ps.emplace_back(k, v);
    }
    for (const json& t : *tags) {
      std::string k, v;
      if (auto e = ParseKeyValue(t, "Tag", kMaxTagValueLength, &k, &v)) return *e;
      ts.emplace_back(k, v);
    }
    for (v1::Metric& m : ms) AddMetric(std::move(m));
    for (auto& [k, v] : ps) {
      if (params_.count(k) > 0) continue;
      params_[k] = v;
      v1::Param p;
      p.set_key(k);
      p.set_value(v);
      pending_params_.push_back(std::move(p));
    }
    for (auto& [k, v] : ts) EnqueueTag(k, v);
    return Json("{}");
  }
  if (endpoint == "metrics/get-history") {
    std::string key;
    if (auto e = RequireString(args, "metric_key", &key)) return *e;
    int64_t max_results = std::numeric_limits<int64_t>::max(), offset = 0;
    if (auto it = args.find("max_results"); it != args.end() && !ParseInt64(*it, &max_results)) {
      return Invalid("Invalid value for parameter 'max_results': expected an integer");
    }
    if (auto it = args.find("page_token"); it != args.end() && it->is_string() &&
                                           !it->get<std::string>().empty() &&
                                           !ParseInt64(*it, &offset)) {
      return Invalid("Invalid page_token");
    }
    std::vector<Point> read;
    const std::vector<Point>* points = &read;
    if (options_.history_reader) {
      absl::StatusOr<std::vector<v1::Metric>> stored = options_.history_reader(key);
      if (!stored.ok()) {
        return Error(503, "TEMPORARILY_UNAVAILABLE",
                     absl::StrCat("cannot read the history of '", key,
                                  "' from the workspace: ", stored.status().message()));
      }
      read.reserve(stored->size());
      for (const v1::Metric& m : *stored) read.push_back({m.value(), m.step(), m.timestamp_ms()});
      for (const v1::Metric& m : pending_metrics_) {
        if (m.key() == key) read.push_back({m.value(), m.step(), m.timestamp_ms()});
      }
    } else if (auto h = history_.find(key); h != history_.end()) {
      points = &h->second;
    }
    json out = json::array();
    int64_t size = static_cast<int64_t>(points->size());
    int64_t end = offset + std::min(max_results, size);
    if (end > size || end < offset) end = size;
    for (int64_t i = offset; i < end; ++i) {
      const Point& p = (*points)[static_cast<size_t>(i)];
      out.push_back({{"key", key},
                     {"value", ValueJson(p.value)},
                     {"timestamp", p.timestamp_ms},
                     {"step", p.step}});
    }
    json body = {{"metrics", out}};
    if (end < size) body["next_page_token"] = std::to_string(end);
    return Json(body.dump());
  }
  return Error(404, "ENDPOINT_NOT_FOUND", absl::StrCat("No API endpoint at ", endpoint));
}

}  // namespace kubetrain::agent
