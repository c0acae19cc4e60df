#include "kubetrain/collective/env.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "kubetrain/rank/rank_info.h"

namespace kubetrain::collective {
namespace {

const char* Env(const char* name) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? v : nullptr;
}

// First set variable among `names`, or nullptr; *which gets its name.
const char* FirstEnv(std::initializer_list<const char*> names, const char** which) {
  for (const char* n : names) {
    if (const char* v = Env(n)) {
      *which = n;
      return v;
    }
  }
  return nullptr;
}

absl::Status ReadInt(std::initializer_list<const char*> names, int* out) {
  const char* which = nullptr;
  const char* v = FirstEnv(names, &which);
  if (v == nullptr) return absl::OkStatus();
  if (!absl::SimpleAtoi(v, out)) {
    return absl::InvalidArgumentError(
        absl::StrCat("environment variable ", which, "='", v, "' is not an integer"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CommunicatorOptions> OptionsFromEnvironment() {
  CommunicatorOptions o;
  absl::Status s;
  absl::StatusOr<rank::RankInfo> me = rank::RankInfo::FromEnvironment();
  if (!me.ok() && !absl::IsNotFound(me.status())) return me.status();
  const rank::RankInfo info = me.ok() ? *me : rank::RankInfo::SingleProcess();
  o.rank = info.rank;
  o.world_size = info.world_size;
  o.local_rank = info.local_rank;
  o.job = info.job;
  if (!(s = ReadInt({"MASTER_PORT"}, &o.master_port)).ok()) return s;
  const char* which = nullptr;
  if (const char* v = FirstEnv({"MASTER_ADDR", "AZ_BATCHAI_MPI_MASTER_NODE"}, &which)) {
    o.master_addr = v;
  }
  if (const char* v = Env("KUBETRAIN_COLLECTIVE_TIMEOUT")) {
    double seconds = 0;
    if (!absl::SimpleAtod(v, &seconds) || seconds <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("KUBETRAIN_COLLECTIVE_TIMEOUT='", v,
                                                     "' is not a positive number of seconds"));
    }
    o.timeout = absl::Seconds(seconds);
  }
  if (const char* v = Env("KUBETRAIN_CPU_TRANSPORT")) {
    std::string t = v;
    if (t == "auto") {
      o.cpu_transport = CpuTransport::kAuto;
    } else if (t == "shm") {
      o.cpu_transport = CpuTransport::kShm;
    } else if (t == "tcp") {
      o.cpu_transport = CpuTransport::kTcp;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("KUBETRAIN_CPU_TRANSPORT='", t, "'; expected auto, shm or tcp"));
    }
  }
  if (o.world_size > 1 && o.master_port == 0) {
    return absl::InvalidArgumentError(
        "MASTER_PORT is not set (required when WORLD_SIZE > 1; kubetrain-worker sets it)");
  }
  return o;
}

}  // namespace kubetrain::collective
