// The workspace server: WorkspaceService (proto/kubetrain/v1/workspace.proto) over any Workspace,
// what `kubetrain workspace serve` runs in front of the embedded workspace.
//
// Authentication: every call must carry `authorization: Bearer <token>`:
//   - the server token (kubetrain/storage/tokens.h) may call everything;
//   - a job token (IssueJobToken) may call only what an agent does, on its own job: GetJob,
//     UpdateInstanceStatus, AppendLogs, ReadLogs, WatchJob, IngestMetrics, the run history reads,
//     RecordCheckpoint / ListCheckpoints, RecordOutputUpload / ListOutputUploads, and GetDatastore
//     (to stage its data). Anything else, or another job's data, is PERMISSION_DENIED.
// A call without a token or with one the server did not issue is UNAUTHENTICATED. Every refusal is
// logged (spdlog warning: the method, the peer and why; never the token) and counted.
//
// TLS: with a certificate and key (PEM files) the server accepts TLS connections only.
//
// Ownership: borrows the Workspace, which must outlive the server. Thread-safety: the server's
// threads call the Workspace concurrently (it must be thread-safe, as every Workspace is).
#ifndef KUBETRAIN_STORAGE_WORKSPACE_SERVER_H_
#define KUBETRAIN_STORAGE_WORKSPACE_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kubetrain/storage/workspace.h"

namespace kubetrain::storage {

struct WorkspaceServerOptions {
  std::string listen = "127.0.0.1:7070";  // HOST:PORT; port 0 picks a free one (see port())
  std::string token;                      // the server token; required
  std::string tls_cert_file;              // PEM; set both or neither
  std::string tls_key_file;
};

class WorkspaceServer {
 public:
  virtual ~WorkspaceServer() = default;  // shuts down (see Shutdown)

  // The port it listens on (the one picked when `listen` said 0).
  virtual int port() const = 0;
  // The location clients use: grpc://HOST:PORT, or grpcs:// with TLS.
  virtual std::string location() const = 0;
  // Stops accepting calls, lets running ones finish (open streams are canceled after `grace`) and
  // returns when every call has ended. Idempotent.
  virtual void Shutdown(absl::Duration grace = absl::Seconds(2)) = 0;
  // Blocks until Shutdown (from another thread) has completed.
  virtual void Wait() = 0;
  // Calls refused so far (no token, a wrong one, or a job token outside its job).
  virtual int64_t refused() const = 0;
};

// Starts serving `workspace`. InvalidArgument for a bad address, an empty token or only one of
// cert / key; Unavailable when the address cannot be bound.
absl::StatusOr<std::unique_ptr<WorkspaceServer>> StartWorkspaceServer(
    Workspace* workspace, const WorkspaceServerOptions& options);

}  // namespace kubetrain::storage

#endif  // KUBETRAIN_STORAGE_WORKSPACE_SERVER_H_
