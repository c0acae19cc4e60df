// Checkpointer's reading side: finding complete checkpoints, loading and verifying shards, and
// retention. See kubetrain/rank/checkpoint.h for the layout.
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "files.h"
#include "kubetrain/common/status_macros.h"
#include "kubetrain/rank/checkpoint.h"
#include "kubetrain/v1/checkpoint.pb.h"

namespace kubetrain::checkpoint {
namespace {

using checkpoint_internal::CrcString;
using checkpoint_internal::ErrnoStatus;
using checkpoint_internal::Exists;
using checkpoint_internal::Fd;
using checkpoint_internal::FsyncPath;
using checkpoint_internal::JoinPath;
using checkpoint_internal::kJournal;
using checkpoint_internal::kManifest;
using checkpoint_internal::ListDir;
using checkpoint_internal::OpenFile;
using checkpoint_internal::ParseManifestFile;
using checkpoint_internal::ParseStepName;
using checkpoint_internal::PreadAll;
using checkpoint_internal::ReadSmallFile;
using checkpoint_internal::RemoveTree;
using checkpoint_internal::WriteFileDurably;
using ::kubetrain::v1::CheckpointManifest;
using ::kubetrain::v1::ShardInfo;

constexpr char kKeepMarker[] = "keep";

// Validates step-<N>/: manifest parses and matches, every shard file exists with its size.
absl::StatusOr<CheckpointManifest> ReadCompleteManifest(const std::string& step_dir, int64_t step) {
  KT_ASSIGN_OR_RETURN(CheckpointManifest m, ParseManifestFile(JoinPath(step_dir, kManifest)));
  if (m.step() != step || m.world_size() <= 0 || m.shards_size() != m.world_size()) {
    return absl::DataLossError(absl::StrCat("inconsistent checkpoint manifest in ", step_dir));
  }
  for (int r = 0; r < m.shards_size(); ++r) {
    const ShardInfo& s = m.shards(r);
    if (s.rank() != r || s.file().empty() || absl::StrContains(s.file(), "/")) {
      return absl::DataLossError(
          absl::StrCat("checkpoint manifest in ", step_dir, ": bad shard entry ", r));
    }
    const std::string path = JoinPath(step_dir, s.file());
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, "stat", path);
    if (st.st_size != s.size()) {
      return absl::DataLossError(absl::StrCat("checkpoint step ", step, ": shard of rank ", r, " (",
                                              path, ") has ", st.st_size, " bytes, manifest says ",
                                              s.size()));
    }
  }
  return m;
}

}  // namespace

absl::StatusOr<std::vector<PublishedCheckpoint>> ListPublishedCheckpoints(const std::string& dir) {
  std::map<int64_t, PublishedCheckpoint> found;
  if (absl::StatusOr<std::string> journal = ReadSmallFile(JoinPath(dir, kJournal)); journal.ok()) {
    for (absl::string_view line : absl::StrSplit(*journal, '\n')) {
      std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
      PublishedCheckpoint c;
      if (f.size() != 5 || !absl::SimpleAtoi(f[0], &c.step) ||
          !absl::SimpleAtoi(f[1], &c.size_bytes) || !absl::SimpleAtoi(f[2], &c.save_duration_ms) ||
          !absl::SimpleAtoi(f[3], &c.created_unix_ms) || c.step < 0) {
        continue;  // a torn last line of a crashed append
      }
      c.attempt = std::string(f[4]);
      c.location = JoinPath(dir, absl::StrCat("step-", c.step));
      found[c.step] = std::move(c);
    }
  } else if (!absl::IsNotFound(journal.status())) {
    return journal.status();
  }
  absl::StatusOr<std::vector<std::string>> names = ListDir(dir);
  if (!names.ok()) {
    if (absl::IsNotFound(names.status())) return std::vector<PublishedCheckpoint>();
    return names.status();
  }
  for (const auto& n : *names) {
    std::optional<int64_t> step = ParseStepName(n, "");
    if (!step) continue;
    absl::StatusOr<CheckpointManifest> m = ReadCompleteManifest(JoinPath(dir, n), *step);
    if (!m.ok()) continue;
    if (auto it = found.find(*step); it != found.end()) {
      it->second.present = true;
      continue;
    }
    PublishedCheckpoint c;
    c.step = *step;
    for (const ShardInfo& shard : m->shards()) c.size_bytes += shard.size();
    c.save_duration_ms = m->save_duration_ms();
    c.created_unix_ms = m->created_unix_ms();
    c.attempt = m->attempt();
    c.location = JoinPath(dir, n);
    c.present = true;
    found[c.step] = std::move(c);
  }
  std::vector<PublishedCheckpoint> out;
  for (auto& [step, c] : found) out.push_back(std::move(c));
  return out;
}

absl::StatusOr<std::vector<int64_t>> Checkpointer::CompleteSteps() const {
  KT_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(options_.dir));
  std::vector<int64_t> steps;
  for (const auto& n : names) {
    std::optional<int64_t> step = ParseStepName(n, "");
    if (!step) continue;
    if (ReadCompleteManifest(JoinPath(options_.dir, n), *step).ok()) steps.push_back(*step);
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

absl::StatusOr<int64_t> Checkpointer::LatestStep() const {
  KT_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(options_.dir));
  std::vector<int64_t> steps;
  for (const auto& n : names) {
    if (std::optional<int64_t> step = ParseStepName(n, "")) steps.push_back(*step);
  }
  std::sort(steps.rbegin(), steps.rend());
  for (int64_t step : steps) {
    if (ReadCompleteManifest(StepDir(step), step).ok()) return step;
  }
  return absl::NotFoundError(absl::StrCat("no complete checkpoint in ", options_.dir));
}

absl::StatusOr<LoadedCheckpoint> Checkpointer::Load(int64_t step) const {
  return LoadShard(step, options_.rank);
}

absl::StatusOr<LoadedCheckpoint> Checkpointer::LoadShard(int64_t step, int rank) const {
  const std::string step_dir = StepDir(step);
  KT_ASSIGN_OR_RETURN(CheckpointManifest m, ReadCompleteManifest(step_dir, step));
  if (rank == options_.rank && m.world_size() != options_.world_size) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint ", step_dir, " was saved by ",
                                                      m.world_size(), " ranks, this job has ",
                                                      options_.world_size));
  }
  if (rank < 0 || rank >= m.world_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " not in checkpoint ", step_dir, " of ", m.world_size()));
  }
  const ShardInfo& info = m.shards(rank);
  const std::string path = JoinPath(step_dir, info.file());
  LoadedCheckpoint out;
  out.step = step;
  out.world_size = m.world_size();
  out.rank = rank;
  out.size = static_cast<size_t>(info.size());
  out.bytes.reset(new uint8_t[std::max<size_t>(out.size, 1)]);
  {
    KT_ASSIGN_OR_RETURN(int raw, OpenFile(path, O_RDONLY));
    Fd fd(raw);
    ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    // A reader thread issues the large pread()s back to back, as a plain sequential read would;
    // this thread checksums what has arrived behind it.
    const size_t chunk = options_.chunk_bytes;
    std::mutex mu;
    std::condition_variable cv;
    size_t arrived = 0;
    absl::Status read_status;
    std::thread reader([&] {
      for (size_t off = 0; off < out.size;) {
        size_t n = std::min(chunk, out.size - off);
        absl::Status s =
            PreadAll(fd.get(), out.bytes.get() + off, n, static_cast<off_t>(off), path);
        std::lock_guard<std::mutex> lock(mu);
        if (!s.ok()) {
          read_status = std::move(s);
          cv.notify_all();
          return;
        }
        off += n;
        arrived = off;
        cv.notify_all();
      }
    });
    uint32_t crc = 0;
    for (size_t checked = 0; checked < out.size;) {
      size_t until;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return arrived > checked || !read_status.ok(); });
        if (!read_status.ok()) break;
        until = arrived;
      }
      crc = Crc32c(out.bytes.get() + checked, until - checked, crc);
      checked = until;
    }
    reader.join();
    KT_RETURN_IF_ERROR(read_status);
    if (CrcString(crc) != info.checksum()) {
      return absl::DataLossError(absl::StrCat("checkpoint step ", step, ": shard of rank ", rank,
                                              " (", path, ") is corrupt: ", CrcString(crc),
                                              ", manifest says ", info.checksum()));
    }
  }
  for (const auto& e : info.entries()) {
    if (e.offset() < 0 || e.size() < 0 ||
        static_cast<uint64_t>(e.offset()) + static_cast<uint64_t>(e.size()) > out.size) {
      return absl::DataLossError(absl::StrCat("checkpoint step ", step, ": tensor '", e.name(),
                                              "' of rank ", rank, " is outside ", path));
    }
    out.tensors.push_back(LoadedTensor{
        e.name(),
        absl::Span<const uint8_t>(out.bytes.get() + e.offset(), static_cast<size_t>(e.size()))});
  }
  for (const auto& [k, v] : m.metadata()) out.metadata[k] = v;
  return out;
}

absl::Status Checkpointer::VerifyAll(int64_t step) const {
  KT_ASSIGN_OR_RETURN(CheckpointManifest m, ReadCompleteManifest(StepDir(step), step));
  for (int r = 0; r < m.world_size(); ++r) {
    KT_RETURN_IF_ERROR(LoadShard(step, r).status());
  }
  return absl::OkStatus();
}

absl::Status Checkpointer::MarkKeep(int64_t step) {
  const std::string step_dir = StepDir(step);
  KT_RETURN_IF_ERROR(ReadCompleteManifest(step_dir, step).status());
  return WriteFileDurably(step_dir, kKeepMarker, "");
}

absl::Status Checkpointer::ApplyRetention() {
  KT_ASSIGN_OR_RETURN(std::vector<int64_t> complete, CompleteSteps());
  KT_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(options_.dir));
  const int64_t newest = complete.empty() ? -1 : complete.back();
  std::vector<std::string> doomed;  // names under dir to remove
  const size_t keep = static_cast<size_t>(options_.keep_last);
  for (size_t i = 0; i + keep < complete.size(); ++i) {  // all but the newest `keep`
    int64_t step = complete[i];
    if (step == newest) continue;
    if (Exists(JoinPath(StepDir(step), kKeepMarker))) continue;
    const std::string from = StepDir(step);
    const std::string to = absl::StrCat(from, ".deleting");
    KT_RETURN_IF_ERROR(RemoveTree(to));  // left by a crash mid-delete of an earlier save
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoStatus(errno, "rename", absl::StrCat(from, " -> ", to));
    }
    doomed.push_back(to);
  }
  if (!doomed.empty()) KT_RETURN_IF_ERROR(FsyncPath(options_.dir));
  for (const auto& n : names) {
    if (ParseStepName(n, ".deleting")) {
      doomed.push_back(JoinPath(options_.dir, n));
    } else if (std::optional<int64_t> s = ParseStepName(n, ".tmp"); s && *s < newest) {
      doomed.push_back(JoinPath(options_.dir, n));  // abandoned: every rank has moved past it
    }
  }
  for (const auto& path : doomed) KT_RETURN_IF_ERROR(RemoveTree(path));
  return absl::OkStatus();
}

}  // namespace kubetrain::checkpoint
