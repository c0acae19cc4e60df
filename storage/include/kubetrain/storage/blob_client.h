// BlobClient: a small Azure Blob Storage REST client on libcurl, for one container.
//
// What it does: list blobs (all pages), read properties, ranged reads streamed to a callback,
// whole-blob writes (Put Blob) and block writes (Put Block / Put Block List) for large files,
// container creation and blob deletion. Authentication is Shared Key (HMAC-SHA256 of the request
// with the account key, via OpenSSL) or a SAS token appended to every URL; with neither the
// requests are anonymous (public containers).
//
// Endpoints: by default https://<account>.blob.core.windows.net; `endpoint` overrides it, so the
// Azurite emulator works ("http://127.0.0.1:10000/devstoreaccount1", path style).
//
// Failures: 5xx, 408, 429 and connection failures (refused, reset, dropped mid-body, stalled) are
// retried with exponential backoff and jitter, up to `max_attempts`; a ranged read that loses its
// connection resumes from the last byte it delivered, so the callback never sees a byte twice.
// 403 becomes PermissionDenied ("authentication failed ... check the account key / SAS token"),
// 404 NotFound, other 4xx InvalidArgument/FailedPrecondition; messages name the account, container
// and blob, never a secret: no account key, SAS token or signature appears in any Status or log
// line (URLs in messages are printed without their query string).
//
// Ownership: Create returns a uniquely owned client holding a pool of curl handles (kept so that
// connections are reused). Thread-safety: every method may be called concurrently from several
// threads; each call takes its own handle from the pool.
#ifndef KUBETRAIN_STORAGE_BLOB_CLIENT_H_
#define KUBETRAIN_STORAGE_BLOB_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace kubetrain::storage {

// Where a container lives and how to authenticate. account_key and sas_token are secrets.
struct BlobAccount {
  std::string account_name;  // e.g. "devstoreaccount1"
  std::string container;     // e.g. "training-data"
  std::string endpoint;      // empty: https://<account_name>.blob.core.windows.net
  std::string account_key;   // base64 Shared Key; empty when sas_token or anonymous
  std::string sas_token;     // "sv=...&sig=..." (a leading '?' is accepted)
};

struct BlobClientOptions {
  int max_attempts = 6;                                      // per request, first try included
  absl::Duration initial_backoff = absl::Milliseconds(100);  // doubled per retry, with jitter
  absl::Duration max_backoff = absl::Seconds(5);
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration stall_timeout = absl::Seconds(30);  // a transfer below 1 byte/s this long fails
  int list_page_size = 5000;                         // maxresults of one List Blobs page
  std::string api_version = "2021-08-06";            // x-ms-version
};

// One blob as List Blobs or Get Blob Properties reports it.
struct BlobInfo {
  std::string name;         // full blob name inside the container
  int64_t size = 0;         // Content-Length
  std::string content_md5;  // base64 MD5 of the whole blob; empty when the service has none
  std::string etag;
};

struct BlobListPage {
  std::vector<BlobInfo> blobs;
  std::string next_marker;  // empty on the last page
};

class BlobClient {
 public:
  // InvalidArgument when the account or container name is empty, the endpoint is not http(s) or
  // the account key is not base64.
  static absl::StatusOr<std::unique_ptr<BlobClient>> Create(BlobAccount account,
                                                            BlobClientOptions options = {});
  ~BlobClient();
  BlobClient(const BlobClient&) = delete;
  BlobClient& operator=(const BlobClient&) = delete;

  const BlobAccount& account() const { return account_; }
  // "account/container" for messages.
  std::string Describe() const;
  // The blob's URL without credentials (safe to print).
  std::string BlobUrl(absl::string_view name) const;

  // Creates the container; OK when it already exists.
  absl::Status CreateContainer();

  // One page of List Blobs under `prefix` (an empty marker starts at the beginning).
  absl::StatusOr<BlobListPage> ListPage(absl::string_view prefix, absl::string_view marker,
                                        int max_results = 0);
  // Every blob under `prefix`, following NextMarker until the last page.
  absl::StatusOr<std::vector<BlobInfo>> List(absl::string_view prefix);

  // Get Blob Properties. NotFound when there is no such blob.
  absl::StatusOr<BlobInfo> GetProperties(absl::string_view name);

  // Reads bytes [offset, offset + length) and hands them to `sink` in order, as they arrive.
  // A dropped connection is resumed from the first byte not yet delivered. When `if_match` is
  // set the read fails with FailedPrecondition if the blob changed (its ETag differs). An error
  // returned by `sink` stops the read and is returned.
  using Sink = std::function<absl::Status(const char* data, size_t size)>;
  absl::Status GetRange(absl::string_view name, int64_t offset, int64_t length, const Sink& sink,
                        absl::string_view if_match = "");
  // The whole blob as a string (small blobs, tests).
  absl::StatusOr<std::string> GetBlob(absl::string_view name);

  // Put Blob: the whole content in one request. `content_md5` (base64, may be empty) is stored as
  // the blob's Content-MD5.
  absl::Status PutBlob(absl::string_view name, absl::string_view data,
                       absl::string_view content_md5 = "");
  // Put Block: one uncommitted block. `block_id` is the raw id (base64-encoded here); every id of
  // one blob must have the same length.
  absl::Status PutBlock(absl::string_view name, absl::string_view block_id, absl::string_view data);
  // Put Block List: commits the blocks in order; `content_md5` as for PutBlob.
  absl::Status PutBlockList(absl::string_view name, const std::vector<std::string>& block_ids,
                            absl::string_view content_md5 = "");

  absl::Status DeleteBlob(absl::string_view name);

  struct Request;   // defined in blob_client.cc
  struct Response;  // defined in blob_client.cc

 private:
  BlobClient(BlobAccount account, BlobClientOptions options, std::string endpoint,
             std::string decoded_key);
  absl::StatusOr<Response> Perform(const Request& request);
  absl::StatusOr<Response> PerformOnce(const Request& request, void* handle, int64_t* delivered);
  void* AcquireHandle();
  void ReleaseHandle(void* handle);
  absl::Duration Backoff(int attempt);

  BlobAccount account_;
  BlobClientOptions options_;
  std::string endpoint_;     // no trailing '/'
  std::string decoded_key_;  // raw Shared Key bytes
  struct Pool;
  std::unique_ptr<Pool> pool_;
};

// Helpers shared with the transfer code and the tests.
namespace blob_internal {
// Percent-encodes a blob name for a URL path ('/' kept).
std::string EncodeBlobName(absl::string_view name);
// Base64 MD5 of `data`.
std::string Md5Base64(absl::string_view data);
// Parses a List Blobs XML body.
absl::StatusOr<BlobListPage> ParseListBlobs(absl::string_view xml);
// The Shared Key signature string of a request (exposed for a unit test).
std::string StringToSign(absl::string_view method,
                         const std::vector<std::pair<std::string, std::string>>& headers,
                         absl::string_view canonical_resource);
}  // namespace blob_internal

}  // namespace kubetrain::storage

#endif  // KUBETRAIN_STORAGE_BLOB_CLIENT_H_
