#include "rendezvous.h"

#include "absl/strings/str_cat.h"
#include "kubetrain/common/status_macros.h"

namespace kubetrain::collective_internal {

absl::Status ValidateOptions(const collective::CommunicatorOptions& o) {
  if (o.world_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("world size must be >= 1, got ", o.world_size));
  }
  if (o.rank < 0 || o.rank >= o.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", o.rank, " is outside [0, ", o.world_size, ")"));
  }
  if (o.world_size > 1 && (o.master_port <= 0 || o.master_port > 65535)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "MASTER_PORT must be in 1..65535 for world size ", o.world_size, ", got ", o.master_port));
  }
  if (o.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("communicator timeout must be positive");
  }
  return absl::OkStatus();
}

absl::StatusOr<Rendezvous> StartRendezvous(const collective::CommunicatorOptions& o) {
  KT_RETURN_IF_ERROR(ValidateOptions(o));
  Rendezvous r;
  if (o.rank == 0) {
    absl::StatusOr<std::unique_ptr<collective::TcpStoreServer>> server =
        collective::TcpStoreServer::Start(o.master_port);
    if (!server.ok()) {
      return absl::Status(
          server.status().code(),
          absl::StrCat("rank 0 cannot host the rendezvous store: ", server.status().message()));
    }
    r.server = *std::move(server);
  }
  KT_ASSIGN_OR_RETURN(r.client,
                      collective::TcpStoreClient::Connect(o.rank == 0 ? "127.0.0.1" : o.master_addr,
                                                          o.master_port, o.timeout));
  return r;
}

}  // namespace kubetrain::collective_internal
