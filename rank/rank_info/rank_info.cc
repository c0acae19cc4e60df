#include "kubetrain/rank/rank_info.h"

#include <cstdlib>
#include <initializer_list>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace kubetrain::rank {
namespace {

const char* Env(const char* name) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? v : nullptr;
}

std::string EnvString(std::initializer_list<const char*> names, const char* fallback = "") {
  for (const char* n : names) {
    if (const char* v = Env(n)) return v;
  }
  return fallback;
}

// Reads the first set variable of `names` into *out (left alone when none is set); *found says
// whether one was.
absl::Status ReadInt(std::initializer_list<const char*> names, int* out, bool* found = nullptr) {
  if (found != nullptr) *found = false;
  for (const char* n : names) {
    const char* v = Env(n);
    if (v == nullptr) continue;
    if (!absl::SimpleAtoi(v, out)) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment variable ", n, "='", v, "' is not an integer"));
    }
    if (found != nullptr) *found = true;
    return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status Check(const RankInfo& r, const char* rank_var, const char* size_var) {
  if (r.world_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(size_var, "=", r.world_size, " must be >= 1"));
  }
  if (r.rank < 0 || r.rank >= r.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(rank_var, "=", r.rank, " is outside [0, ", size_var, "=", r.world_size, ")"));
  }
  if (r.local_world_size < 1 || r.local_rank < 0 || r.local_rank >= r.local_world_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "local rank ", r.local_rank, " is outside [0, local world size ", r.local_world_size, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

const char* SourceName(RankInfo::Source source) {
  switch (source) {
    case RankInfo::Source::kPyTorch:
      return "pytorch";
    case RankInfo::Source::kOpenMpi:
      return "openmpi";
    case RankInfo::Source::kKubetrain:
      return "kubetrain";
    case RankInfo::Source::kSingleProcess:
      break;
  }
  return "single process";
}

RankInfo RankInfo::SingleProcess() {
  RankInfo r;
  r.job = EnvString({"KUBETRAIN_JOB"});
  r.run_id = EnvString({"MLFLOW_RUN_ID"});
  r.tracking_uri = EnvString({"MLFLOW_TRACKING_URI"});
  r.checkpoint_dir = EnvString({"KUBETRAIN_CHECKPOINT_DIR"});
  r.restart_count = EnvString({"KUBETRAIN_RESTART_COUNT", "TORCHELASTIC_RESTART_COUNT"}, "0");
  return r;
}

absl::StatusOr<RankInfo> RankInfo::FromEnvironment() {
  RankInfo r = SingleProcess();
  bool found = false;
  if (Env("RANK") != nullptr) {
    r.source = Source::kPyTorch;
    if (absl::Status s = ReadInt({"RANK"}, &r.rank); !s.ok()) return s;
    if (absl::Status s = ReadInt({"WORLD_SIZE"}, &r.world_size, &found); !s.ok()) return s;
    if (!found) {
      return absl::InvalidArgumentError(
          "RANK is set but WORLD_SIZE is not: the pytorch rank environment needs both");
    }
    // Ranks started by mpirun under distribution: pytorch still carry OpenMPI's local variables.
    r.local_world_size = r.world_size;
    r.local_rank = r.rank;
    if (absl::Status s = ReadInt({"LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"}, &r.local_rank);
        !s.ok()) {
      return s;
    }
    if (absl::Status s =
            ReadInt({"LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE"}, &r.local_world_size);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = Check(r, "RANK", "WORLD_SIZE"); !s.ok()) return s;
    r.node_rank = r.rank / r.local_world_size;
    if (absl::Status s = ReadInt({"NODE_RANK", "GROUP_RANK", "AZUREML_CR_NODE_RANK"}, &r.node_rank);
        !s.ok()) {
      return s;
    }
    return r;
  }
  if (Env("OMPI_COMM_WORLD_RANK") != nullptr) {
    r.source = Source::kOpenMpi;
    if (absl::Status s = ReadInt({"OMPI_COMM_WORLD_RANK"}, &r.rank); !s.ok()) return s;
    if (absl::Status s = ReadInt({"OMPI_COMM_WORLD_SIZE"}, &r.world_size, &found); !s.ok()) {
      return s;
    }
    if (!found) {
      return absl::InvalidArgumentError(
          "OMPI_COMM_WORLD_RANK is set but OMPI_COMM_WORLD_SIZE is not");
    }
    r.local_rank = r.rank;  // without OpenMPI's local variables: one node
    r.local_world_size = r.world_size;
    if (absl::Status s = ReadInt({"OMPI_COMM_WORLD_LOCAL_RANK"}, &r.local_rank); !s.ok()) return s;
    if (absl::Status s = ReadInt({"OMPI_COMM_WORLD_LOCAL_SIZE"}, &r.local_world_size); !s.ok()) {
      return s;
    }
    // mpirun fills each node's slots before the next node's (AZUREML_CR_NODE_RANK belongs to the
    // instance that started mpirun, not to this rank's node).
    if (absl::Status s = Check(r, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"); !s.ok()) {
      return s;
    }
    r.node_rank = r.rank / r.local_world_size;
    return r;
  }
  if (Env(kRankVar) != nullptr) {
    r.source = Source::kKubetrain;
    if (absl::Status s = ReadInt({kRankVar}, &r.rank); !s.ok()) return s;
    if (absl::Status s = ReadInt({kWorldSizeVar}, &r.world_size, &found); !s.ok()) return s;
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat(kRankVar, " is set but ", kWorldSizeVar, " is not"));
    }
    r.local_rank = 0;
    r.local_world_size = 1;
    if (absl::Status s = ReadInt({kLocalRankVar}, &r.local_rank); !s.ok()) return s;
    if (absl::Status s = ReadInt({kLocalWorldSizeVar}, &r.local_world_size); !s.ok()) return s;
    if (absl::Status s = Check(r, kRankVar, kWorldSizeVar); !s.ok()) return s;
    r.node_rank = r.rank / r.local_world_size;
    if (absl::Status s = ReadInt({"AZUREML_CR_NODE_RANK"}, &r.node_rank); !s.ok()) return s;
    return r;
  }
  return absl::NotFoundError(
      "no rank environment: neither RANK/WORLD_SIZE (set by kubetrain-worker for "
      "distribution: pytorch, and by torchrun) nor OMPI_COMM_WORLD_RANK/SIZE (set by mpirun for "
      "distribution: mpi) is set; run the program under kubetrain, torchrun or mpirun, or pass "
      "the rank and world size explicitly");
}

}  // namespace kubetrain::rank
