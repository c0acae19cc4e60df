#include "kubetrain/storage/blob_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "blob/shared_key.h"

namespace kubetrain::storage {

using Params = std::vector<std::pair<std::string, std::string>>;

struct BlobClient::Request {
  std::string method = "GET";  // GET, HEAD, PUT, DELETE
  std::string blob;            // empty: a container-level request
  Params query;                // unencoded name/value pairs
  Params headers;              // besides x-ms-date / x-ms-version / Authorization
  absl::string_view body;
  // Ranged GET streamed to a sink (retries resume after the bytes already delivered).
  const Sink* sink = nullptr;
  int64_t range_offset = -1;
  int64_t range_length = 0;
  std::string what;  // "list blobs", "read", ... for messages
};

struct BlobClient::Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lowercase names
  std::string body;                            // error bodies and small responses
};

struct BlobClient::Pool {
  std::mutex mu;
  std::vector<CURL*> idle;
};

namespace {

std::once_flag curl_init_once;

bool Unreserved(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
         c == '~';
}

std::string PercentEncode(absl::string_view s, bool keep_slash) {
  std::string out;
  out.reserve(s.size());
  static const char* kHex = "0123456789ABCDEF";
  for (char ch : s) {
    if (Unreserved(ch) || (keep_slash && ch == '/')) {
      out.push_back(ch);
    } else {
      unsigned char c = static_cast<unsigned char>(ch);
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string HttpDate() {
  return absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", absl::Now(), absl::UTCTimeZone());
}

// The text between <tag> and </tag> (first occurrence at or after `from`), XML-unescaped.
std::string Unescape(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == absl::string_view::npos) {
      out.push_back(s[i]);
      continue;
    }
    absl::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp")
      out.push_back('&');
    else if (ent == "lt")
      out.push_back('<');
    else if (ent == "gt")
      out.push_back('>');
    else if (ent == "quot")
      out.push_back('"');
    else if (ent == "apos")
      out.push_back('\'');
    else if (absl::StartsWith(ent, "#")) {
      uint32_t cp = 0;
      bool ok = ent.size() > 1 && (ent[1] == 'x' || ent[1] == 'X')
                    ? absl::SimpleHexAtoi(ent.substr(2), &cp)
                    : absl::SimpleAtoi(ent.substr(1), &cp);
      if (!ok) {
        absl::StrAppend(&out, s.substr(i, semi - i + 1));
      } else if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
      } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
    } else {
      absl::StrAppend(&out, s.substr(i, semi - i + 1));
    }
    i = semi;
  }
  return out;
}

// Finds <tag ...>text</tag> in `xml` starting at *pos; on success advances *pos past it.
bool NextElement(absl::string_view xml, absl::string_view tag, size_t* pos,
                 absl::string_view* inner) {
  const std::string open = absl::StrCat("<", tag);
  size_t at = *pos;
  while (true) {
    at = xml.find(open, at);
    if (at == absl::string_view::npos) return false;
    size_t after = at + open.size();
    if (after < xml.size() && (xml[after] == '>' || xml[after] == ' ' || xml[after] == '/')) break;
    at = after;
  }
  size_t gt = xml.find('>', at);
  if (gt == absl::string_view::npos) return false;
  if (xml[gt - 1] == '/') {  // <Tag/>
    *inner = absl::string_view();
    *pos = gt + 1;
    return true;
  }
  const std::string close = absl::StrCat("</", tag, ">");
  size_t end = xml.find(close, gt + 1);
  if (end == absl::string_view::npos) return false;
  *inner = xml.substr(gt + 1, end - gt - 1);
  *pos = end + close.size();
  return true;
}

std::string ElementText(absl::string_view xml, absl::string_view tag) {
  size_t pos = 0;
  absl::string_view inner;
  if (!NextElement(xml, tag, &pos, &inner)) return "";
  return Unescape(inner);
}

bool RetryableStatus(long status) {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
         status == 504;
}

bool RetryableCurl(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

struct CallContext {
  BlobClient::Response* response;
  const BlobClient::Sink* sink;
  CURL* curl;
  int64_t* delivered;
  absl::Status sink_status;
  bool streaming = false;  // decided at the first body byte: success status → sink
  bool decided = false;
  bool accept_200 = false;  // a 200 (whole blob) is the asked range only when it starts at 0
  int64_t limit = 0;        // bytes the sink may receive in total (the range's length)
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* ctx = static_cast<CallContext*>(user);
  absl::string_view line(data, size * n);
  if (absl::StartsWith(line, "HTTP/")) {
    ctx->response->headers.clear();  // a new response (after 100 Continue or a redirect)
  } else if (size_t colon = line.find(':'); colon != absl::string_view::npos) {
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    ctx->response->headers[name] = std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* ctx = static_cast<CallContext*>(user);
  const size_t bytes = size * n;
  if (!ctx->decided) {
    long status = 0;
    curl_easy_getinfo(ctx->curl, CURLINFO_RESPONSE_CODE, &status);
    ctx->streaming = ctx->sink != nullptr && (status == 206 || (status == 200 && ctx->accept_200));
    ctx->decided = true;
  }
  if (!ctx->streaming) {
    if (ctx->response->body.size() < (1 << 24)) ctx->response->body.append(data, bytes);
    return bytes;
  }
  // Never more than the range asked for (a server that ignored the range sends the whole blob).
  const size_t give = static_cast<size_t>(
      std::min<int64_t>(static_cast<int64_t>(bytes), ctx->limit - *ctx->delivered));
  if (give == 0) return bytes;
  ctx->sink_status = (*ctx->sink)(data, give);
  if (!ctx->sink_status.ok()) return 0;
  *ctx->delivered += static_cast<int64_t>(give);
  return bytes;
}

}  // namespace

namespace blob_internal {

std::string EncodeBlobName(absl::string_view name) { return PercentEncode(name, true); }

std::string Md5Base64(absl::string_view data) { return absl::Base64Escape(shared_key::Md5(data)); }

absl::StatusOr<BlobListPage> ParseListBlobs(absl::string_view xml) {
  if (!absl::StrContains(xml, "<EnumerationResults")) {
    return absl::DataLossError("List Blobs: the response is not an EnumerationResults document");
  }
  BlobListPage page;
  size_t pos = 0;
  absl::string_view blob;
  while (NextElement(xml, "Blob", &pos, &blob)) {
    BlobInfo info;
    info.name = ElementText(blob, "Name");
    std::string length = ElementText(blob, "Content-Length");
    if (!length.empty() && !absl::SimpleAtoi(length, &info.size)) {
      return absl::DataLossError(
          absl::StrCat("List Blobs: blob '", info.name, "' has Content-Length '", length, "'"));
    }
    info.content_md5 = ElementText(blob, "Content-MD5");
    info.etag = ElementText(blob, "Etag");
    page.blobs.push_back(std::move(info));
  }
  page.next_marker = ElementText(xml, "NextMarker");
  return page;
}

std::string StringToSign(absl::string_view method, const Params& headers,
                         absl::string_view canonical_resource) {
  std::map<std::string, std::string> std_headers;
  std::map<std::string, std::string> ms_headers;
  for (const auto& [name, value] : headers) {
    std::string lower = absl::AsciiStrToLower(name);
    if (absl::StartsWith(lower, "x-ms-")) {
      ms_headers[lower] = std::string(absl::StripAsciiWhitespace(value));
    } else {
      std_headers[lower] = value;
    }
  }
  auto h = [&](const char* name) {
    auto it = std_headers.find(name);
    return it == std_headers.end() ? std::string() : it->second;
  };
  std::string length = h("content-length");
  if (length == "0") length.clear();
  std::string out =
      absl::StrCat(method, "\n", h("content-encoding"), "\n", h("content-language"), "\n", length,
                   "\n", h("content-md5"), "\n", h("content-type"), "\n", h("date"), "\n",
                   h("if-modified-since"), "\n", h("if-match"), "\n", h("if-none-match"), "\n",
                   h("if-unmodified-since"), "\n", h("range"), "\n");
  for (const auto& [name, value] : ms_headers) absl::StrAppend(&out, name, ":", value, "\n");
  absl::StrAppend(&out, canonical_resource);
  return out;
}

}  // namespace blob_internal

absl::StatusOr<std::unique_ptr<BlobClient>> BlobClient::Create(BlobAccount account,
                                                               BlobClientOptions options) {
  if (account.account_name.empty()) {
    return absl::InvalidArgumentError("Azure Blob: the account name is empty");
  }
  if (account.container.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Azure Blob account '", account.account_name, "': the container is empty"));
  }
  std::string endpoint = account.endpoint.empty() ? absl::StrCat("https://", account.account_name,
                                                                 ".blob.core.windows.net")
                                                  : account.endpoint;
  while (absl::EndsWith(endpoint, "/")) endpoint.pop_back();
  if (!absl::StartsWith(endpoint, "http://") && !absl::StartsWith(endpoint, "https://")) {
    return absl::InvalidArgumentError(absl::StrCat("Azure Blob account '", account.account_name,
                                                   "': the endpoint '", endpoint,
                                                   "' must start with http:// or https://"));
  }
  std::string key;
  if (!account.account_key.empty() && !absl::Base64Unescape(account.account_key, &key)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Azure Blob account '", account.account_name,
                     "': the account key is not valid base64 (copy it from the storage "
                     "account's Access keys)"));
  }
  if (absl::StartsWith(account.sas_token, "?")) account.sas_token.erase(0, 1);
  if (options.max_attempts < 1) options.max_attempts = 1;
  std::call_once(curl_init_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  return std::unique_ptr<BlobClient>(
      new BlobClient(std::move(account), std::move(options), std::move(endpoint), std::move(key)));
}

BlobClient::BlobClient(BlobAccount account, BlobClientOptions options, std::string endpoint,
                       std::string decoded_key)
    : account_(std::move(account)),
      options_(std::move(options)),
      endpoint_(std::move(endpoint)),
      decoded_key_(std::move(decoded_key)),
      pool_(std::make_unique<Pool>()) {}

BlobClient::~BlobClient() {
  for (CURL* c : pool_->idle) curl_easy_cleanup(c);
}

std::string BlobClient::Describe() const {
  return absl::StrCat(account_.account_name, "/", account_.container);
}

std::string BlobClient::BlobUrl(absl::string_view name) const {
  std::string url = absl::StrCat(endpoint_, "/", account_.container);
  if (!name.empty()) absl::StrAppend(&url, "/", blob_internal::EncodeBlobName(name));
  return url;
}

void* BlobClient::AcquireHandle() {
  {
    std::lock_guard<std::mutex> lock(pool_->mu);
    if (!pool_->idle.empty()) {
      CURL* c = pool_->idle.back();
      pool_->idle.pop_back();
      curl_easy_reset(c);
      return c;
    }
  }
  return curl_easy_init();
}

void BlobClient::ReleaseHandle(void* handle) {
  std::lock_guard<std::mutex> lock(pool_->mu);
  pool_->idle.push_back(static_cast<CURL*>(handle));
}

absl::Duration BlobClient::Backoff(int attempt) {
  absl::Duration d = options_.initial_backoff * (1 << std::min(attempt, 16));
  d = std::min(d, options_.max_backoff);
  thread_local std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return d * jitter(rng);
}

absl::StatusOr<BlobClient::Response> BlobClient::PerformOnce(const Request& req, void* handle,
                                                             int64_t* delivered) {
  CURL* curl = static_cast<CURL*>(handle);
  std::string url = BlobUrl(req.blob);
  std::string canonical = absl::StrCat("/", account_.account_name);
  {
    // The canonicalized resource is the account plus the URL's path as sent.
    absl::string_view rest = url;
    absl::ConsumePrefix(&rest, "https://") || absl::ConsumePrefix(&rest, "http://");
    size_t slash = rest.find('/');
    absl::StrAppend(&canonical, slash == absl::string_view::npos ? "/" : rest.substr(slash));
  }
  Params query = req.query;
  std::sort(query.begin(), query.end());
  std::vector<std::string> encoded;
  for (const auto& [k, v] : query) {
    encoded.push_back(absl::StrCat(PercentEncode(k, false), "=", PercentEncode(v, false)));
    absl::StrAppend(&canonical, "\n", absl::AsciiStrToLower(k), ":", v);
  }
  if (!account_.sas_token.empty()) encoded.push_back(account_.sas_token);
  std::string full_url = url;
  if (!encoded.empty()) absl::StrAppend(&full_url, "?", absl::StrJoin(encoded, "&"));

  Params headers = req.headers;
  headers.emplace_back("x-ms-date", HttpDate());
  headers.emplace_back("x-ms-version", options_.api_version);
  if (req.sink != nullptr && req.range_offset >= 0) {
    int64_t start = req.range_offset + *delivered;
    int64_t end = req.range_offset + req.range_length - 1;
    headers.emplace_back("x-ms-range", absl::StrCat("bytes=", start, "-", end));
  }
  if (req.method == "PUT") {
    headers.emplace_back("Content-Length", absl::StrCat(req.body.size()));
  }
  if (!decoded_key_.empty() && account_.sas_token.empty()) {
    std::string to_sign = blob_internal::StringToSign(req.method, headers, canonical);
    headers.emplace_back(
        "Authorization",
        absl::StrCat("SharedKey ", account_.account_name, ":",
                     absl::Base64Escape(shared_key::HmacSha256(decoded_key_, to_sign))));
  }

  curl_slist* list = nullptr;
  for (const auto& [k, v] : headers) {
    if (k == "Content-Length") continue;  // curl sets it from the body size
    list = curl_slist_append(list, absl::StrCat(k, ": ", v).c_str());
  }
  list = curl_slist_append(list, "Expect:");
  if (req.method == "PUT" && !std::any_of(headers.begin(), headers.end(), [](const auto& h) {
        return absl::EqualsIgnoreCase(h.first, "content-type");
      })) {
    list = curl_slist_append(list, "Content-Type:");
  }

  Response response;
  CallContext ctx{&response, req.sink, curl, delivered, absl::OkStatus()};
  ctx.accept_200 = req.range_offset + *delivered == 0;
  ctx.limit = req.range_length;
  curl_easy_setopt(curl, CURLOPT_URL, full_url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(
      curl, CURLOPT_LOW_SPEED_TIME,
      static_cast<long>(std::max<int64_t>(1, absl::ToInt64Seconds(options_.stall_timeout))));
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &ctx);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &ctx);
  curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 512L * 1024L);
  if (req.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req.body.data() == nullptr ? "" : req.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  } else if (req.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  CURLcode code = curl_easy_perform(curl);
  curl_slist_free_all(list);
  if (!ctx.sink_status.ok()) return ctx.sink_status;
  if (code != CURLE_OK) {
    absl::Status s = absl::UnavailableError(
        absl::StrCat("Azure Blob ", req.what, " ", url, ": ", curl_easy_strerror(code)));
    if (!RetryableCurl(code)) s = absl::InternalError(s.message());
    return s;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

absl::StatusOr<BlobClient::Response> BlobClient::Perform(const Request& req) {
  void* handle = AcquireHandle();
  if (handle == nullptr) return absl::InternalError("curl_easy_init failed");
  int64_t delivered = 0;
  absl::Status last;
  for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
    if (attempt > 0) absl::SleepFor(Backoff(attempt - 1));
    const int64_t before = delivered;
    absl::StatusOr<Response> r = PerformOnce(req, handle, &delivered);
    if (delivered > before) attempt = 0;  // progress was made: the budget starts again
    if (!r.ok()) {
      last = r.status();
      if (absl::IsUnavailable(last)) continue;
      break;
    }
    if (RetryableStatus(r->status)) {
      last = absl::UnavailableError(absl::StrCat("Azure Blob ", req.what, " ", BlobUrl(req.blob),
                                                 ": HTTP ", r->status, " ",
                                                 ElementText(r->body, "Code")));
      continue;
    }
    if (req.sink != nullptr && (r->status == 200 || r->status == 206) &&
        delivered < req.range_length) {
      // The body ended early without a transport error (a proxy cut it cleanly): resume.
      last = absl::UnavailableError(absl::StrCat("Azure Blob ", req.what, " ", BlobUrl(req.blob),
                                                 ": the response ended after ", delivered, " of ",
                                                 req.range_length, " bytes"));
      continue;
    }
    ReleaseHandle(handle);
    if (r->status >= 200 && r->status < 300) return r;
    std::string code = ElementText(r->body, "Code");
    std::string message = ElementText(r->body, "Message");
    if (size_t nl = message.find('\n'); nl != std::string::npos) message.resize(nl);
    absl::StripTrailingAsciiWhitespace(&message);
    if (code.empty() && r->headers.count("x-ms-error-code")) code = r->headers["x-ms-error-code"];
    std::string where = req.blob.empty() ? absl::StrCat("container ", Describe())
                                         : absl::StrCat("blob ", BlobUrl(req.blob));
    std::string text =
        absl::StrCat("Azure Blob ", req.what, " of ", where, ": HTTP ", r->status,
                     code.empty() ? "" : " ", code, message.empty() ? "" : ": ", message);
    switch (r->status) {
      case 401:
      case 403:
        return absl::PermissionDeniedError(absl::StrCat(
            text, " — authentication failed for storage account '", account_.account_name,
            "': check the datastore's account key or SAS token (and its permissions and expiry)"));
      case 404:
        return absl::NotFoundError(text);
      case 409:
        return absl::AlreadyExistsError(text);
      case 412:
        return absl::FailedPreconditionError(
            absl::StrCat(text, " (the blob changed while it was being read)"));
      default:
        return absl::InvalidArgumentError(text);
    }
  }
  curl_easy_cleanup(static_cast<CURL*>(handle));  // a broken connection: do not pool it
  if (!absl::IsUnavailable(last)) return last;
  return absl::UnavailableError(
      absl::StrCat(last.message(), " (gave up after ", options_.max_attempts, " attempts)"));
}

absl::Status BlobClient::CreateContainer() {
  Request req;
  req.method = "PUT";
  req.query = {{"restype", "container"}};
  req.what = "create container";
  absl::StatusOr<Response> r = Perform(req);
  if (absl::IsAlreadyExists(r.status())) return absl::OkStatus();
  return r.status();
}

absl::StatusOr<BlobListPage> BlobClient::ListPage(absl::string_view prefix,
                                                  absl::string_view marker, int max_results) {
  Request req;
  req.query = {{"restype", "container"}, {"comp", "list"}};
  if (!prefix.empty()) req.query.emplace_back("prefix", std::string(prefix));
  if (!marker.empty()) req.query.emplace_back("marker", std::string(marker));
  int n = max_results > 0 ? max_results : options_.list_page_size;
  req.query.emplace_back("maxresults", absl::StrCat(n));
  req.what = "list blobs";
  absl::StatusOr<Response> r = Perform(req);
  if (!r.ok()) return r.status();
  return blob_internal::ParseListBlobs(r->body);
}

absl::StatusOr<std::vector<BlobInfo>> BlobClient::List(absl::string_view prefix) {
  std::vector<BlobInfo> all;
  std::string marker;
  do {
    absl::StatusOr<BlobListPage> page = ListPage(prefix, marker);
    if (!page.ok()) return page.status();
    for (BlobInfo& b : page->blobs) all.push_back(std::move(b));
    marker = page->next_marker;
  } while (!marker.empty());
  return all;
}

absl::StatusOr<BlobInfo> BlobClient::GetProperties(absl::string_view name) {
  Request req;
  req.method = "HEAD";
  req.blob = std::string(name);
  req.what = "get properties";
  absl::StatusOr<Response> r = Perform(req);
  if (!r.ok()) {
    // A HEAD has no body: name the blob when it is missing.
    if (absl::IsNotFound(r.status())) {
      return absl::NotFoundError(absl::StrCat("Azure Blob: no blob ", BlobUrl(name)));
    }
    return r.status();
  }
  BlobInfo info;
  info.name = std::string(name);
  if (!absl::SimpleAtoi(r->headers["content-length"], &info.size)) {
    return absl::DataLossError(absl::StrCat("Azure Blob get properties of ", BlobUrl(name),
                                            ": no Content-Length in the response"));
  }
  info.content_md5 = r->headers["content-md5"];
  info.etag = r->headers["etag"];
  return info;
}

absl::Status BlobClient::GetRange(absl::string_view name, int64_t offset, int64_t length,
                                  const Sink& sink, absl::string_view if_match) {
  if (length <= 0) return absl::OkStatus();
  Request req;
  req.blob = std::string(name);
  req.sink = &sink;
  req.range_offset = offset;
  req.range_length = length;
  req.what = "read";
  if (!if_match.empty()) {
    req.headers.emplace_back("If-Match", absl::StartsWith(if_match, "\"")
                                             ? std::string(if_match)
                                             : absl::StrCat("\"", if_match, "\""));
  }
  return Perform(req).status();
}

absl::StatusOr<std::string> BlobClient::GetBlob(absl::string_view name) {
  absl::StatusOr<BlobInfo> info = GetProperties(name);
  if (!info.ok()) return info.status();
  std::string out;
  out.reserve(info->size);
  absl::Status s = GetRange(name, 0, info->size, [&](const char* d, size_t n) {
    out.append(d, n);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status BlobClient::PutBlob(absl::string_view name, absl::string_view data,
                                 absl::string_view content_md5) {
  Request req;
  req.method = "PUT";
  req.blob = std::string(name);
  req.body = data;
  req.headers = {{"x-ms-blob-type", "BlockBlob"}, {"Content-Type", "application/octet-stream"}};
  if (!content_md5.empty())
    req.headers.emplace_back("x-ms-blob-content-md5", std::string(content_md5));
  req.what = "write";
  return Perform(req).status();
}

absl::Status BlobClient::PutBlock(absl::string_view name, absl::string_view block_id,
                                  absl::string_view data) {
  Request req;
  req.method = "PUT";
  req.blob = std::string(name);
  req.body = data;
  req.query = {{"comp", "block"}, {"blockid", absl::Base64Escape(block_id)}};
  req.headers = {{"Content-Type", "application/octet-stream"}};
  req.what = "write block";
  return Perform(req).status();
}

absl::Status BlobClient::PutBlockList(absl::string_view name,
                                      const std::vector<std::string>& block_ids,
                                      absl::string_view content_md5) {
  std::string body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>";
  for (const std::string& id : block_ids) {
    absl::StrAppend(&body, "<Latest>", absl::Base64Escape(id), "</Latest>");
  }
  absl::StrAppend(&body, "</BlockList>");
  Request req;
  req.method = "PUT";
  req.blob = std::string(name);
  req.body = body;
  req.query = {{"comp", "blocklist"}};
  req.headers = {{"Content-Type", "application/xml"}};
  if (!content_md5.empty())
    req.headers.emplace_back("x-ms-blob-content-md5", std::string(content_md5));
  req.what = "commit block list";
  return Perform(req).status();
}

absl::Status BlobClient::DeleteBlob(absl::string_view name) {
  Request req;
  req.method = "DELETE";
  req.blob = std::string(name);
  req.what = "delete";
  return Perform(req).status();
}

}  // namespace kubetrain::storage
