// Opening a workspace by location, and the gRPC client of `kubetrain workspace serve`.
//
// Locations:
//   DIR, file://DIR      the embedded workspace in that directory (OpenEmbeddedWorkspace)
//   grpc://HOST:PORT     a workspace server, plain TCP (for loopback or a trusted network)
//   grpcs://HOST:PORT    a workspace server over TLS; the server's certificate is checked against
//                        the PEM roots in $KUBETRAIN_WORKSPACE_CA (else the system's roots)
//
// The gRPC client implements every Workspace method with the same results and errors (status code
// and message) as the embedded workspace behind the server. UpdateJob runs its mutation here, on a
// snapshot of every job, and commits it only if no job changed meanwhile (else it reads again and
// re-runs the mutation), so it stays atomic over the network. WatchJob is a server stream.
//
// Reaching the server: a call waits up to `connect_timeout` for a connection (reconnecting with a
// short backoff), then fails with Unavailable naming the location. Calls that are safe to repeat
// (reads, idempotent writes: logs, metrics, status, records) are retried on Unavailable within
// that time; CreateJob and the commit of UpdateJob are sent at most once.
//
// Credentials: every call carries `authorization: Bearer <token>`. ConnectOptionsFromEnvironment
// reads them from the environment, in one place:
//   KUBETRAIN_WORKSPACE_TOKEN        the token itself (an agent gets its job token here)
//   KUBETRAIN_WORKSPACE_TOKEN_FILE   else a file holding it (e.g. the server's token file)
//   KUBETRAIN_WORKSPACE_CA           PEM root certificates for grpcs://
//
// Ownership: OpenWorkspace returns a uniquely owned object. Thread-safety: all methods may be
// called concurrently (one HTTP/2 connection is shared).
#ifndef KUBETRAIN_STORAGE_GRPC_WORKSPACE_H_
#define KUBETRAIN_STORAGE_GRPC_WORKSPACE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "kubetrain/storage/workspace.h"

namespace kubetrain::storage {

inline constexpr char kWorkspaceTokenEnv[] = "KUBETRAIN_WORKSPACE_TOKEN";
inline constexpr char kWorkspaceTokenFileEnv[] = "KUBETRAIN_WORKSPACE_TOKEN_FILE";
inline constexpr char kWorkspaceCaEnv[] = "KUBETRAIN_WORKSPACE_CA";

struct WorkspaceConnectOptions {
  std::string token;    // bearer token; empty: none (a server then refuses every call)
  std::string ca_file;  // grpcs://: PEM root certificates; empty: the system's
  // How long a call waits for an unreachable server before failing with Unavailable.
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration call_timeout = absl::Minutes(5);  // the deadline of one call once sent
};

// The token and CA from the environment (see above); the timeouts keep their defaults.
// InvalidArgument when KUBETRAIN_WORKSPACE_TOKEN_FILE names a file that cannot be read.
absl::StatusOr<WorkspaceConnectOptions> ConnectOptionsFromEnvironment();

// Whether `location` names a workspace server (grpc:// or grpcs://).
bool IsRemoteWorkspace(absl::string_view location);

// Opens the workspace at `location` (see above). For a directory `options` is ignored. Opening a
// server does not connect yet; the first call does.
absl::StatusOr<std::unique_ptr<Workspace>> OpenWorkspace(const std::string& location,
                                                         const WorkspaceConnectOptions& options);

// The same, with the credentials from the environment (ConnectOptionsFromEnvironment).
absl::StatusOr<std::unique_ptr<Workspace>> OpenWorkspace(const std::string& location);

// The gRPC client alone; `location` must be grpc:// or grpcs://.
absl::StatusOr<std::unique_ptr<Workspace>> OpenGrpcWorkspace(
    const std::string& location, const WorkspaceConnectOptions& options);

}  // namespace kubetrain::storage

#endif  // KUBETRAIN_STORAGE_GRPC_WORKSPACE_H_
