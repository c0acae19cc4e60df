// Metric ingest rate: Workspace::IngestMetrics (embedded workspace, batches of 1000 points, each
// batch one idempotent transaction with its per-key summary) against a plain batched SQLite insert
// of the same rows (one prepared INSERT into a table with the same columns and no index, one
// transaction per 1000 rows, WAL + synchronous=NORMAL like the workspace), in the same run on the
// same disk. Rounds alternate between the two; each prints points/s, and the last line gives the
// medians and the median of the rounds' ratios (target: ratio >= 0.5).
//
// Usage: bench_ingest [points] [rounds]   (default 200000 points, 5 rounds)
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "kubetrain/storage/workspace.h"

namespace {

constexpr int kBatch = 1000;
const char* const kKeys[] = {"loss", "accuracy", "lr", "grad_norm"};

std::vector<kubetrain::v1::MetricBatch> MakeBatches(const std::string& job, int points) {
  std::vector<kubetrain::v1::MetricBatch> batches;
  for (int i = 0; i < points; i += kBatch) {
    kubetrain::v1::MetricBatch b;
    b.set_job(job);
    b.set_source("instance-0");
    b.set_sequence(static_cast<int64_t>(batches.size()) + 1);
    for (int j = i; j < std::min(points, i + kBatch); ++j) {
      kubetrain::v1::Metric* m = b.add_metrics();
      m->set_key(kKeys[j % 4]);
      m->set_value(1.0 / (j + 1));
      m->set_step(j / 4);
      m->set_timestamp_ms(1700000000000 + j);
      m->set_rank(0);
    }
    batches.push_back(std::move(b));
  }
  return batches;
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void Check(int rc, sqlite3* db, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE) {
    std::fprintf(stderr, "bench_ingest: sqlite %s: %s\n", what, sqlite3_errmsg(db));
    std::exit(1);
  }
}

double WorkspaceRate(const std::string& dir, const std::vector<kubetrain::v1::MetricBatch>& batches,
                     int points) {
  auto ws = kubetrain::storage::OpenEmbeddedWorkspace(dir);
  if (!ws.ok()) {
    std::fprintf(stderr, "bench_ingest: %s\n", std::string(ws.status().message()).c_str());
    std::exit(1);
  }
  auto start = std::chrono::steady_clock::now();
  for (const auto& b : batches) {
    absl::Status s = (*ws)->IngestMetrics(b);
    if (!s.ok()) {
      std::fprintf(stderr, "bench_ingest: %s\n", std::string(s.message()).c_str());
      std::exit(1);
    }
  }
  return points / Seconds(start);
}

double PlainSqliteRate(const std::string& path,
                       const std::vector<kubetrain::v1::MetricBatch>& batches, int points) {
  sqlite3* db = nullptr;
  Check(sqlite3_open(path.c_str(), &db), db, "open");
  Check(sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     "CREATE TABLE points(job TEXT, key TEXT, step INTEGER,"
                     " timestamp_ms INTEGER, value REAL, rank INTEGER)",
                     nullptr, nullptr, nullptr),
        db, "create");
  sqlite3_stmt* st = nullptr;
  Check(sqlite3_prepare_v2(db, "INSERT INTO points VALUES(?, ?, ?, ?, ?, ?)", -1, &st, nullptr), db,
        "prepare");
  auto start = std::chrono::steady_clock::now();
  for (const auto& b : batches) {
    Check(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), db, "begin");
    for (const auto& m : b.metrics()) {
      sqlite3_reset(st);
      sqlite3_bind_text(st, 1, b.job().data(), static_cast<int>(b.job().size()), SQLITE_STATIC);
      sqlite3_bind_text(st, 2, m.key().data(), static_cast<int>(m.key().size()), SQLITE_STATIC);
      sqlite3_bind_int64(st, 3, m.step());
      sqlite3_bind_int64(st, 4, m.timestamp_ms());
      sqlite3_bind_double(st, 5, m.value());
      sqlite3_bind_int64(st, 6, m.rank());
      Check(sqlite3_step(st), db, "insert");
    }
    Check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db, "commit");
  }
  double rate = points / Seconds(start);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rate;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int points = argc > 1 ? std::atoi(argv[1]) : 200000;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  char tmpl[] = "/tmp/kubetrain-bench-ingest-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::perror("bench_ingest: mkdtemp");
    return 1;
  }
  const std::string root = tmpl;
  std::vector<double> ours, plain, ratios;
  for (int r = 0; r < rounds; ++r) {
    const std::string job = "bench-" + std::to_string(r);
    auto batches = MakeBatches(job, points);
    ours.push_back(WorkspaceRate(root + "/ws-" + std::to_string(r), batches, points));
    plain.push_back(PlainSqliteRate(root + "/plain-" + std::to_string(r) + ".db", batches, points));
    ratios.push_back(ours.back() / plain.back());
    std::printf(
        "round %d: IngestMetrics %.0f points/s, plain SQLite insert %.0f points/s, "
        "ratio %.2f\n",
        r, ours.back(), plain.back(), ratios.back());
  }
  std::filesystem::remove_all(root);
  std::printf(
      "ingest %d points in batches of %d (median of %d rounds): IngestMetrics %.0f "
      "points/s vs plain batched SQLite insert %.0f points/s: ratio %.2f (median of the "
      "rounds' ratios; target >= 0.50)\n",
      points, kBatch, rounds, Median(ours), Median(plain), Median(ratios));
  return 0;
}
