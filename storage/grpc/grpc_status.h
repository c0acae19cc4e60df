// absl::Status <-> grpc::Status: the same code and message both ways.
#ifndef KUBETRAIN_STORAGE_GRPC_GRPC_STATUS_H_
#define KUBETRAIN_STORAGE_GRPC_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace kubetrain::storage::storage_internal {

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(s.code())),
                      std::string(s.message()));
}

inline absl::Status FromGrpcStatus(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(static_cast<int>(s.error_code())),
                      s.error_message());
}

}  // namespace kubetrain::storage::storage_internal

#endif  // KUBETRAIN_STORAGE_GRPC_GRPC_STATUS_H_
