#include "worker/mpi.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "worker/rank_env.h"

namespace kubetrain::worker {
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
    auto it = std::find_if(hosts.begin(), hosts.end(),
                           [&](const auto& h) { return h.first == host; });
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
      "--hostfile", hostfile,
      "-np", absl::StrCat(InstanceCount(launch) * PerInstance(launch)),
      "--map-by", "slot",
      "--oversubscribe",
      "--bind-to", "none",
      "--tag-output",
  };
  for (const auto& [name, value] : env) {
    if (absl::StartsWith(name, "OMPI_")) continue;  // mpirun's own settings
    argv.push_back("-x");
    argv.push_back(name);
  }
  argv.push_back("/bin/bash");
  argv.push_back("-c");
  argv.push_back(absl::StrCat(MpiRankPrologue(launch), "; exec /bin/bash -c \"$1\""));
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

}  // namespace kubetrain::worker
