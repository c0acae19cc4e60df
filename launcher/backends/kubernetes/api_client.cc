#include "kubetrain/launcher/backends/kubernetes/api_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace kubetrain::backends::kubernetes {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  std::string body;
  std::string partial;  // streaming: an incomplete line
  const std::function<bool(absl::string_view)>* on_line = nullptr;
  bool stopped_by_callback = false;
  const std::atomic<bool>* stop = nullptr;
  absl::Duration retry_after;
  long code = 0;
  CURL* curl = nullptr;
};

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t bytes = size * n;
  if (t->on_line == nullptr) {
    t->body.append(data, bytes);
    return bytes;
  }
  // Error answers of a stream are a Status object: keep the body whole.
  if (t->code == 0) curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->code);
  if (t->code >= 300) {
    t->body.append(data, bytes);
    return bytes;
  }
  t->partial.append(data, bytes);
  size_t start = 0;
  while (true) {
    size_t nl = t->partial.find('\n', start);
    if (nl == std::string::npos) break;
    absl::string_view line(t->partial.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!(*t->on_line)(line)) {
      t->stopped_by_callback = true;
      return 0;  // aborts the transfer
    }
    start = nl + 1;
  }
  t->partial.erase(0, start);
  return bytes;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  absl::string_view line(data, size * n);
  if (absl::StartsWithIgnoreCase(line, "retry-after:")) {
    int seconds = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(12)), &seconds)) {
      t->retry_after = absl::Seconds(seconds);
    }
  }
  return size * n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return t->stop != nullptr && t->stop->load() ? 1 : 0;
}

absl::StatusCode CodeFor(long http) {
  switch (http) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return absl::StatusCode::kAlreadyExists;
    case 410:
      return absl::StatusCode::kOutOfRange;
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    default:
      return http >= 500 ? absl::StatusCode::kUnavailable : absl::StatusCode::kUnknown;
  }
}

bool Retryable(long code) { return code == 429 || code >= 500; }

}  // namespace

ApiClient::ApiClient(KubeConnection connection, ApiClientOptions options)
    : connection_(std::move(connection)), options_(options) {
  GlobalInit();
}

absl::Status ApiClient::ErrorFor(absl::string_view method, absl::string_view path,
                                 const ApiResponse& r) {
  std::string reason, message;
  nlohmann::json status = nlohmann::json::parse(r.body, nullptr, false);
  if (status.is_object()) {
    reason = status.value("reason", "");
    message = status.value("message", "");
  }
  if (message.empty()) message = r.body.substr(0, 300);
  absl::StatusCode code = CodeFor(r.code);
  if (r.code == 409 && reason == "Conflict") code = absl::StatusCode::kAborted;
  std::string hint;
  if (r.code == 401) hint = " (the kubeconfig's credentials were rejected)";
  if (r.code == 403) {
    hint =
        " (the kubeconfig's user lacks this permission: bind it to the Role in docker/rbac.yaml)";
  }
  return absl::Status(
      code, absl::StrCat(method, " ", path, ": HTTP ", r.code,
                         reason.empty() ? "" : absl::StrCat(" ", reason), ": ", message, hint));
}

namespace {

absl::StatusOr<ApiResponse> Perform(const KubeConnection& c, const ApiClientOptions& o,
                                    absl::string_view method, absl::string_view path,
                                    const std::string* body, Transfer& t, bool streaming) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  t.curl = curl;
  std::string url = absl::StrCat(c.server, path);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, std::string(method).c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(o.connect_timeout)));
  if (!streaming) {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(o.request_timeout)));
  }
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnWrite);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Accept: application/json");
  std::string auth;
  if (!c.bearer_token.empty()) {
    auth = absl::StrCat("Authorization: Bearer ", c.bearer_token);
    headers = curl_slist_append(headers, auth.c_str());
  }
  if (body != nullptr) {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  // TLS material straight from memory (curl copies the blobs): nothing is written to disk.
  curl_blob ca{const_cast<char*>(c.ca_pem.data()), c.ca_pem.size(), CURL_BLOB_COPY};
  curl_blob cert{const_cast<char*>(c.client_cert_pem.data()), c.client_cert_pem.size(),
                 CURL_BLOB_COPY};
  curl_blob key{const_cast<char*>(c.client_key_pem.data()), c.client_key_pem.size(),
                CURL_BLOB_COPY};
  if (!c.ca_pem.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &ca);
  if (!c.client_cert_pem.empty()) {
    curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(curl, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
    curl_easy_setopt(curl, CURLOPT_SSLKEY_BLOB, &key);
  }
  if (c.insecure_skip_tls_verify) {
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  CURLcode rc = curl_easy_perform(curl);
  ApiResponse r;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.code);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc == CURLE_ABORTED_BY_CALLBACK && t.stop != nullptr && t.stop->load()) {
    return absl::CancelledError("stopped");
  }
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && t.stopped_by_callback)) {
    return absl::UnavailableError(absl::StrCat(method, " ", c.server, path, ": ",
                                               error[0] != 0 ? error : curl_easy_strerror(rc)));
  }
  r.body = std::move(t.body);
  r.retry_after = t.retry_after;
  return r;
}

}  // namespace

absl::StatusOr<ApiResponse> ApiClient::Request(absl::string_view method, absl::string_view path,
                                               const std::string* body) const {
  Transfer t;
  return Perform(connection_, options_, method, path, body, t, false);
}

absl::StatusOr<nlohmann::json> ApiClient::Get(absl::string_view path) const {
  absl::StatusOr<ApiResponse> r = Request("GET", path);
  if (!r.ok()) return r.status();
  if (r->code < 200 || r->code >= 300) return ErrorFor("GET", path, *r);
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded()) {
    return absl::InternalError(absl::StrCat("GET ", path, ": the answer is not JSON"));
  }
  return j;
}

absl::StatusOr<nlohmann::json> ApiClient::Create(
    absl::string_view path, const nlohmann::json& object,
    const std::function<bool(const nlohmann::json&)>& is_ours) const {
  std::string body = object.dump();
  std::string name = object["metadata"].value("name", "");
  absl::Duration backoff = options_.backoff_initial;
  absl::Status last;
  for (int attempt = 0; attempt < options_.create_attempts; ++attempt) {
    if (attempt > 0) {
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, options_.backoff_max);
    }
    absl::StatusOr<ApiResponse> r = Request("POST", path, &body);
    if (!r.ok()) {  // transport: the object may or may not have been created; 409 will tell
      last = r.status();
      continue;
    }
    if (r->code >= 200 && r->code < 300) {
      nlohmann::json created = nlohmann::json::parse(r->body, nullptr, false);
      if (created.is_discarded()) {
        return absl::InternalError(absl::StrCat("POST ", path, ": the answer is not JSON"));
      }
      return created;
    }
    last = ErrorFor("POST", path, *r);
    if (r->code == 409) {
      absl::StatusOr<nlohmann::json> existing = Get(absl::StrCat(path, "/", name));
      if (!existing.ok()) {
        if (existing.status().code() == absl::StatusCode::kNotFound) continue;  // gone meanwhile
        return existing.status();
      }
      if (is_ours && is_ours(*existing)) return *existing;
      if ((*existing)["metadata"].contains("deletionTimestamp")) continue;  // being deleted
      return absl::AlreadyExistsError(absl::StrCat(
          last.message(), " — it was not created by this launch; delete it (kubectl delete ",
          object.value("kind", "object"), " ", name, ") or rename the job"));
    }
    if (!Retryable(r->code)) return last;
    if (r->retry_after > absl::ZeroDuration()) backoff = std::max(backoff, r->retry_after);
  }
  return absl::Status(last.code(), absl::StrCat(last.message(), " (gave up after ",
                                                options_.create_attempts, " tries)"));
}

absl::Status ApiClient::Delete(absl::string_view path, int64_t grace_period_seconds) const {
  nlohmann::json options = {
      {"kind", "DeleteOptions"}, {"apiVersion", "v1"}, {"propagationPolicy", "Background"}};
  if (grace_period_seconds >= 0) options["gracePeriodSeconds"] = grace_period_seconds;
  std::string body = options.dump();
  absl::Status last;
  absl::Duration backoff = options_.backoff_initial;
  for (int attempt = 0; attempt < options_.create_attempts; ++attempt) {
    if (attempt > 0) {
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, options_.backoff_max);
    }
    absl::StatusOr<ApiResponse> r = Request("DELETE", path, &body);
    if (!r.ok()) {
      last = r.status();
      continue;
    }
    if ((r->code >= 200 && r->code < 300) || r->code == 404) return absl::OkStatus();
    last = ErrorFor("DELETE", path, *r);
    if (!Retryable(r->code)) return last;
  }
  return last;
}

absl::Status ApiClient::Stream(absl::string_view path,
                               const std::function<bool(absl::string_view)>& on_line,
                               const std::atomic<bool>* stop) const {
  Transfer t;
  t.on_line = &on_line;
  t.stop = stop;
  absl::StatusOr<ApiResponse> r = Perform(connection_, options_, "GET", path, nullptr, t, true);
  if (!r.ok()) return r.status();
  if (r->code < 200 || r->code >= 300) return ErrorFor("GET", path, *r);
  if (!t.partial.empty() && !t.stopped_by_callback) on_line(t.partial);  // last line, no newline
  return absl::OkStatus();
}

}  // namespace kubetrain::backends::kubernetes
