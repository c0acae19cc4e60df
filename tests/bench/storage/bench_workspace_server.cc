// Many agents against one workspace server: 64 simulated agents (one thread and one gRPC
// connection each, with the job's token) stream metric batches (1000 points, as the agent's MLflow
// endpoint ships them) and log batches (500 lines, as its reporter flushes them) to one
// `workspace serve`-style server on loopback, and each updates its instance status every 100 ms.
// Reported: points/s and lines/s stored, and the p50 / p99 latency of a status update under that
// load. The peer, measured in the same run: the same load straight into the embedded workspace
// (each agent its own SQLite connection, as agents on the workspace's own machine do), then the
// ratio server / peer. After each run the stored counts are checked against what was sent.
//
// Usage: bench_workspace_server [agents] [seconds]   (default 64 agents, 4 s per run)
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kubetrain/storage/grpc_workspace.h"
#include "kubetrain/storage/tokens.h"
#include "kubetrain/storage/workspace.h"
#include "kubetrain/storage/workspace_server.h"

namespace {

using kubetrain::storage::Workspace;
using Clock = std::chrono::steady_clock;

constexpr int kPointsPerBatch = 1000;
constexpr int kLinesPerBatch = 500;
constexpr auto kStatusEvery = std::chrono::milliseconds(100);
const char* const kKeys[] = {"loss", "accuracy", "lr", "grad_norm"};

struct Result {
  int64_t points = 0, lines = 0;
  double seconds = 0;
  std::vector<double> status_us;  // every status update's latency
  bool ok = true;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

void Die(const std::string& what) {
  std::fprintf(stderr, "bench_workspace_server: %s\n", what.c_str());
  std::exit(1);
}

// Runs `agents` agents for `seconds` against the workspaces `open` returns (one per agent).
Result Run(int agents, double seconds, const std::string& job,
           const std::function<std::unique_ptr<Workspace>(int)>& open) {
  std::vector<std::unique_ptr<Workspace>> workspaces;
  for (int a = 0; a < agents; ++a) workspaces.push_back(open(a));
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<Result> per(agents);
  std::vector<std::thread> threads;
  Clock::time_point start;
  for (int a = 0; a < agents; ++a) {
    threads.emplace_back([&, a] {
      Workspace& ws = *workspaces[a];
      Result& r = per[a];
      kubetrain::v1::MetricBatch batch;
      batch.set_job(job);
      batch.set_source(absl::StrCat("agent-", a));
      for (int i = 0; i < kPointsPerBatch; ++i) {
        kubetrain::v1::Metric* m = batch.add_metrics();
        m->set_key(kKeys[i % 4]);
        m->set_value(1.0 / (i + 1));
        m->set_rank(a);
      }
      std::vector<kubetrain::v1::LogLine> lines(kLinesPerBatch);
      for (auto& l : lines) {
        l.set_job(job);
        l.set_instance(a);
        l.set_rank(a);
        l.set_text("step 1234: loss 0.0123 accuracy 0.987 lr 0.001 throughput 1234.5 samples/s");
      }
      kubetrain::v1::InstanceStatus status;
      status.set_index(a);
      status.set_state(kubetrain::v1::JOB_STATE_RUNNING);
      status.add_ranks()->set_rank(a);
      int64_t batch_seq = 0, line_seq = 0;
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      const Clock::time_point deadline = start + std::chrono::duration_cast<Clock::duration>(
                                                     std::chrono::duration<double>(seconds));
      Clock::time_point next_status = start;
      while (Clock::now() < deadline) {
        batch.set_sequence(batch_seq++);
        for (int i = 0; i < kPointsPerBatch; ++i) {
          batch.mutable_metrics(i)->set_step(batch.sequence() * kPointsPerBatch / 4 + i / 4);
        }
        if (!ws.IngestMetrics(batch).ok()) r.ok = false;
        r.points += kPointsPerBatch;
        for (auto& l : lines) {
          l.set_sequence(line_seq++);
          l.set_timestamp_ns(line_seq);
        }
        if (!ws.AppendLogs(lines).ok()) r.ok = false;
        r.lines += kLinesPerBatch;
        if (Clock::now() >= next_status) {
          status.set_message(absl::StrCat("batch ", batch_seq));
          Clock::time_point t0 = Clock::now();
          if (!ws.UpdateInstanceStatus(job, status).ok()) r.ok = false;
          r.status_us.push_back(
              std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
          next_status += kStatusEvery;
        }
      }
    });
  }
  while (ready.load() < agents) std::this_thread::yield();
  start = Clock::now();
  go.store(true);
  for (auto& t : threads) t.join();
  Result total;
  total.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (Result& r : per) {
    total.points += r.points;
    total.lines += r.lines;
    total.ok = total.ok && r.ok;
    total.status_us.insert(total.status_us.end(), r.status_us.begin(), r.status_us.end());
  }
  return total;
}

// The stored counts must match what was sent.
void Verify(Workspace& ws, const std::string& job, const Result& r, const char* what) {
  if (!r.ok) Die(absl::StrCat(what, ": a call failed"));
  auto summary = ws.MetricSummary(job);
  if (!summary.ok()) Die(summary.status().ToString());
  int64_t points = 0;
  for (const auto& s : *summary) points += s.count;
  int64_t lines = 0;
  kubetrain::storage::LogQuery q;
  q.job = job;
  q.limit = 100000;
  while (true) {
    auto page = ws.ReadLogs(q);
    if (!page.ok()) Die(page.status().ToString());
    if (page->lines.empty()) break;
    lines += static_cast<int64_t>(page->lines.size());
    q.after_id = page->next_id;
  }
  if (points != r.points || lines != r.lines) {
    Die(absl::StrCat(what, ": stored ", points, " points and ", lines, " lines, sent ", r.points,
                     " and ", r.lines));
  }
}

void Print(const char* name, const Result& r) {
  std::printf("%-22s %12.0f %12.0f %12.0f %12.0f %10zu\n", name,
              static_cast<double>(r.points) / r.seconds, static_cast<double>(r.lines) / r.seconds,
              Percentile(r.status_us, 0.5), Percentile(r.status_us, 0.99), r.status_us.size());
}

}  // namespace

int main(int argc, char** argv) {
  const int agents = argc > 1 ? std::atoi(argv[1]) : 64;
  const double seconds = argc > 2 ? std::atof(argv[2]) : 4.0;
  if (agents <= 0 || seconds <= 0) Die("usage: bench_workspace_server [agents] [seconds]");
  char tmpl[] = "/tmp/kubetrain-bench-wss-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Die("mkdtemp failed");
  const std::string root = tmpl;
  const std::string job = "bench";
  auto make_job = [&](Workspace& ws) {
    kubetrain::v1::JobRecord record;
    record.mutable_spec()->set_name(job);
    record.mutable_status()->set_state(kubetrain::v1::JOB_STATE_RUNNING);
    if (!ws.CreateJob(record).ok()) Die("cannot create the job");
  };

  // The server: an embedded workspace behind a WorkspaceServer on loopback; agents hold job tokens.
  auto served = kubetrain::storage::OpenEmbeddedWorkspace(root + "/served");
  if (!served.ok()) Die(served.status().ToString());
  make_job(**served);
  auto token = kubetrain::storage::GenerateServerToken();
  kubetrain::storage::WorkspaceServerOptions options;
  options.listen = "127.0.0.1:0";
  options.token = *token;
  auto server = kubetrain::storage::StartWorkspaceServer(served->get(), options);
  if (!server.ok()) Die(server.status().ToString());
  const std::string job_token = kubetrain::storage::MakeJobToken(*token, job);
  Result grpc = Run(agents, seconds, job, [&](int) {
    kubetrain::storage::WorkspaceConnectOptions connect;
    connect.token = job_token;
    auto ws = kubetrain::storage::OpenGrpcWorkspace((*server)->location(), connect);
    if (!ws.ok()) Die(ws.status().ToString());
    return std::move(*ws);
  });
  Verify(**served, job, grpc, "server");
  (*server)->Shutdown(absl::Seconds(1));

  // The peer: the same agents writing the embedded workspace directly.
  auto direct = kubetrain::storage::OpenEmbeddedWorkspace(root + "/direct");
  if (!direct.ok()) Die(direct.status().ToString());
  make_job(**direct);
  Result embedded = Run(agents, seconds, job, [&](int) {
    auto ws = kubetrain::storage::OpenEmbeddedWorkspace(root + "/direct");
    if (!ws.ok()) Die(ws.status().ToString());
    return std::move(*ws);
  });
  Verify(**direct, job, embedded, "embedded");

  std::printf(
      "bench_workspace_server: %d agents x %.1f s; batches of %d points and %d lines; "
      "a status update per agent every %lld ms (machine: %u cpus)\n",
      agents, seconds, kPointsPerBatch, kLinesPerBatch,
      static_cast<long long>(kStatusEvery.count()), std::thread::hardware_concurrency());
  std::printf("%-22s %12s %12s %12s %12s %10s\n", "", "points/s", "lines/s", "status p50us",
              "status p99us", "updates");
  Print("workspace server", grpc);
  Print("embedded (peer)", embedded);
  std::printf("%-22s %12.2f %12.2f %12.2f %12.2f\n", "ratio server/peer",
              (grpc.points / grpc.seconds) / (embedded.points / embedded.seconds),
              (grpc.lines / grpc.seconds) / (embedded.lines / embedded.seconds),
              Percentile(grpc.status_us, 0.5) / Percentile(embedded.status_us, 0.5),
              Percentile(grpc.status_us, 0.99) / Percentile(embedded.status_us, 0.99));
  std::filesystem::remove_all(root);
  return 0;
}
