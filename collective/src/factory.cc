#include <memory>

#include "absl/strings/str_cat.h"
#include "cpu/cpu_communicator.h"
#include "kubetrain/collective/communicator.h"
#include "kubetrain/collective/env.h"
#include "kubetrain/common/status_macros.h"
#if KUBETRAIN_COLLECTIVE_HAVE_MPI
#include "kubetrain/collective/mpi.h"
#endif
#if KUBETRAIN_COLLECTIVE_HAVE_NCCL
#include "nccl/nccl_communicator.h"
#endif

namespace kubetrain::collective {

absl::string_view BackendName(Backend backend) {
  switch (backend) {
    case Backend::kCpu:
      return "cpu";
    case Backend::kMpi:
      return "mpi";
    case Backend::kNccl:
      return "nccl";
  }
  return "unknown";
}

absl::StatusOr<Backend> ParseBackend(absl::string_view name) {
  if (name == "cpu" || name == "gloo") return Backend::kCpu;
  if (name == "mpi") return Backend::kMpi;
  if (name == "nccl") return Backend::kNccl;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown collective backend '", name, "'; expected cpu, mpi or nccl"));
}

bool BackendCompiled(Backend backend) {
  switch (backend) {
    case Backend::kCpu:
      return true;
    case Backend::kMpi:
      return KUBETRAIN_COLLECTIVE_HAVE_MPI != 0;
    case Backend::kNccl:
      return KUBETRAIN_COLLECTIVE_HAVE_NCCL != 0;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicator(
    Backend backend, const CommunicatorOptions& options) {
  switch (backend) {
    case Backend::kCpu:
      return collective_internal::CreateCpuCommunicator(options);
    case Backend::kMpi:
#if KUBETRAIN_COLLECTIVE_HAVE_MPI
      return CreateMpiCommunicator(MPI_COMM_WORLD, options);
#else
      return absl::UnimplementedError(
          "this kubetrain build has no MPI backend (configure with KUBETRAIN_WITH_MPI=ON)");
#endif
    case Backend::kNccl:
#if KUBETRAIN_COLLECTIVE_HAVE_NCCL
      return collective_internal::CreateNcclCommunicator(options);
#else
      return absl::UnimplementedError(
          "this kubetrain build has no NCCL backend (configure with KUBETRAIN_WITH_CUDA=ON)");
#endif
  }
  return absl::InvalidArgumentError("unknown backend");
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicatorFromEnv(Backend backend) {
  KT_ASSIGN_OR_RETURN(CommunicatorOptions options, OptionsFromEnvironment());
  return CreateCommunicator(backend, options);
}

}  // namespace kubetrain::collective
