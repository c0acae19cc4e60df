// gRPC's own log (handshake failures, bind errors, ...) goes to spdlog at debug level: kubetrain
// reports the failures itself, in its own words, and `--log-level debug` shows gRPC's detail.
#ifndef KUBETRAIN_STORAGE_GRPC_GRPC_LOG_H_
#define KUBETRAIN_STORAGE_GRPC_GRPC_LOG_H_

namespace kubetrain::storage::storage_internal {

// Idempotent; call before using gRPC.
void RouteGrpcLogToSpdlog();

}  // namespace kubetrain::storage::storage_internal

#endif  // KUBETRAIN_STORAGE_GRPC_GRPC_LOG_H_
