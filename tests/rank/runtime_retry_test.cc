// The runtime library when its endpoint is unreachable for a while (the agent restarting): points
// stay queued, Flush says so, and once an endpoint listens on the port again every point arrives.
// Its own binary: the runtime library is a process-wide singleton configured once.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <string>

#include "gtest/gtest.h"
#include "kubetrain/agent/metrics/mlflow_endpoint.h"
#include "kubetrain/rank/runtime.h"

namespace kubetrain::runtime {
namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return 0;  // what getsockname reports for the unbound socket
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(RuntimeRetryTest, NothingIsLostWhileTheEndpointIsDown) {
  const int port = FreePort();
  RuntimeOptions options;
  options.tracking_uri = "http://127.0.0.1:" + std::to_string(port);
  options.run_id = "retry-job";
  options.install_signal_handlers = false;
  options.flush_interval = absl::Milliseconds(20);
  ASSERT_TRUE(InitRuntime(options).ok());

  for (int i = 0; i < 5000; ++i) LogMetric("loss", 1.0 / (i + 1), i);
  LogParam("lr", "0.5");
  absl::Status early = Flush(absl::Milliseconds(300));
  EXPECT_EQ(early.code(), absl::StatusCode::kDeadlineExceeded) << early;
  EXPECT_GT(GetRuntimeStats().failed_requests, 0);
  EXPECT_EQ(GetRuntimeStats().shipped, 0);

  std::mutex mu;
  int64_t points = 0;
  std::string lr;
  agent::MlflowEndpointOptions endpoint_options;
  endpoint_options.job = "retry-job";
  endpoint_options.source = "retry-test";
  endpoint_options.port = port;
  agent::MlflowEndpoint endpoint(endpoint_options, [&](const v1::MetricBatch& b) {
    std::lock_guard<std::mutex> lock(mu);
    points += b.metrics_size();
    for (const auto& p : b.params()) lr = p.value();
    return absl::OkStatus();
  });
  ASSERT_TRUE(endpoint.Start().ok());
  for (int i = 5000; i < 6000; ++i) LogMetric("loss", 1.0 / (i + 1), i);
  absl::Status flushed = Flush(absl::Seconds(30));
  ASSERT_TRUE(flushed.ok()) << flushed;
  ASSERT_TRUE(endpoint.Flush().ok());
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(points, 6000);
  EXPECT_EQ(lr, "0.5");
  EXPECT_EQ(GetRuntimeStats().dropped, 0);
  EXPECT_EQ(GetRuntimeStats().shipped, 6000);
}

}  // namespace
}  // namespace kubetrain::runtime
