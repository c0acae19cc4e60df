#include "kubetrain/agent/mpi/mpirun_command.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "kubetrain/agent/ranks/rank_env.h"

namespace kubetrain::agent {
namespace {

int PerInstance(const v1::InstanceLaunch& launch) {
  return std::max(1, launch.job().distribution().process_count_per_instance());
}

const v1::InstancePlacement* PlacementOf(const v1::InstanceLaunch& launch, int index) {
  for (const v1::InstancePlacement& p : launch.placement().instances()) {
    if (p.instance_index() == index) return &p;
  }
  return nullptr;
}

// Reads a decimal integer at the front of `s`, consuming it.
bool ConsumeInt(absl::string_view& s, int* value) {
  size_t n = 0;
  if (n < s.size() && s[n] == '-') ++n;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
  if (!absl::SimpleAtoi(s.substr(0, n), value)) return false;
  s.remove_prefix(n);
  return true;
}

}  // namespace

std::string MpiHostfile(const v1::InstanceLaunch& launch) {
  std::vector<std::pair<std::string, int>> hosts;  // in instance order, distinct
  for (int i = 0; i < InstanceCount(launch); ++i) {
    std::string host = InstanceHost(launch, i);
    auto it =
        std::find_if(hosts.begin(), hosts.end(), [&](const auto& h) { return h.first == host; });
    if (it == hosts.end()) {
      hosts.emplace_back(host, PerInstance(launch));
    } else {
      it->second += PerInstance(launch);
    }
  }
  std::string text;
  for (const auto& [host, slots] : hosts) absl::StrAppend(&text, host, " slots=", slots, "\n");
  return text;
}

std::string MpiRankPrologue(const v1::InstanceLaunch& launch) {
  const auto& user = launch.job().environment_variables();
  const int per = PerInstance(launch);
  std::vector<std::string> gpus, threads;
  for (int i = 0; i < InstanceCount(launch); ++i) {
    const v1::InstancePlacement* p = PlacementOf(launch, i);
    gpus.push_back(absl::StrCat("'", p ? absl::StrJoin(p->gpu_ids(), ",") : "", "'"));
    const int64_t cpus = p ? p->cpu_millicores() / 1000 : 0;
    threads.push_back(absl::StrCat(std::max<int64_t>(1, cpus / per)));
  }
  std::string s = absl::StrCat("r=${OMPI_COMM_WORLD_RANK:-0}; n=$(( r / ", per,
                               " )); export AZUREML_PROCESS_NAME=rank_$r"
                               " AZUREML_CR_NODE_RANK=$n KUBETRAIN_INSTANCE=$n");
  if (!user.contains("CUDA_VISIBLE_DEVICES")) {
    absl::StrAppend(&s, "; g=(", absl::StrJoin(gpus, " "),
                    "); export CUDA_VISIBLE_DEVICES=\"${g[$n]}\"");
  }
  if (!user.contains("OMP_NUM_THREADS")) {
    absl::StrAppend(&s, "; t=(", absl::StrJoin(threads, " "),
                    "); export OMP_NUM_THREADS=\"${t[$n]}\"");
  }
  return s;
}

std::vector<std::string> MpirunArgv(const v1::InstanceLaunch& launch, const std::string& command,
                                    const std::string& hostfile,
                                    const std::map<std::string, std::string>& env) {
  std::vector<std::string> argv = {
      launch.mpirun().empty() ? std::string("mpirun") : launch.mpirun(),
      "--hostfile",
      hostfile,
      "-np",
      absl::StrCat(InstanceCount(launch) * PerInstance(launch)),
      "--map-by",
      "slot",
      "--oversubscribe",
      "--bind-to",
      "none",
      "--tag-output",
      // When a rank fails, mpirun SIGTERMs the others and then sleeps this many seconds (default
      // 1, sometimes twice) before SIGKILL, even when they are already gone; 0 keeps rank death →
      // all ranks gone well under 2 s.
      "--mca",
      "odls_base_sigkill_timeout",
      "0",
  };
  for (const auto& [name, value] : env) {
    if (absl::StartsWith(name, "OMPI_")) continue;  // mpirun's own settings
    argv.push_back("-x");
    argv.push_back(name);
  }
  argv.push_back("/bin/bash");
  argv.push_back("-c");
  // Not `exec`: the wrapper outlives the command to record its exit status for the agent
  // (mpirun names the failing rank only some of the time).
  argv.push_back(
      absl::StrCat(MpiRankPrologue(launch),
                   "; /bin/bash -c \"$1\"; rc=$?; if [ -n \"$KUBETRAIN_MPI_STATUS_DIR\" ]; then "
                   "echo \"$rc $EPOCHREALTIME\" > \"$KUBETRAIN_MPI_STATUS_DIR/$r\"; fi; exit $rc"));
  argv.push_back("kubetrain-rank");
  argv.push_back(command);
  return argv;
}

std::optional<TaggedLine> ParseTaggedLine(absl::string_view line) {
  absl::string_view s = line;
  int job = 0, rank = 0;
  if (!absl::ConsumePrefix(&s, "[") || !ConsumeInt(s, &job) || !absl::ConsumePrefix(&s, ",") ||
      !ConsumeInt(s, &rank) || !absl::ConsumePrefix(&s, "]<")) {
    return std::nullopt;
  }
  TaggedLine tagged;
  tagged.rank = rank;
  if (absl::ConsumePrefix(&s, "stdout>:")) {
    tagged.stream = v1::LogLine::STREAM_STDOUT;
  } else if (absl::ConsumePrefix(&s, "stderr>:")) {
    tagged.stream = v1::LogLine::STREAM_STDERR;
  } else {
    return std::nullopt;
  }
  tagged.text = s;
  return tagged;
}

void TaggedOutputDemux::Feed(absl::string_view data, const Emit& emit) {
  pending_.append(data.data(), data.size());
  const absl::string_view buf = pending_;
  size_t pos = 0;
  while (pos < buf.size()) {
    const absl::string_view here = buf.substr(pos);
    const Owner owner = current_.value_or(Owner{-1, untagged_stream_});
    if (here[0] == '\n') {
      std::string& line = partial_[owner];
      if (!line.empty() && line.back() == '\r') line.pop_back();
      emit(owner.rank, owner.stream, line);
      line.clear();
      current_.reset();  // a new line: mpirun's own unless a tag follows
      pos += 1;
      continue;
    }
    if (here[0] == '[') {
      const size_t close = here.find(">:");
      if (close == absl::string_view::npos) {
        // Perhaps a tag cut in two by the read: wait for the rest.
        if (here.size() < 40 && here.find('\n') == absl::string_view::npos) break;
      } else if (close < 40) {
        if (std::optional<TaggedLine> tag = ParseTaggedLine(here.substr(0, close + 2))) {
          current_ = Owner{tag->rank, tag->stream};
          pos += close + 2;
          continue;
        }
      }
    }
    size_t end = here.find_first_of("[\n", 1);
    if (end == absl::string_view::npos) end = here.size();
    std::string& line = partial_[owner];
    line.append(here.data(), end);
    if (line.size() >= max_line_bytes_) {
      emit(owner.rank, owner.stream, line);
      line.clear();
    }
    pos += end;
  }
  pending_.erase(0, pos);
}

void TaggedOutputDemux::Finish(const Emit& emit) {
  if (!pending_.empty()) {
    Owner owner = current_.value_or(Owner{-1, untagged_stream_});
    partial_[owner] += pending_;
    pending_.clear();
  }
  for (auto& [owner, line] : partial_) {
    if (!line.empty()) emit(owner.rank, owner.stream, line);
    line.clear();
  }
}

std::map<int, RankExit> ReadRankExits(const std::string& status_dir) {
  std::map<int, RankExit> exits;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(status_dir, ec)) {
    int rank = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &rank)) continue;
    std::ifstream in(entry.path());
    RankExit e;
    if (in >> e.status >> e.when) exits[rank] = e;
  }
  return exits;
}

std::optional<MpirunFailure> FirstFailedRank(const std::string& status_dir) {
  std::optional<MpirunFailure> first;
  double first_time = 0;
  for (const auto& [rank, e] : ReadRankExits(status_dir)) {
    if (e.status == 0 || (first.has_value() && e.when >= first_time)) continue;
    const bool signalled = e.status > 128 && e.status < 128 + 65;
    first = MpirunFailure{rank, signalled ? 0 : e.status, signalled ? e.status - 128 : 0};
    first_time = e.when;
  }
  return first;
}

std::optional<MpirunFailure> ParseMpirunFailure(const std::vector<std::string>& mpirun_lines) {
  MpirunFailure failure;
  bool found = false;
  for (const std::string& raw : mpirun_lines) {
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (absl::ConsumePrefix(&line, "Process name:")) {
      // "[[55019,1],1]": the rank is the number before the last "]".
      line = absl::StripAsciiWhitespace(line);
      size_t comma = line.rfind(',');
      if (comma != absl::string_view::npos) {
        absl::string_view rest = line.substr(comma + 1);
        if (ConsumeInt(rest, &failure.rank)) found = true;
      }
    } else if (absl::ConsumePrefix(&line, "Exit code:")) {
      line = absl::StripAsciiWhitespace(line);
      if (ConsumeInt(line, &failure.exit_code)) found = true;
    } else if (size_t at = line.find("process rank "); at != absl::string_view::npos) {
      // "mpirun noticed that process rank 2 with PID 0 on node vm exited on signal 9 (Killed)."
      absl::string_view rest = line.substr(at + 13);
      if (ConsumeInt(rest, &failure.rank)) found = true;
      size_t sig = rest.find("on signal ");
      if (sig != absl::string_view::npos) {
        rest = rest.substr(sig + 10);
        ConsumeInt(rest, &failure.signal);
      }
    }
  }
  if (!found) return std::nullopt;
  return failure;
}

}  // namespace kubetrain::agent
