// Access tokens of the workspace server (`kubetrain workspace serve`).
//
//   server token  "kt1.<64 hex>": 32 random bytes, generated at the server's first start and kept
//                 in a 0600 file beside the workspace (LoadOrCreateServerToken). Allows every RPC.
//   job token     "ktjob.<hex of the job name>.<64 hex>": HMAC-SHA256 of the job name keyed with
//                 the server token. Minted by the server (IssueJobToken) for a job's agents; allows
//                 only the RPCs an agent needs, and only on that job. Valid as long as the server
//                 token is; it needs no state on the server.
//
// Tokens are secrets: they travel in the `authorization: Bearer` metadata of each call and in
// environment variables (KUBETRAIN_WORKSPACE_TOKEN), never on a command line or in a log.
//
// Thread-safety: pure functions, except LoadOrCreateServerToken (one process per file).
#ifndef KUBETRAIN_STORAGE_TOKENS_H_
#define KUBETRAIN_STORAGE_TOKENS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kubetrain::storage {

// A new server token from the kernel's random source.
absl::StatusOr<std::string> GenerateServerToken();

// The token of job `job` under `server_token`.
std::string MakeJobToken(absl::string_view server_token, absl::string_view job);

// Who presents `token`.
struct TokenIdentity {
  enum Kind { kInvalid, kServer, kJob };
  Kind kind = kInvalid;
  std::string job;  // kJob: the job it may write
};
// Compares in constant time; kInvalid for anything that is neither the server token nor a job
// token made with it.
TokenIdentity IdentifyToken(absl::string_view server_token, absl::string_view token);

// Reads the server token from `file`, or, when the file does not exist, generates one and writes
// it there with mode 0600 (`*created` is then true). FailedPrecondition when the file is readable
// or writable by others than its owner, or holds no valid token.
absl::StatusOr<std::string> LoadOrCreateServerToken(const std::string& file, bool* created);

// Lower-case hex of SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);

}  // namespace kubetrain::storage

#endif  // KUBETRAIN_STORAGE_TOKENS_H_
