// A small Kubernetes API client: REST with JSON over libcurl, for the subset kubetrain uses (get,
// list, create, delete, and streamed GETs for watches and pod logs).
//
// Errors: a transport failure is Unavailable; a Kubernetes error response (a `Status` object) maps
// to the absl code of its HTTP status (404 NotFound, 409 AlreadyExists or Aborted for a conflict,
// 410 → OutOfRange "Expired" (a watch's resourceVersion is too old), 401 Unauthenticated, 403
// PermissionDenied, 422 InvalidArgument, 429 ResourceExhausted, 5xx Unavailable), and the message
// names the method, the path and the server's own message.
//
// Ownership: owns its connection settings; each call uses its own curl handle.
// Thread-safety: every method may be called concurrently from several threads.
#ifndef KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_API_CLIENT_H_
#define KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_API_CLIENT_H_

#include <atomic>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "kubetrain/launcher/backends/kubernetes/kubeconfig.h"
#include "nlohmann/json.hpp"

namespace kubetrain::backends::kubernetes {

struct ApiClientOptions {
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration request_timeout = absl::Seconds(30);  // non-streaming requests
  // Retries of a create on 429, 5xx and transport errors (409 is decided by the caller's check).
  int create_attempts = 8;
  absl::Duration backoff_initial = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(5);
};

// The HTTP exchange as it happened (for callers that decide on the code themselves).
struct ApiResponse {
  long code = 0;               // HTTP status
  std::string body;            // as received
  absl::Duration retry_after;  // Retry-After, zero when absent
};

class ApiClient {
 public:
  ApiClient(KubeConnection connection, ApiClientOptions options = {});

  const KubeConnection& connection() const { return connection_; }

  // One request; Unavailable only for a transport failure (any HTTP status is returned).
  absl::StatusOr<ApiResponse> Request(absl::string_view method, absl::string_view path,
                                      const std::string* body = nullptr) const;

  // GET `path` → the JSON object; errors as in the header comment.
  absl::StatusOr<nlohmann::json> Get(absl::string_view path) const;

  // POST `object` to the collection `path`, retrying on 429 (honouring Retry-After), 5xx and
  // transport errors with exponential backoff. On 409 AlreadyExists it GETs the existing object
  // `path/<metadata.name>` and asks `is_ours` whether it is this very object (created by an
  // earlier try whose answer was lost): then that object is returned; if it is being deleted (a
  // previous attempt's), the create is retried until it is gone; otherwise AlreadyExists.
  absl::StatusOr<nlohmann::json> Create(
      absl::string_view path, const nlohmann::json& object,
      const std::function<bool(const nlohmann::json& existing)>& is_ours) const;

  // DELETE `path` (with gracePeriodSeconds when >= 0 and propagationPolicy Background). A 404 is
  // success: the object is already gone.
  absl::Status Delete(absl::string_view path, int64_t grace_period_seconds = -1) const;

  // A streamed GET (a watch, or a followed pod log): `on_line` gets each complete line without its
  // newline and returns false to stop. Returns OK when the server ended the stream or `on_line`
  // stopped it; Cancelled when `stop` became true (checked about once a second while idle); the
  // mapped error when the server answered with an error status (its body parsed as a Status).
  absl::Status Stream(absl::string_view path, const std::function<bool(absl::string_view)>& on_line,
                      const std::atomic<bool>* stop) const;

  // The absl::Status for a non-2xx response of `method path`.
  static absl::Status ErrorFor(absl::string_view method, absl::string_view path,
                               const ApiResponse& response);

 private:
  KubeConnection connection_;
  ApiClientOptions options_;
};

}  // namespace kubetrain::backends::kubernetes

#endif  // KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_API_CLIENT_H_
