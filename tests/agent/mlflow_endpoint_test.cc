// Tests of the agent's MLflow-compatible endpoint (agent/metrics/mlflow_endpoint.h) over real HTTP:
// the requests the MLflow Python client sends for start_run, log_param, log_metric and log_metrics,
// MLflow's error responses and limits, and delivery to the workspace (batched, retried, once).
#include "kubetrain/agent/metrics/mlflow_endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#ifdef KUBETRAIN_WORKER_HAVE_STORAGE
#include "kubetrain/storage/workspace.h"
#endif

namespace kubetrain::agent {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

struct Reply {
  int status = 0;
  std::string body;
  json Json() const { return json::parse(body, nullptr, false); }
};

// Sends raw bytes to 127.0.0.1:port and reads the response until the server closes.
Reply Send(int port, const std::string& raw) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  Reply reply;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return reply;
  }
  send(fd, raw.data(), raw.size(), MSG_NOSIGNAL);
  std::string data;
  char buf[8192];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) data.append(buf, static_cast<size_t>(n));
  close(fd);
  sscanf(data.c_str(), "HTTP/1.1 %d", &reply.status);
  size_t end = data.find("\r\n\r\n");
  if (end != std::string::npos) reply.body = data.substr(end + 4);
  return reply;
}

// What python-requests (the MLflow client's transport) puts on the wire.
std::string Post(const std::string& endpoint, const std::string& body) {
  return absl::StrCat("POST /api/2.0/mlflow/", endpoint,
                      " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: mlflow-python-client/2.9.2\r\n"
                      "Accept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\n"
                      "Content-Length: ",
                      body.size(), "\r\nContent-Type: application/json\r\n\r\n", body);
}
std::string Get(const std::string& endpoint_and_query) {
  return absl::StrCat("GET /api/2.0/mlflow/", endpoint_and_query,
                      " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: mlflow-python-client/2.9.2\r\n"
                      "Accept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\n"
                      "\r\n");
}

class MlflowEndpointTest : public ::testing::Test {
 protected:
  void StartEndpoint(MlflowEndpoint::Stats* unused = nullptr) {
    (void)unused;
    MlflowEndpointOptions options;
    options.job = "job-1";
    options.run_name = "my run";
    options.experiment_name = "exp";
    options.source = "instance-0-test";
    options.flush_interval = absl::Milliseconds(20);
    options.retry_backoff = absl::Milliseconds(5);
    options.max_buffered_points = max_buffered_;
    endpoint_ = std::make_unique<MlflowEndpoint>(options, [this](const v1::MetricBatch& b) {
      std::lock_guard<std::mutex> lock(mu_);
      if (fail_ships_ > 0) {
        --fail_ships_;
        return absl::UnavailableError("injected: workspace unreachable");
      }
      batches_.push_back(b);
      return absl::OkStatus();
    });
    ASSERT_TRUE(endpoint_->Start().ok());
    port_ = std::stoi(endpoint_->uri().substr(endpoint_->uri().rfind(':') + 1));
  }
  void TearDown() override {
    if (endpoint_) endpoint_->Stop();
  }
  std::vector<v1::Metric> ShippedMetrics() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<v1::Metric> out;
    for (const auto& b : batches_) out.insert(out.end(), b.metrics().begin(), b.metrics().end());
    return out;
  }

  std::unique_ptr<MlflowEndpoint> endpoint_;
  int port_ = 0;
  std::mutex mu_;
  std::vector<v1::MetricBatch> batches_;
  int fail_ships_ = 0;
  size_t max_buffered_ = 4000000;
};

TEST_F(MlflowEndpointTest, UriIsLoopbackWithBoundPort) {
  StartEndpoint();
  EXPECT_THAT(endpoint_->uri(), ::testing::StartsWith("http://127.0.0.1:"));
  EXPECT_GT(port_, 0);
}

TEST_F(MlflowEndpointTest, PythonClientStartRunLogParamLogMetricLogMetrics) {
  StartEndpoint();
  // mlflow.start_run() with MLFLOW_EXPERIMENT_NAME set: resolve the experiment, then create.
  Reply exp = Send(port_, Get("experiments/get-by-name?experiment_name=exp"));
  ASSERT_EQ(exp.status, 200) << exp.body;
  EXPECT_EQ(exp.Json()["experiment"]["experiment_id"], "exp");
  EXPECT_EQ(exp.Json()["experiment"]["lifecycle_stage"], "active");

  Reply created = Send(
      port_, Post("runs/create",
                  R"({"experiment_id": "exp", "user_id": "root", "start_time": 1700000000000, )"
                  R"("tags": [{"key": "mlflow.user", "value": "root"}, )"
                  R"({"key": "mlflow.source.name", "value": "train.py"}, )"
                  R"({"key": "mlflow.source.type", "value": "LOCAL"}, )"
                  R"({"key": "mlflow.runName", "value": "bright-owl-7"}], )"
                  R"("run_name": "bright-owl-7"})"));
  ASSERT_EQ(created.status, 200) << created.body;
  json run = created.Json()["run"];
  EXPECT_EQ(run["info"]["run_id"], "job-1");
  EXPECT_EQ(run["info"]["run_uuid"], "job-1");
  EXPECT_EQ(run["info"]["experiment_id"], "exp");
  EXPECT_EQ(run["info"]["status"], "RUNNING");
  EXPECT_EQ(run["info"]["run_name"], "bright-owl-7");
  EXPECT_EQ(run["info"]["lifecycle_stage"], "active");

  // mlflow.log_param("lr", 0.01)
  Reply param = Send(
      port_, Post("runs/log-parameter", R"({"run_id": "job-1", "run_uuid": "job-1", "key": "lr", )"
                                        R"("value": "0.01"})"));
  ASSERT_EQ(param.status, 200) << param.body;
  EXPECT_EQ(param.Json(), json::object());

  // mlflow.log_metric("loss", 0.5, step=1)
  Reply metric = Send(
      port_, Post("runs/log-metric", R"({"run_id": "job-1", "run_uuid": "job-1", "key": "loss", )"
                                     R"("value": 0.5, "timestamp": 1700000000123, "step": 1})"));
  ASSERT_EQ(metric.status, 200) << metric.body;
  EXPECT_EQ(metric.Json(), json::object());

  // mlflow.log_metrics({"loss": 0.25, "acc": 0.9}, step=2)
  Reply batch =
      Send(port_, Post("runs/log-batch",
                       R"({"run_id": "job-1", "metrics": [)"
                       R"({"key": "loss", "value": 0.25, "timestamp": 1700000000200, "step": 2}, )"
                       R"({"key": "acc", "value": 0.9, "timestamp": 1700000000200, "step": 2}], )"
                       R"("params": [], "tags": []})"));
  ASSERT_EQ(batch.status, 200) << batch.body;
  EXPECT_EQ(batch.Json(), json::object());

  // mlflow.end_run()
  Reply ended =
      Send(port_, Post("runs/update", R"({"run_id": "job-1", "run_uuid": "job-1", )"
                                      R"("status": "FINISHED", "end_time": 1700000000999})"));
  ASSERT_EQ(ended.status, 200) << ended.body;
  EXPECT_EQ(ended.Json()["run_info"]["status"], "FINISHED");
  EXPECT_EQ(ended.Json()["run_info"]["end_time"], 1700000000999);

  Reply got = Send(port_, Get("runs/get?run_id=job-1"));
  ASSERT_EQ(got.status, 200) << got.body;
  json data = got.Json()["run"]["data"];
  ASSERT_EQ(data["metrics"].size(), 2u);
  EXPECT_EQ(data["metrics"][1]["key"], "loss");
  EXPECT_EQ(data["metrics"][1]["value"], 0.25);
  EXPECT_EQ(data["metrics"][1]["step"], 2);
  EXPECT_EQ(data["params"][0], (json{{"key", "lr"}, {"value", "0.01"}}));

  Reply history = Send(port_, Get("metrics/get-history?run_id=job-1&metric_key=loss"));
  ASSERT_EQ(history.status, 200) << history.body;
  ASSERT_EQ(history.Json()["metrics"].size(), 2u);
  EXPECT_EQ(history.Json()["metrics"][0]["value"], 0.5);
  EXPECT_EQ(history.Json()["metrics"][0]["timestamp"], 1700000000123);

  ASSERT_TRUE(endpoint_->Flush().ok());
  std::vector<v1::Metric> shipped = ShippedMetrics();
  ASSERT_EQ(shipped.size(), 3u);
  EXPECT_EQ(shipped[0].key(), "loss");
  EXPECT_EQ(shipped[0].value(), 0.5);
  EXPECT_EQ(shipped[0].step(), 1);
  EXPECT_EQ(shipped[0].timestamp_ms(), 1700000000123);
  EXPECT_EQ(shipped[2].key(), "acc");
  std::lock_guard<std::mutex> lock(mu_);
  bool lr = false, source = false;
  for (const auto& b : batches_) {
    EXPECT_EQ(b.job(), "job-1");
    EXPECT_EQ(b.source(), "instance-0-test");
    for (const auto& p : b.params()) lr = lr || (p.key() == "lr" && p.value() == "0.01");
    for (const auto& t : b.tags()) source = source || t.key() == "mlflow.source.name";
  }
  EXPECT_TRUE(lr);
  EXPECT_TRUE(source);
}

TEST_F(MlflowEndpointTest, AcceptsInt64AsStringsAndNonFiniteValues) {
  StartEndpoint();
  Reply r =
      Send(port_, Post("runs/log-metric", R"({"run_id": "job-1", "key": "x", "value": "NaN", )"
                                          R"("timestamp": "1700000000000", "step": "3"})"));
  ASSERT_EQ(r.status, 200) << r.body;
  r = Send(port_, Post("runs/log-metric", R"({"run_id": "job-1", "key": "x", )"
                                          R"("value": "-Infinity", "timestamp": 5})"));
  ASSERT_EQ(r.status, 200) << r.body;
  Reply history = Send(port_, Get("metrics/get-history?run_id=job-1&metric_key=x"));
  ASSERT_EQ(history.status, 200);
  EXPECT_EQ(history.Json()["metrics"][0]["value"], "NaN");
  EXPECT_EQ(history.Json()["metrics"][0]["step"], 3);
  EXPECT_EQ(history.Json()["metrics"][1]["value"], "-Infinity");
  EXPECT_EQ(history.Json()["metrics"][1]["step"], 0);  // step defaults to 0
  ASSERT_TRUE(endpoint_->Flush().ok());
  auto shipped = ShippedMetrics();
  ASSERT_EQ(shipped.size(), 2u);
  EXPECT_TRUE(std::isnan(shipped[0].value()));
}

TEST_F(MlflowEndpointTest, ErrorsHaveMlflowShape) {
  StartEndpoint();
  Reply r = Send(port_, Post("runs/log-metric", R"({"run_id": "other", "key": "x", "value": 1, )"
                                                R"("timestamp": 1})"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Json()["error_code"], "RESOURCE_DOES_NOT_EXIST");
  EXPECT_THAT(r.Json()["message"].get<std::string>(), HasSubstr("other"));

  r = Send(port_, Post("runs/log-metric", R"({"run_id": "job-1", "value": 1, "timestamp": 1})"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["error_code"], "INVALID_PARAMETER_VALUE");
  EXPECT_THAT(r.Json()["message"].get<std::string>(), HasSubstr("'key'"));

  r = Send(port_, Post("runs/log-metric", R"({"run_id": "job-1", "key": "x", "value": "abc", )"
                                          R"("timestamp": 1})"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["error_code"], "INVALID_PARAMETER_VALUE");

  r = Send(port_, Post("runs/log-metric", R"({"run_id": "job-1", "key": "x", "value": 1})"));
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.Json()["message"].get<std::string>(), HasSubstr("'timestamp'"));

  r = Send(port_, Post("runs/log-metric", "{not json"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["error_code"], "INVALID_PARAMETER_VALUE");

  r = Send(port_, Post("runs/log-metric", R"({"key": "x", "value": 1, "timestamp": 1})"));
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.Json()["message"].get<std::string>(), HasSubstr("'run_id'"));

  r = Send(port_, Get("runs/get?run_id=nope"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Json()["error_code"], "RESOURCE_DOES_NOT_EXIST");

  r = Send(port_, Get("experiments/get-by-name?experiment_name=missing"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Json()["error_code"], "RESOURCE_DOES_NOT_EXIST");

  r = Send(port_, Post("runs/create", R"({"experiment_id": "12345"})"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Json()["error_code"], "RESOURCE_DOES_NOT_EXIST");

  r = Send(port_, Post("runs/update", R"({"run_id": "job-1", "status": "DONE"})"));
  EXPECT_EQ(r.status, 400);

  r = Send(port_, Post("runs/delete", R"({"run_id": "job-1"})"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Json()["error_code"], "ENDPOINT_NOT_FOUND");

  r = Send(port_, Get("runs/log-metric"));
  EXPECT_EQ(r.status, 405);

  ASSERT_TRUE(endpoint_->Flush().ok());
  EXPECT_TRUE(ShippedMetrics().empty());  // nothing invalid was stored
}

TEST_F(MlflowEndpointTest, ParamsCannotChangeButMayRepeat) {
  StartEndpoint();
  std::string lr = R"({"run_id": "job-1", "key": "lr", "value": "0.1"})";
  EXPECT_EQ(Send(port_, Post("runs/log-parameter", lr)).status, 200);
  EXPECT_EQ(Send(port_, Post("runs/log-parameter", lr)).status, 200);
  Reply r = Send(port_, Post("runs/log-parameter", R"({"run_id": "job-1", "key": "lr", )"
                                                   R"("value": "0.2"})"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["error_code"], "INVALID_PARAMETER_VALUE");
  EXPECT_THAT(r.Json()["message"].get<std::string>(), HasSubstr("Changing param values"));
  // Tags may change.
  EXPECT_EQ(
      Send(port_, Post("runs/set-tag", R"({"run_id": "job-1", "key": "t", "value": "a"})")).status,
      200);
  EXPECT_EQ(
      Send(port_, Post("runs/set-tag", R"({"run_id": "job-1", "key": "t", "value": "b"})")).status,
      200);
  Reply got = Send(port_, Get("runs/get?run_id=job-1"));
  bool found = false;
  const json body = got.Json();
  for (const auto& t : body["run"]["data"]["tags"]) {
    if (t["key"] == "t") {
      found = true;
      EXPECT_EQ(t["value"], "b");
    }
  }
  EXPECT_TRUE(found) << got.body;
}

TEST_F(MlflowEndpointTest, LogBatchLimits) {
  StartEndpoint();
  auto metrics = [](int n) {
    json a = json::array();
    for (int i = 0; i < n; ++i) {
      a.push_back({{"key", "m"}, {"value", i}, {"timestamp", 1}, {"step", i}});
    }
    return a;
  };
  auto kvs = [](int n) {
    json a = json::array();
    for (int i = 0; i < n; ++i) a.push_back({{"key", absl::StrCat("k", i)}, {"value", "v"}});
    return a;
  };
  Reply r = Send(
      port_, Post("runs/log-batch", json{{"run_id", "job-1"}, {"metrics", metrics(1001)}}.dump()));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["error_code"], "INVALID_PARAMETER_VALUE");
  EXPECT_THAT(r.Json()["message"].get<std::string>(),
              HasSubstr("at most 1000 metrics. Got 1001 metrics"));
  r = Send(port_, Post("runs/log-batch", json{{"run_id", "job-1"}, {"params", kvs(101)}}.dump()));
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.Json()["message"].get<std::string>(), HasSubstr("at most 100 params"));
  r = Send(port_, Post("runs/log-batch", json{{"run_id", "job-1"}, {"tags", kvs(101)}}.dump()));
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.Json()["message"].get<std::string>(), HasSubstr("at most 100 tags"));
  r = Send(port_, Post("runs/log-batch", json{{"run_id", "job-1"},
                                              {"metrics", metrics(950)},
                                              {"params", kvs(50)},
                                              {"tags", kvs(50)}}
                                             .dump()));
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.Json()["message"].get<std::string>(), HasSubstr("1050 total"));
  // One bad metric rejects the whole batch.
  json bad = metrics(10);
  bad[5]["value"] = "oops";
  r = Send(port_, Post("runs/log-batch", json{{"run_id", "job-1"}, {"metrics", bad}}.dump()));
  EXPECT_EQ(r.status, 400);
  // Exactly at the limit is fine.
  r = Send(port_,
           Post("runs/log-batch", json{{"run_id", "job-1"}, {"metrics", metrics(1000)}}.dump()));
  EXPECT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(endpoint_->Flush().ok());
  EXPECT_EQ(ShippedMetrics().size(), 1000u);
}

TEST_F(MlflowEndpointTest, FailedShipsAreRetriedWithTheSameSequence) {
  fail_ships_ = 3;
  StartEndpoint();
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(Send(port_, Post("runs/log-metric", json{{"run_id", "job-1"},
                                                       {"key", "loss"},
                                                       {"value", i},
                                                       {"timestamp", 1},
                                                       {"step", i}}
                                                      .dump()))
                  .status,
              200);
  }
  // Flush reports the first failure; keep flushing until the retries get through.
  for (int i = 0; i < 100 && ShippedMetrics().size() < 5; ++i) (void)endpoint_->Flush();
  EXPECT_EQ(ShippedMetrics().size(), 5u);
  EXPECT_GE(endpoint_->stats().failed_ships, 3);
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 1; i < batches_.size(); ++i) {
    EXPECT_EQ(batches_[i].sequence(), batches_[i - 1].sequence() + 1);
  }
  EXPECT_EQ(batches_[0].sequence(), 1);
}

TEST_F(MlflowEndpointTest, OverflowDropsOldestAndTagsTheRun) {
  fail_ships_ = 1000000;  // the workspace stays unreachable
  max_buffered_ = 10;
  StartEndpoint();
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(
        endpoint_
            ->Handle(
                {"POST",
                 "/api/2.0/mlflow/runs/log-metric",
                 {},
                 {},
                 json{
                     {"run_id", "job-1"}, {"key", "x"}, {"value", i}, {"timestamp", 1}, {"step", i}}
                     .dump()})
            .status,
        200);
  }
  EXPECT_GE(endpoint_->stats().dropped_points, 1);
  HttpResponse got =
      endpoint_->Handle({"GET", "/api/2.0/mlflow/runs/get", {{"run_id", "job-1"}}, {}, ""});
  EXPECT_THAT(got.body, HasSubstr("kubetrain.metrics_dropped"));
  {
    std::lock_guard<std::mutex> lock(mu_);
    fail_ships_ = 0;
  }
  ASSERT_TRUE(endpoint_->Flush().ok());
  std::vector<v1::Metric> shipped = ShippedMetrics();
  EXPECT_LT(shipped.size(), 30u);
  ASSERT_FALSE(shipped.empty());
  EXPECT_EQ(shipped.back().step(), 29);  // the newest points are kept
}

TEST_F(MlflowEndpointTest, StopShipsWhatIsPending) {
  StartEndpoint();
  for (int i = 0; i < 2500; ++i) {
    endpoint_->Handle(
        {"POST",
         "/api/2.0/mlflow/runs/log-metric",
         {},
         {},
         json{{"run_id", "job-1"}, {"key", "x"}, {"value", i}, {"timestamp", 1}, {"step", i}}
             .dump()});
  }
  endpoint_->Stop();
  EXPECT_EQ(ShippedMetrics().size(), 2500u);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& b : batches_) EXPECT_LE(b.metrics_size(), 1000);
}

#ifdef KUBETRAIN_WORKER_HAVE_STORAGE
TEST(MlflowEndpointWorkspaceTest, PointsReachTheWorkspaceOnce) {
  char tmpl[] = "/tmp/kubetrain-mlflow-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  auto ws = storage::OpenEmbeddedWorkspace(tmpl);
  ASSERT_TRUE(ws.ok()) << ws.status();
  std::atomic<int> calls{0};
  MlflowEndpointOptions options;
  options.job = "job-ws";
  options.experiment_name = "exp";
  options.source = "instance-0-1";
  options.history_reader = [&](const std::string& key) {
    return (*ws)->MetricHistory("job-ws", key);
  };
  MlflowEndpoint endpoint(options, [&](const v1::MetricBatch& b) {
    // Deliver every batch twice, as a sender whose acknowledgement got lost would.
    ++calls;
    absl::Status s = (*ws)->IngestMetrics(b);
    if (!s.ok()) return s;
    return (*ws)->IngestMetrics(b);
  });
  ASSERT_TRUE(endpoint.Start().ok());
  int port = std::stoi(endpoint.uri().substr(endpoint.uri().rfind(':') + 1));
  for (int i = 0; i < 20; ++i) {
    json batch = {{"run_id", "job-ws"}, {"metrics", json::array()}};
    for (int j = 0; j < 100; ++j) {
      int step = i * 100 + j;
      batch["metrics"].push_back({{"key", "loss"},
                                  {"value", 1.0 / (step + 1)},
                                  {"timestamp", 1000 + step},
                                  {"step", step}});
    }
    ASSERT_EQ(Send(port, Post("runs/log-batch", batch.dump())).status, 200);
  }
  ASSERT_EQ(Send(port, Post("runs/log-parameter", R"({"run_id": "job-ws", "key": "lr", )"
                                                  R"("value": "0.1"})"))
                .status,
            200);
  ASSERT_TRUE(endpoint.Flush().ok());
  // get-history reads the workspace (the endpoint keeps no copy when it has a reader).
  Reply served = Send(port, Get("metrics/get-history?run_id=job-ws&metric_key=loss"));
  ASSERT_EQ(served.status, 200);
  EXPECT_EQ(served.Json()["metrics"].size(), 2000u);
  EXPECT_EQ(served.Json()["metrics"][1999]["step"], 1999);
  Reply page = Send(port, Get("metrics/get-history?run_id=job-ws&metric_key=loss&max_results=500"
                              "&page_token=1500"));
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.Json()["metrics"].size(), 500u);
  EXPECT_EQ(page.Json()["metrics"][0]["step"], 1500);
  endpoint.Stop();
  auto summary = (*ws)->MetricSummary("job-ws");
  ASSERT_TRUE(summary.ok());
  ASSERT_EQ(summary->size(), 1u);
  EXPECT_EQ((*summary)[0].count, 2000);
  EXPECT_EQ((*summary)[0].latest_step, 1999);
  EXPECT_DOUBLE_EQ((*summary)[0].max, 1.0);
  auto history = (*ws)->MetricHistory("job-ws", "loss");
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(history->size(), 2000u);
  auto params = (*ws)->ListParams("job-ws");
  ASSERT_TRUE(params.ok());
  ASSERT_EQ(params->size(), 1u);
  EXPECT_EQ((*params)[0].value(), "0.1");
  ws->reset();
  std::filesystem::remove_all(tmpl);
}
#endif

}  // namespace
}  // namespace kubetrain::agent
