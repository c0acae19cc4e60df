// bench_checkpoint: kubetrain::checkpoint save / restore throughput against a plain sequential
// write (with fsync) and read of the same bytes on the same disk, in the same run, with the same
// shape (2 ranks as processes, each its own file of 512 MiB, 8 MiB requests); and the time
// SaveAsync blocks the caller against a full synchronous Save.
//
// Usage: bench_checkpoint [--dir DIR] [--mib N] [--ranks R] [--reps K]
// Peer and checkpoint alternate which runs first in each repetition (on this kind of shared VM
// disk the second of two back-to-back cold reads is often slower); figures are medians.
// (default DIR: $KUBETRAIN_BENCH_DIR or /tmp; it must be on the disk to measure).
// Before each read the page cache is dropped (echo 3 > /proc/sys/vm/drop_caches) when permitted;
// in any case the files read are evicted with fdatasync + POSIX_FADV_DONTNEED, and the output
// says which happened.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "kubetrain/rank/checkpoint.h"

namespace {

namespace fs = std::filesystem;
using kubetrain::checkpoint::Checkpointer;
using kubetrain::checkpoint::CheckpointOptions;
using kubetrain::checkpoint::NamedBuffer;

constexpr size_t kChunk = 8 << 20;

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "bench_checkpoint: %s\n", what.c_str());
  std::fflush(nullptr);
  _exit(2);
}

struct Times {
  int64_t start = 0, end = 0;  // the measured region, CLOCK_MONOTONIC ns
  int64_t extra = 0;           // case-specific (SaveAsync: when it returned)
  int64_t copy_ns = 0;         // SaveAsync case: a plain memcpy of the same bytes
};

// Runs `body(rank, go_fd_read)` in `ranks` processes released together; each returns its Times.
// Returns per-rank Times. `setup(rank)` runs in the child before the start gate.
std::vector<Times> RunRanks(int ranks, const std::function<void*(int)>& setup,
                            const std::function<Times(int, void*)>& body) {
  int ready[2], go[2], result[2];
  if (pipe(ready) || pipe(go) || pipe(result)) Die("pipe");
  std::vector<pid_t> pids;
  for (int r = 0; r < ranks; ++r) {
    pid_t pid = fork();
    if (pid == 0) {
      void* state = setup(r);
      char c = 'r';
      if (write(ready[1], &c, 1) != 1) Die("ready");
      if (read(go[0], &c, 1) != 1) Die("go");
      Times t = body(r, state);
      struct {
        int rank;
        Times t;
      } msg{r, t};
      if (write(result[1], &msg, sizeof(msg)) != sizeof(msg)) Die("result");
      std::fflush(nullptr);
      _exit(0);
    }
    pids.push_back(pid);
  }
  for (int r = 0; r < ranks; ++r) {
    char c;
    if (read(ready[0], &c, 1) != 1) Die("a rank failed in setup");
  }
  std::string gos(ranks, 'g');
  if (write(go[1], gos.data(), gos.size()) != static_cast<ssize_t>(gos.size())) Die("go");
  std::vector<Times> out(ranks);
  for (int r = 0; r < ranks; ++r) {
    struct {
      int rank;
      Times t;
    } msg;
    if (read(result[0], &msg, sizeof(msg)) != sizeof(msg)) Die("a rank failed");
    out[msg.rank] = msg.t;
  }
  for (pid_t pid : pids) {
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) Die("a rank failed");
  }
  for (int fd : {ready[0], ready[1], go[0], go[1], result[0], result[1]}) close(fd);
  return out;
}

double Span(const std::vector<Times>& t) {  // seconds from the first start to the last end
  int64_t s = t[0].start, e = t[0].end;
  for (const auto& x : t) {
    s = std::min(s, x.start);
    e = std::max(e, x.end);
  }
  return (e - s) / 1e9;
}

uint8_t* MakeData(size_t bytes, int rank) {
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes));
  if (p == nullptr) Die("out of memory");
  uint64_t x = 0x12345 + rank;
  for (size_t i = 0; i < bytes; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(p + i, &x, 8);
  }
  return p;
}

// Evicts `path` from the page cache (it must be clean: fdatasync first).
void Evict(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Die("open " + path);
  fdatasync(fd);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
}

bool DropCaches() {
  sync();
  int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, "3", 1) == 1;
  close(fd);
  return ok;
}

std::unique_ptr<Checkpointer> MakeCk(
    const std::string& dir, int rank, int world,
    kubetrain::checkpoint::AsyncSnapshot snapshot = kubetrain::checkpoint::AsyncSnapshot::kCopy) {
  CheckpointOptions o;
  o.async_snapshot = snapshot;
  o.dir = dir;
  o.rank = rank;
  o.world_size = world;
  o.keep_last = 100;
  o.attempt = "bench";
  auto ck = Checkpointer::Create(o);
  if (!ck.ok()) Die(ck.status().ToString());
  return std::move(*ck);
}

// 8 tensors per rank, as a model's parameters would be.
std::vector<NamedBuffer> Tensors(uint8_t* data, size_t bytes) {
  std::vector<NamedBuffer> v;
  const size_t n = 8, each = bytes / n;
  for (size_t i = 0; i < n; ++i) {
    size_t size = (i + 1 == n) ? bytes - each * i : each;
    v.push_back(NamedBuffer{"param." + std::to_string(i), data + each * i, size});
  }
  return v;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string root = getenv("KUBETRAIN_BENCH_DIR") ? getenv("KUBETRAIN_BENCH_DIR") : "/tmp";
  size_t mib = 512;
  int ranks = 2, reps = 6;  // even: peer and checkpoint go first equally often
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--dir")
      root = argv[i + 1];
    else if (a == "--mib")
      mib = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--ranks")
      ranks = std::atoi(argv[i + 1]);
    else if (a == "--reps")
      reps = std::atoi(argv[i + 1]);
    else
      Die("unknown flag " + a);
  }
  const size_t bytes = mib << 20;
  const double total_gb = static_cast<double>(bytes) * ranks / 1e9;
  char tmpl[4096];
  std::snprintf(tmpl, sizeof(tmpl), "%s/bench_checkpoint-XXXXXX", root.c_str());
  if (mkdtemp(tmpl) == nullptr) Die("mkdtemp in " + root);
  const std::string base = tmpl;

  std::vector<double> plain_w, ck_w, plain_r, ck_r, async_block, async_total;
  std::vector<double> async_block_s, memcpy_s, sync_save;
  std::vector<double> cow_block_s, cow_touch_s, plain_touch_s;
  bool dropped = true;
  for (int rep = 0; rep < reps; ++rep) {
    const std::string plain_dir = base + "/plain";
    const std::string ck_dir = base + "/ckpt";
    fs::create_directories(plain_dir);
    auto setup = [&](int rank) -> void* { return MakeData(bytes, rank); };

    // Plain sequential write + fsync, one file per rank. The order of peer and checkpoint
    // alternates between repetitions, so neither always runs on a disk busy with the other.
    std::vector<Times> pw, cw, pr, cr;
    auto plain_write = [&] {
      pw = RunRanks(ranks, setup, [&](int rank, void* state) {
        auto* data = static_cast<uint8_t*>(state);
        Times t;
        t.start = NowNs();
        std::string path = plain_dir + "/rank-" + std::to_string(rank) + ".bin";
        int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) Die("open " + path);
        for (size_t off = 0; off < bytes; off += kChunk) {
          size_t n = std::min(kChunk, bytes - off);
          if (write(fd, data + off, n) != static_cast<ssize_t>(n)) Die("write " + path);
        }
        if (fsync(fd) != 0) Die("fsync");
        close(fd);
        t.end = NowNs();
        return t;
      });
    };

    // Checkpoint Save.
    auto ck_save = [&] {
      cw = RunRanks(ranks, setup, [&](int rank, void* state) {
        auto ck = MakeCk(ck_dir, rank, ranks);
        auto tensors = Tensors(static_cast<uint8_t*>(state), bytes);
        Times t;
        t.start = NowNs();
        absl::Status s = ck->Save(1, tensors);
        t.end = NowNs();
        if (!s.ok()) Die(s.ToString());
        return t;
      });
    };
    if (rep % 2 == 0) {
      plain_write();
      ck_save();
    } else {
      ck_save();
      plain_write();
    }
    plain_w.push_back(total_gb / Span(pw));
    ck_w.push_back(total_gb / Span(cw));
    const double sync_save_s = Span(cw);

    // Cold reads: drop the page cache (or at least evict these files).
    dropped = DropCaches() && dropped;
    for (int r = 0; r < ranks; ++r) {
      Evict(plain_dir + "/rank-" + std::to_string(r) + ".bin");
      Evict(ck_dir + "/step-1/shard-" + std::to_string(r) + ".bin");
    }
    auto noop_setup = [](int) -> void* { return nullptr; };
    auto plain_read = [&] {
      pr = RunRanks(ranks, noop_setup, [&](int rank, void*) {
        Times t;
        t.start = NowNs();
        std::string path = plain_dir + "/rank-" + std::to_string(rank) + ".bin";
        int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) Die("open " + path);
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        auto* buf = new uint8_t[bytes];
        for (size_t off = 0; off < bytes;) {
          ssize_t n = read(fd, buf + off, std::min(kChunk, bytes - off));
          if (n <= 0) Die("read " + path);
          off += n;
        }
        close(fd);
        t.end = NowNs();
        volatile uint8_t sink = buf[bytes / 2];
        (void)sink;
        delete[] buf;
        return t;
      });
    };
    auto ck_load = [&] {
      cr = RunRanks(ranks, noop_setup, [&](int rank, void*) {
        auto ck = MakeCk(ck_dir, rank, ranks);
        Times t;
        t.start = NowNs();
        auto loaded = ck->Load(1);
        t.end = NowNs();
        if (!loaded.ok()) Die(loaded.status().ToString());
        return t;
      });
    };
    if (rep % 2 == 0) {
      plain_read();
      ck_load();
    } else {
      ck_load();
      plain_read();
    }
    plain_r.push_back(total_gb / Span(pr));
    ck_r.push_back(total_gb / Span(cr));

    // SaveAsync: time it blocks the caller (steady state: the staging buffer is reused).
    auto ca = RunRanks(ranks, setup, [&](int rank, void* state) {
      auto ck = MakeCk(ck_dir, rank, ranks);
      auto tensors = Tensors(static_cast<uint8_t*>(state), bytes);
      // The floor: a plain memcpy of the same bytes into faulted-in memory, ranks at once.
      auto* copy = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes));
      if (copy == nullptr) Die("out of memory");
      std::memset(copy, 0, bytes);
      Times t;
      int64_t c0 = NowNs();
      std::memcpy(copy, state, bytes);
      t.copy_ns = NowNs() - c0;
      volatile uint8_t sink = copy[bytes / 3];
      (void)sink;
      std::free(copy);
      if (!ck->SaveAsync(2, tensors).ok() || !ck->Wait().ok()) Die("warm-up SaveAsync");
      t.start = NowNs();
      absl::Status s = ck->SaveAsync(3, tensors);
      t.extra = NowNs();
      if (s.ok()) s = ck->Wait();
      t.end = NowNs();
      if (!s.ok()) Die(s.ToString());
      return t;
    });
    // The same with the copy-on-write snapshot; then the caller rewrites every saved byte at once
    // (the worst case for it: every chunk faults), against the same rewrite unprotected.
    auto cows = RunRanks(ranks, setup, [&](int rank, void* state) {
      auto ck = MakeCk(ck_dir, rank, ranks, kubetrain::checkpoint::AsyncSnapshot::kCopyOnWrite);
      auto tensors = Tensors(static_cast<uint8_t*>(state), bytes);
      auto* p = static_cast<uint8_t*>(state);
      Times t;
      int64_t u0 = NowNs();
      for (size_t i = 0; i < bytes; i += 4096) p[i] ^= 1;  // a write per page, unprotected
      t.copy_ns = NowNs() - u0;
      if (!ck->SaveAsync(4, tensors).ok() || !ck->Wait().ok()) Die("warm-up SaveAsync (cow)");
      t.start = NowNs();
      absl::Status s = ck->SaveAsync(5, tensors);
      t.extra = NowNs();
      for (size_t i = 0; i < bytes; i += 4096) p[i] ^= 1;  // the same writes, each page faulting
      t.end = NowNs();
      if (s.ok()) s = ck->Wait();
      if (!s.ok()) Die(s.ToString());
      return t;
    });
    double cblock = 0, ctouch = 0, ptouch = 0;
    for (const auto& t : cows) {
      cblock = std::max(cblock, (t.extra - t.start) / 1e9);
      ctouch = std::max(ctouch, (t.end - t.extra) / 1e9);
      ptouch = std::max(ptouch, t.copy_ns / 1e9);
    }
    cow_block_s.push_back(cblock);
    cow_touch_s.push_back(ctouch);
    plain_touch_s.push_back(ptouch);

    double block = 0, copy = 0;
    for (const auto& t : ca) {
      block = std::max(block, (t.extra - t.start) / 1e9);
      copy = std::max(copy, t.copy_ns / 1e9);
    }
    async_block.push_back(block / sync_save_s);
    async_block_s.push_back(block);
    memcpy_s.push_back(copy);
    sync_save.push_back(sync_save_s);
    async_total.push_back(Span(ca));
    std::fprintf(stderr,
                 "rep %d: write %.2f/%.2f GB/s, read %.2f/%.2f GB/s, async block %.1f ms "
                 "(memcpy %.1f ms) of sync save %.1f ms\n",
                 rep, plain_w.back(), ck_w.back(), plain_r.back(), ck_r.back(), block * 1e3,
                 copy * 1e3, sync_save_s * 1e3);
    fs::remove_all(plain_dir);
    fs::remove_all(ck_dir);
  }
  fs::remove_all(base);

  const double pw = Median(plain_w), cw = Median(ck_w), pr = Median(plain_r), cr = Median(ck_r);
  const double ab = Median(async_block);
  std::printf("bench_checkpoint: %d ranks x %zu MiB, dir %s, median of %d\n", ranks, mib,
              root.c_str(), reps);
  std::printf(
      "save    : checkpoint %.2f GB/s vs plain write+fsync %.2f GB/s: %.1f%% (target >= 90%%)\n",
      cw, pw, 100 * cw / pw);
  std::printf("restore : checkpoint %.2f GB/s vs plain read %.2f GB/s: %.1f%% (target >= 90%%)%s\n",
              cr, pr, 100 * cr / pr,
              dropped ? " [page cache dropped]"
                      : " [drop_caches denied; files evicted with POSIX_FADV_DONTNEED]");
  std::printf(
      "async   : SaveAsync blocks %.1f ms = %.1f%% of a synchronous Save of %.1f ms "
      "(target <= 5%%); peer: plain memcpy of the same bytes %.1f ms, SaveAsync/memcpy "
      "%.2fx\n",
      Median(async_block_s) * 1e3, 100 * ab, Median(sync_save) * 1e3, Median(memcpy_s) * 1e3,
      Median(async_block_s) / Median(memcpy_s));
  std::printf(
      "async   : copy-on-write SaveAsync blocks %.2f ms = %.2f%% of the synchronous Save "
      "(target <= 5%%); a write to every saved page right after it takes %.1f ms vs "
      "%.1f ms unprotected (the copy moves there when the caller rewrites everything at "
      "once)\n",
      Median(cow_block_s) * 1e3, 100 * Median(cow_block_s) / Median(sync_save),
      Median(cow_touch_s) * 1e3, Median(plain_touch_s) * 1e3);
  return 0;
}
