// Cryptographic helpers of the Azure Blob client (OpenSSL libcrypto): HMAC-SHA256 for Shared Key
// signatures and MD5 for Content-MD5. Raw bytes in, raw bytes out. Thread-safe (no state).
#ifndef KUBETRAIN_STORAGE_BLOB_SHARED_KEY_H_
#define KUBETRAIN_STORAGE_BLOB_SHARED_KEY_H_

#include <string>

#include "absl/strings/string_view.h"

namespace kubetrain::storage::shared_key {

std::string HmacSha256(absl::string_view key, absl::string_view data);
std::string Md5(absl::string_view data);

// Incremental MD5 for files read in pieces. Not thread-safe; one per file.
class Md5Stream {
 public:
  Md5Stream();
  ~Md5Stream();
  Md5Stream(const Md5Stream&) = delete;
  Md5Stream& operator=(const Md5Stream&) = delete;
  void Update(const void* data, size_t size);
  std::string Finish();  // raw 16 bytes

 private:
  void* ctx_;
};

}  // namespace kubetrain::storage::shared_key

#endif  // KUBETRAIN_STORAGE_BLOB_SHARED_KEY_H_
