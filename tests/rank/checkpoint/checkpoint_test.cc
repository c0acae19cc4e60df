// Tests of kubetrain::checkpoint: crc32c, multi-rank round trips (ranks as forked processes),
// corruption reports, retention, SaveAsync, and crash consistency under SIGKILL at random moments.
#include "kubetrain/rank/checkpoint.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kubetrain::checkpoint {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

uint32_t Crc32cReference(const uint8_t* p, size_t n) {
  uint32_t crc = ~0u;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
  }
  return ~crc;
}

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Deterministic contents of tensor `t` of `rank` at `step`.
std::vector<uint8_t> Pattern(int64_t step, int rank, int t, size_t size) {
  std::vector<uint8_t> v(size);
  uint64_t seed = SplitMix(static_cast<uint64_t>(step) * 1000003 + rank * 101 + t);
  for (size_t i = 0; i < size; i += 8) {
    uint64_t w = SplitMix(seed + i);
    std::memcpy(v.data() + i, &w, std::min<size_t>(8, size - i));
  }
  return v;
}

struct Tensors {
  std::vector<std::vector<uint8_t>> data;
  std::vector<NamedBuffer> buffers;
};

// Three tensors; sizes vary with step and rank (one is empty).
Tensors MakeTensors(int64_t step, int rank, size_t base = 64 * 1024) {
  Tensors t;
  const size_t sizes[] = {base + static_cast<size_t>(step % 13), 0,
                          3 * base + static_cast<size_t>(rank * 7)};
  const char* names[] = {"weights", "empty", "optimizer.state"};
  for (int i = 0; i < 3; ++i) t.data.push_back(Pattern(step, rank, i, sizes[i]));
  for (int i = 0; i < 3; ++i) {
    t.buffers.push_back(NamedBuffer{names[i], t.data[i].data(), t.data[i].size()});
  }
  return t;
}

// Checks that `loaded` holds exactly MakeTensors(step, rank, base).
void ExpectTensors(const LoadedCheckpoint& loaded, int64_t step, int rank,
                   size_t base = 64 * 1024) {
  Tensors want = MakeTensors(step, rank, base);
  ASSERT_EQ(loaded.tensors.size(), want.buffers.size());
  for (size_t i = 0; i < want.buffers.size(); ++i) {
    EXPECT_EQ(loaded.tensors[i].name, want.buffers[i].name);
    ASSERT_EQ(loaded.tensors[i].data.size(), want.data[i].size()) << "step " << step;
    EXPECT_TRUE(want.data[i].empty() || std::memcmp(loaded.tensors[i].data.data(),
                                                    want.data[i].data(), want.data[i].size()) == 0)
        << "tensor " << want.buffers[i].name << " of rank " << rank << " step " << step;
  }
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kubetrain-ckpt-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/ckpt";
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<Checkpointer> Make(int rank, int world, int keep_last = 3,
                                     std::string attempt = "t") {
    CheckpointOptions o;
    o.dir = dir_;
    o.rank = rank;
    o.world_size = world;
    o.keep_last = keep_last;
    o.attempt = std::move(attempt);
    o.barrier_timeout = absl::Seconds(30);
    auto ck = Checkpointer::Create(std::move(o));
    EXPECT_TRUE(ck.ok()) << ck.status();
    return ck.ok() ? std::move(*ck) : nullptr;
  }

  // Runs `fn(rank)` in `world` forked processes; returns their exit codes.
  std::vector<int> ForkRanks(int world, const std::function<int(int)>& fn) {
    std::vector<pid_t> pids;
    for (int r = 0; r < world; ++r) {
      pid_t pid = ::fork();
      if (pid == 0) {
        int rc = fn(r);
        std::fflush(nullptr);
        ::_exit(rc);
      }
      pids.push_back(pid);
    }
    std::vector<int> codes;
    for (pid_t pid : pids) {
      int st = 0;
      ::waitpid(pid, &st, 0);
      codes.push_back(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    }
    return codes;
  }

  std::string root_;
  std::string dir_;
};

TEST(Crc32cTest, KnownVectorAndReference) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32c("", 0), 0u);
  std::vector<uint8_t> data = Pattern(1, 2, 3, 200000);
  for (size_t off : {0, 1, 3, 7}) {
    for (size_t len : {0, 1, 7, 8, 255, 768, 24575, 24576, 24577, 100000, 199990}) {
      ASSERT_EQ(Crc32c(data.data() + off, len), Crc32cReference(data.data() + off, len))
          << off << " " << len;
    }
  }
  uint32_t inc = Crc32c(data.data(), 12345);
  inc = Crc32c(data.data() + 12345, data.size() - 12345, inc);
  EXPECT_EQ(inc, Crc32c(data.data(), data.size()));
}

TEST_F(CheckpointTest, CreateResolvesEnvironmentAndRejectsBadOptions) {
  ::setenv("KUBETRAIN_CHECKPOINT_DIR", dir_.c_str(), 1);
  ::setenv("RANK", "1", 1);
  ::setenv("WORLD_SIZE", "4", 1);
  auto ck = Checkpointer::Create({});
  ::unsetenv("KUBETRAIN_CHECKPOINT_DIR");
  ::unsetenv("RANK");
  ::unsetenv("WORLD_SIZE");
  ASSERT_TRUE(ck.ok()) << ck.status();
  EXPECT_EQ((*ck)->dir(), dir_);
  EXPECT_EQ((*ck)->rank(), 1);
  EXPECT_EQ((*ck)->world_size(), 4);
  EXPECT_TRUE(fs::is_directory(dir_));
  EXPECT_EQ(Checkpointer::Create({}).status().code(), absl::StatusCode::kInvalidArgument);
  CheckpointOptions bad;
  bad.dir = dir_;
  bad.rank = 2;
  bad.world_size = 2;
  EXPECT_EQ(Checkpointer::Create(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CheckpointTest, NoCheckpointIsNotFound) {
  auto ck = Make(0, 1);
  EXPECT_EQ(ck->LatestStep().status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ck->Load(3).status().code(), absl::StatusCode::kNotFound);
}

class RoundTripTest : public CheckpointTest, public ::testing::WithParamInterface<int> {};

TEST_P(RoundTripTest, EveryRankLoadsWhatItSaved) {
  const int world = GetParam();
  std::vector<int> codes = ForkRanks(world, [&](int rank) {
    auto ck = Make(rank, world);
    for (int64_t step : {10, 20}) {
      Tensors t = MakeTensors(step, rank);
      absl::Status s = (step == 10) ? ck->Save(step, t.buffers, {{"lr", "0.1"}})
                                    : ck->SaveAsync(step, t.buffers, {{"lr", "0.2"}});
      if (s.ok()) s = ck->Wait();
      if (!s.ok()) {
        std::fprintf(stderr, "rank %d step %lld: %s\n", rank, static_cast<long long>(step),
                     s.ToString().c_str());
        return 1;
      }
      // Save returns once the checkpoint is visible, on every rank.
      auto latest = ck->LatestStep();
      if (!latest.ok() || *latest != step) return 2;
    }
    return 0;
  });
  EXPECT_THAT(codes, ::testing::Each(0));
  EXPECT_FALSE(fs::exists(dir_ + "/step-20.tmp"));
  for (int rank = 0; rank < world; ++rank) {
    auto ck = Make(rank, world);
    auto latest = ck->LatestStep();
    ASSERT_TRUE(latest.ok()) << latest.status();
    EXPECT_EQ(*latest, 20);
    for (int64_t step : {10, 20}) {
      auto loaded = ck->Load(step);
      ASSERT_TRUE(loaded.ok()) << loaded.status();
      EXPECT_EQ(loaded->step, step);
      EXPECT_EQ(loaded->world_size, world);
      EXPECT_EQ(loaded->metadata.at("lr"), step == 10 ? "0.1" : "0.2");
      ExpectTensors(*loaded, step, rank);
      ASSERT_NE(loaded->Find("optimizer.state"), nullptr);
      EXPECT_EQ(loaded->Find("nope"), nullptr);
    }
    EXPECT_TRUE(fs::exists(dir_ + "/step-20/shard-" + std::to_string(rank) + ".bin"));
  }
  EXPECT_TRUE(Make(0, world)->VerifyAll(20).ok());
  // A job of another size cannot load this rank's shard.
  EXPECT_EQ(Make(0, world + 1)->Load(20).status().code(), absl::StatusCode::kFailedPrecondition);
}

INSTANTIATE_TEST_SUITE_P(Ranks, RoundTripTest, ::testing::Values(1, 2, 3));

TEST_F(CheckpointTest, UserBarrierIsCalledTwicePerSaveOnEveryRank) {
  // Two ranks as threads of one process, with a counting barrier.
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0, generation = 0, calls = 0;
  auto barrier = [&]() -> absl::Status {
    std::unique_lock<std::mutex> lock(mu);
    ++calls;
    int gen = generation;
    if (++arrived == 2) {
      arrived = 0;
      ++generation;
      cv.notify_all();
    } else {
      cv.wait(lock, [&] { return generation != gen; });
    }
    return absl::OkStatus();
  };
  std::vector<absl::Status> results(2);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      CheckpointOptions o;
      o.dir = dir_;
      o.rank = rank;
      o.world_size = 2;
      o.barrier = barrier;
      auto ck = Checkpointer::Create(o);
      if (!ck.ok()) {
        results[rank] = ck.status();
        return;
      }
      Tensors t = MakeTensors(5, rank);
      results[rank] = (*ck)->Save(5, t.buffers);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(results[0].ok()) << results[0];
  EXPECT_TRUE(results[1].ok()) << results[1];
  EXPECT_EQ(calls, 4);
  auto loaded = Make(1, 2)->Load(5);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectTensors(*loaded, 5, 1);
}

TEST_F(CheckpointTest, CorruptShardIsReportedByRankAndFile) {
  std::vector<int> codes = ForkRanks(2, [&](int rank) {
    Tensors t = MakeTensors(7, rank);
    return Make(rank, 2)->Save(7, t.buffers).ok() ? 0 : 1;
  });
  ASSERT_THAT(codes, ElementsAre(0, 0));
  const std::string shard = dir_ + "/step-7/shard-1.bin";
  {
    std::fstream f(shard, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    char c = 0;
    f.read(&c, 1);
    c ^= 0x01;
    f.seekp(1000);
    f.write(&c, 1);
  }
  auto bad = Make(1, 2)->Load(7);
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(bad.status().message(), HasSubstr("rank 1"));
  EXPECT_THAT(bad.status().message(), HasSubstr(shard));
  absl::Status all = Make(0, 2)->VerifyAll(7);
  EXPECT_EQ(all.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(all.message(), HasSubstr("shard-1.bin"));
  EXPECT_TRUE(Make(0, 2)->Load(7).ok());  // rank 0's shard is intact

  // A truncated shard makes the checkpoint incomplete: LatestStep skips it.
  fs::resize_file(shard, 10);
  EXPECT_EQ(Make(0, 2)->LatestStep().status().code(), absl::StatusCode::kNotFound);
  auto truncated = Make(1, 2)->Load(7);
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(truncated.status().message(), HasSubstr("rank 1"));
}

TEST_F(CheckpointTest, StaleShardOfAnEarlierAttemptIsNotPublished) {
  // Attempt "old" of a 2-rank job was killed after rank 1 finished its shard of step 5.
  ASSERT_THAT(
      ForkRanks(2,
                [&](int rank) {
                  if (rank == 0) return 0;
                  CheckpointOptions o;
                  o.dir = dir_;
                  o.rank = 1;
                  o.world_size = 2;
                  o.attempt = "old";
                  o.barrier_timeout = absl::Milliseconds(300);
                  auto ck = std::move(*Checkpointer::Create(o));
                  Tensors t = MakeTensors(5, 1);
                  // Rank 0 never publishes: rank 1 times out, its shard stays in step-5.tmp.
                  return ck->Save(5, t.buffers).code() == absl::StatusCode::kDeadlineExceeded ? 0
                                                                                              : 1;
                }),
      ElementsAre(0, 0));
  ASSERT_TRUE(fs::exists(dir_ + "/step-5.tmp/shard-1.meta"));
  // The retried job's rank 0 (attempt "new") must not take rank 1's stale shard.
  CheckpointOptions o;
  o.dir = dir_;
  o.rank = 0;
  o.world_size = 2;
  o.attempt = "new";
  o.barrier_timeout = absl::Milliseconds(300);
  auto ck = std::move(*Checkpointer::Create(o));
  Tensors t = MakeTensors(5, 0);
  absl::Status s = ck->Save(5, t.buffers);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(s.message(), HasSubstr("rank 1"));
  EXPECT_EQ(ck->LatestStep().status().code(), absl::StatusCode::kNotFound);
  // The next attempt, with both ranks, saves step 5 over the stale temporary. (Within one
  // attempt a step is saved once: that is what tells a fresh shard from a stale one.)
  ASSERT_THAT(ForkRanks(2,
                        [&](int rank) {
                          Tensors t = MakeTensors(5, rank);
                          return Make(rank, 2, 3, "next")->Save(5, t.buffers).ok() ? 0 : 1;
                        }),
              ElementsAre(0, 0));
  ExpectTensors(*Make(1, 2)->Load(5), 5, 1);
}

TEST_F(CheckpointTest, LatestStepIgnoresTemporaryAndInvalidDirectories) {
  auto ck = Make(0, 1);
  Tensors t = MakeTensors(3, 0);
  ASSERT_TRUE(ck->Save(3, t.buffers).ok());
  ASSERT_TRUE(ck->Save(4, t.buffers).ok());
  fs::create_directories(dir_ + "/step-9.tmp");
  fs::copy(dir_ + "/step-4", dir_ + "/step-8.tmp");  // complete-looking, but .tmp
  fs::create_directories(dir_ + "/step-7");
  std::ofstream(dir_ + "/step-7/manifest.pb") << "garbage";
  fs::copy(dir_ + "/step-4", dir_ + "/step-6");
  fs::remove(dir_ + "/step-6/shard-0.bin");      // missing shard
  fs::copy(dir_ + "/step-4", dir_ + "/step-5");  // manifest says step 4
  fs::create_directories(dir_ + "/step-10x");
  auto latest = ck->LatestStep();
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(*latest, 4);
  EXPECT_THAT(*ck->CompleteSteps(), ElementsAre(3, 4));
  EXPECT_EQ(ck->Save(4, t.buffers).code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(CheckpointTest, RetentionKeepsLastKPlusMarked) {
  auto ck = Make(0, 1, /*keep_last=*/2);
  for (int64_t step = 1; step <= 6; ++step) {
    Tensors t = MakeTensors(step, 0, 1024);
    ASSERT_TRUE(ck->Save(step, t.buffers).ok());
    if (step == 2) {
      ASSERT_TRUE(ck->MarkKeep(2).ok());
    }
  }
  EXPECT_THAT(*ck->CompleteSteps(), ElementsAre(2, 5, 6));
  EXPECT_EQ(ck->MarkKeep(3).code(), absl::StatusCode::kNotFound);

  // Abandoned temporaries below the newest complete step go; newer ones (in progress) stay.
  fs::create_directories(dir_ + "/step-4.tmp");
  fs::create_directories(dir_ + "/step-9.tmp");
  fs::create_directories(dir_ + "/step-1.deleting");
  ASSERT_TRUE(ck->ApplyRetention().ok());
  EXPECT_FALSE(fs::exists(dir_ + "/step-4.tmp"));
  EXPECT_FALSE(fs::exists(dir_ + "/step-1.deleting"));
  EXPECT_TRUE(fs::exists(dir_ + "/step-9.tmp"));

  // keep_last = 1 never deletes the newest complete one, even when the newest dir is broken.
  auto one = Make(0, 1, /*keep_last=*/1);
  fs::create_directories(dir_ + "/step-100");
  ASSERT_TRUE(one->ApplyRetention().ok());
  EXPECT_THAT(*one->CompleteSteps(), ElementsAre(2, 6));
  ExpectTensors(*one->Load(6), 6, 0, 1024);
}

TEST_F(CheckpointTest, PublishedCheckpointsIncludeRetiredOnesAndSurviveATornJournal) {
  auto ck = Make(0, 1, /*keep_last=*/2, "4");
  for (int64_t step = 1; step <= 4; ++step) {
    Tensors t = MakeTensors(step, 0, 1024);
    ASSERT_TRUE(ck->Save(step, t.buffers).ok());
  }
  EXPECT_THAT(*ck->CompleteSteps(), ElementsAre(3, 4));
  // A crash mid-append leaves a torn line; a crash after the rename but before the append leaves
  // a complete directory without a line (simulated by removing the journal's line for step 4).
  std::string journal;
  {
    std::ifstream in(dir_ + "/checkpoints.journal");
    std::getline(in, journal, '\0');
  }
  ASSERT_EQ(std::count(journal.begin(), journal.end(), '\n'), 4) << journal;
  journal = journal.substr(0, journal.rfind('\n', journal.size() - 2) + 1) + "5 12";
  std::ofstream(dir_ + "/checkpoints.journal", std::ios::trunc) << journal;

  auto published = ListPublishedCheckpoints(dir_);
  ASSERT_TRUE(published.ok()) << published.status();
  ASSERT_EQ(published->size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const PublishedCheckpoint& c = (*published)[i];
    EXPECT_EQ(c.step, i + 1);
    EXPECT_EQ(c.size_bytes, 1024 + (i + 1) % 13 + 3 * 1024) << "step " << c.step;
    EXPECT_EQ(c.attempt, "4");
    EXPECT_GE(c.save_duration_ms, 0);
    EXPECT_GT(c.created_unix_ms, 0);
    EXPECT_EQ(c.location, dir_ + "/step-" + std::to_string(i + 1));
    EXPECT_EQ(c.present, c.step >= 3) << "step " << c.step;  // keep_last 2
  }
  auto none = ListPublishedCheckpoints(root_ + "/missing");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(CheckpointTest, SaveAsyncReturnsBeforePersistingAndSnapshotsTheBuffers) {
  // A barrier that blocks until released holds the background save before the publish.
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> entered{0};
  CheckpointOptions o;
  o.dir = dir_;
  o.rank = 0;
  o.world_size = 1;
  o.barrier = [&]() -> absl::Status {
    ++entered;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return release; });
    return absl::OkStatus();
  };
  auto ck = std::move(*Checkpointer::Create(o));
  Tensors t = MakeTensors(11, 0, 1 << 20);
  ASSERT_TRUE(ck->SaveAsync(11, t.buffers, {{"k", "v"}}).ok());
  // Returned while the save is still in flight.
  EXPECT_EQ(ck->LatestStep().status().code(), absl::StatusCode::kNotFound);
  for (auto& d : t.data) std::fill(d.begin(), d.end(), 0xEE);  // the caller reuses its buffers
  while (entered.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(ck->LatestStep().status().code(), absl::StatusCode::kNotFound);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  ASSERT_TRUE(ck->Wait().ok());
  auto loaded = ck->Load(11);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectTensors(*loaded, 11, 0, 1 << 20);  // the snapshot, not the overwritten buffers
  EXPECT_EQ(loaded->metadata.at("k"), "v");

  // A second SaveAsync waits for the first; both land.
  Tensors t2 = MakeTensors(12, 0, 1 << 20);
  Tensors t3 = MakeTensors(13, 0, 1 << 20);
  ASSERT_TRUE(ck->SaveAsync(12, t2.buffers).ok());
  ASSERT_TRUE(ck->SaveAsync(13, t3.buffers).ok());
  ASSERT_TRUE(ck->Wait().ok());
  EXPECT_THAT(*ck->CompleteSteps(), ElementsAre(11, 12, 13));
  ExpectTensors(*ck->Load(12), 12, 0, 1 << 20);
  ExpectTensors(*ck->Load(13), 13, 0, 1 << 20);
}

// kCopyOnWrite: the caller overwrites its buffers right after SaveAsync returns, from two
// threads, while the background thread copies; the checkpoint still holds the old bytes, and the
// buffers are writable (unprotected) afterwards.
TEST_F(CheckpointTest, CopyOnWriteSnapshotSurvivesImmediateOverwrites) {
  CheckpointOptions o;
  o.dir = dir_;
  o.rank = 0;
  o.world_size = 1;
  o.async_snapshot = AsyncSnapshot::kCopyOnWrite;
  auto ck = std::move(*Checkpointer::Create(o));
  for (int64_t step = 1; step <= 6; ++step) {
    // Odd sizes: unaligned heads and tails around the protected interiors.
    Tensors t = MakeTensors(step, 0, (8 << 20) + 123);
    ASSERT_TRUE(ck->SaveAsync(step, t.buffers).ok());
    std::thread other([&] { std::fill(t.data[2].begin(), t.data[2].end(), 0x5A); });
    if (step % 2 == 0) {
      for (size_t i = 0; i < t.data[0].size(); i += 4096) t.data[0][i] ^= 0xFF;  // page by page
    } else {
      std::fill(t.data[0].rbegin(), t.data[0].rend(), 0xA5);  // backwards
    }
    other.join();
    ASSERT_TRUE(ck->Wait().ok());
    auto loaded = ck->Load(step);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ExpectTensors(*loaded, step, 0, (8 << 20) + 123);
    std::fill(t.data[0].begin(), t.data[0].end(), 1);  // writable again, no fault left
  }
}

// A fault outside every snapshot still takes the default action once the handler is installed.
TEST_F(CheckpointTest, CopyOnWriteHandlerPassesOtherFaultsOn) {
  CheckpointOptions o;
  o.dir = dir_;
  o.rank = 0;
  o.world_size = 1;
  o.async_snapshot = AsyncSnapshot::kCopyOnWrite;
  auto ck = std::move(*Checkpointer::Create(o));
  Tensors t = MakeTensors(1, 0, 1 << 20);
  ASSERT_TRUE(ck->SaveAsync(1, t.buffers).ok());
  ASSERT_TRUE(ck->Wait().ok());
  EXPECT_DEATH(
      {
        volatile int* bad = reinterpret_cast<volatile int*>(16);
        *bad = 1;
      },
      "");
}

#ifdef KUBETRAIN_CHECKPOINT_NO_CUDA
TEST_F(CheckpointTest, DeviceBufferWithoutCudaIsAClearError) {
  auto ck = Make(0, 1);
  uint8_t byte = 1;
  NamedBuffer b{"weights", &byte, 1, Memory::kCuda};
  for (bool async : {false, true}) {
    absl::Status s = async ? ck->SaveAsync(1, {&b, 1}) : ck->Save(1, {&b, 1});
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_THAT(s.message(), HasSubstr("built without CUDA"));
  }
  EXPECT_EQ(ck->LatestStep().status().code(), absl::StatusCode::kNotFound);
}
#endif

TEST_F(CheckpointTest, AsyncErrorIsReportedByWaitAndErrorsNameThePath) {
  auto ck = Make(0, 1);
  Tensors t = MakeTensors(1, 0, 1024);
  ASSERT_TRUE(ck->Save(1, t.buffers).ok());
  ASSERT_TRUE(ck->SaveAsync(1, t.buffers).ok());
  absl::Status s = ck->Wait();
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr(dir_ + "/step-1"));
  EXPECT_TRUE(ck->Wait().ok());

  // A file where the directory should be: errno mapped, path named.
  std::ofstream(root_ + "/file") << "x";
  CheckpointOptions o;
  o.dir = root_ + "/file/sub";
  o.rank = 0;
  o.world_size = 1;
  auto bad = Checkpointer::Create(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr(root_ + "/file"));
  if (::geteuid() != 0) {
    fs::create_directories(root_ + "/ro");
    ::chmod((root_ + "/ro").c_str(), 0555);
    CheckpointOptions r = o;
    r.dir = root_ + "/ro";
    auto ro = Checkpointer::Create(r);
    ASSERT_TRUE(ro.ok());
    absl::Status denied = (*ro)->Save(1, t.buffers);
    EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(denied.message(), HasSubstr(root_ + "/ro/step-1.tmp"));
    ::chmod((root_ + "/ro").c_str(), 0755);
  }
}

// A child saves steps in a loop (alternating Save and SaveAsync) and is SIGKILLed at a random
// moment, 100 times. After each kill a fresh Checkpointer must find a complete checkpoint whose
// every tensor equals what was saved for that step, and never go backwards.
TEST_F(CheckpointTest, CrashConsistencyUnderSigkillAtRandomMoments) {
  constexpr int kKills = 100;
  const size_t base = 32 * 1024;  // ~128 KiB per step: many saves, kills land in every phase
  {
    auto ck = Make(0, 1, 2);
    Tensors t = MakeTensors(0, 0, base);
    ASSERT_TRUE(ck->Save(0, t.buffers).ok());
  }
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> delay_us(0, 30000);
  int64_t prev = 0;
  int mid_save = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kKills; ++i) {
    pid_t pid = ::fork();
    if (pid == 0) {
      auto ck = Make(0, 1, 2);
      auto latest = ck->LatestStep();
      int64_t step = latest.ok() ? *latest + 1 : 0;
      for (;; ++step) {
        Tensors t = MakeTensors(step, 0, base);
        absl::Status s = (step % 2) ? ck->Save(step, t.buffers) : ck->SaveAsync(step, t.buffers);
        if (!s.ok()) {
          std::fprintf(stderr, "child: step %lld: %s\n", static_cast<long long>(step),
                       s.ToString().c_str());
          ::_exit(1);
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(st)) << "child exited by itself, status " << st;
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.path().extension() == ".tmp") ++mid_save;
    }
    auto ck = Make(0, 1, 2);
    auto latest = ck->LatestStep();
    ASSERT_TRUE(latest.ok()) << "kill " << i << ": " << latest.status();
    ASSERT_GE(*latest, prev) << "kill " << i;
    prev = *latest;
    auto loaded = ck->Load(*latest);
    ASSERT_TRUE(loaded.ok()) << "kill " << i << ": " << loaded.status();
    ExpectTensors(*loaded, *latest, 0, base);
    auto complete = ck->CompleteSteps();
    ASSERT_TRUE(complete.ok()) << complete.status();
    for (int64_t step : *complete) {
      absl::Status v = ck->VerifyAll(step);
      ASSERT_TRUE(v.ok()) << "kill " << i << ": " << v;
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("crash test: %d kills in %.1f s, reached step %lld, %d kills left a .tmp\n", kKills,
              secs, static_cast<long long>(prev), mid_save);
  EXPECT_GT(prev, 10);      // the saves did progress between kills (even on a slow disk)
  EXPECT_GT(mid_save, 10);  // and many kills landed mid-save
}

// The same with 2 ranks (forked), both killed at a random moment; each round is a new attempt,
// as a retried job would be.
TEST_F(CheckpointTest, CrashConsistencyTwoRanks) {
  constexpr int kKills = 30;
  const size_t base = 32 * 1024;
  std::vector<int> codes = ForkRanks(2, [&](int rank) {
    Tensors t = MakeTensors(0, rank, base);
    return Make(rank, 2, 2, "init")->Save(0, t.buffers).ok() ? 0 : 1;
  });
  ASSERT_THAT(codes, ElementsAre(0, 0));
  std::mt19937 rng(777);
  std::uniform_int_distribution<int> delay_us(0, 40000);
  int64_t prev = 0;
  for (int i = 0; i < kKills; ++i) {
    std::vector<pid_t> pids;
    for (int rank = 0; rank < 2; ++rank) {
      pid_t pid = ::fork();
      if (pid == 0) {
        auto ck = Make(rank, 2, 2, absl::StrCat("round", i));
        auto latest = ck->LatestStep();
        int64_t step = latest.ok() ? *latest + 1 : 0;
        for (;; ++step) {
          Tensors t = MakeTensors(step, rank, base);
          absl::Status s = ck->Save(step, t.buffers);
          if (!s.ok()) {
            std::fprintf(stderr, "rank %d step %lld: %s\n", rank, static_cast<long long>(step),
                         s.ToString().c_str());
            ::_exit(1);
          }
        }
      }
      pids.push_back(pid);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
    for (pid_t pid : pids) ::kill(pid, SIGKILL);
    for (pid_t pid : pids) {
      int st = 0;
      ASSERT_EQ(::waitpid(pid, &st, 0), pid);
      ASSERT_TRUE(WIFSIGNALED(st)) << "rank exited by itself, status " << st;
    }
    auto ck = Make(0, 2, 2);
    auto latest = ck->LatestStep();
    ASSERT_TRUE(latest.ok()) << latest.status();
    ASSERT_GE(*latest, prev);
    prev = *latest;
    for (int rank = 0; rank < 2; ++rank) {
      auto loaded = ck->LoadShard(*latest, rank);
      ASSERT_TRUE(loaded.ok()) << "kill " << i << ": " << loaded.status();
      ExpectTensors(*loaded, *latest, rank, base);
    }
  }
  std::printf("2-rank crash test: %d kills, reached step %lld\n", kKills,
              static_cast<long long>(prev));
  EXPECT_GT(prev, 3);
}

}  // namespace
}  // namespace kubetrain::checkpoint
