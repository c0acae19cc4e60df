#include "grpc_log.h"

#include <mutex>

#include "grpc/support/log.h"
#include "spdlog/spdlog.h"

namespace kubetrain::storage::storage_internal {
namespace {

void ToSpdlog(gpr_log_func_args* args) {
  spdlog::debug("grpc: {} ({}:{})", args->message, args->file, args->line);
}

}  // namespace

void RouteGrpcLogToSpdlog() {
  static std::once_flag once;
  std::call_once(once, [] {
    gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
    gpr_set_log_function(ToSpdlog);
  });
}

}  // namespace kubetrain::storage::storage_internal
