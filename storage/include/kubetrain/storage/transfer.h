// Moving data between Azure Blob and local files: what the `download` and `upload` modes do.
//
// Download: every blob is split into chunks fetched by `parallelism` threads at once with ranged
// GETs (across files too, so 200 small files and one large one keep every thread busy). Each file
// is written to "<dest>.kubetrain-part" with a sidecar "<dest>.kubetrain-part.state" recording the
// blob's ETag, size and finished chunks; a download that is interrupted and started again fetches
// only the missing chunks (when the blob's ETag is unchanged), and a file already complete at
// <dest> (same size and, where the blob has one, same MD5) is not fetched again. A finished file
// is verified — against the blob's Content-MD5 where present, else its size — and only then
// renamed into place; a mismatch is DataLoss naming the blob, and its partial file is removed.
// Blob names become local paths only through CleanRelativePath: a blob that would land outside the
// destination is an error naming it.
//
// Upload: files up to `single_put_limit` go in one Put Blob; larger ones as `chunk_size` blocks
// uploaded in parallel and committed with Put Block List. Every blob gets its Content-MD5.
//
// Local copies (a local datastore in `download` or `upload` mode) follow the same path rules
// (ListTreeInside: a symlink out of the tree is an error).
//
// Progress: with `progress_bar`, a bar on stderr (redrawn at most 4 times a second).
// Thread-safety: each call is independent; the BlobClient is shared by the call's threads.
#ifndef KUBETRAIN_STORAGE_TRANSFER_H_
#define KUBETRAIN_STORAGE_TRANSFER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kubetrain/storage/blob_client.h"

namespace kubetrain::storage {

struct TransferOptions {
  int parallelism = 8;                  // concurrent requests
  int64_t chunk_size = 8 << 20;         // ranged GET / block size
  int64_t single_put_limit = 16 << 20;  // larger files are uploaded as blocks
  bool progress_bar = false;            // draw a progress bar on stderr
  // Verify downloads against the blob's Content-MD5 where it has one (else by size only). The MD5
  // is computed while the download runs, but costs ~1 s of CPU per GiB.
  bool verify_md5 = true;
  // When set and it returns true, the transfer stops soon (between chunks, and as bytes arrive)
  // with Cancelled; a download's partial files stay for a later resume. Called from many threads.
  std::function<bool()> canceled;
  std::string label;  // shown before the bar ("input data")
};

struct TransferStats {
  int64_t files = 0;          // files transferred (or verified already present)
  int64_t bytes = 0;          // bytes of those files
  int64_t bytes_fetched = 0;  // bytes that actually crossed the network this time
  absl::Duration duration;
};

// One blob to fetch to a local file.
struct BlobDownload {
  BlobInfo blob;     // name, size, content_md5, etag (as listed)
  std::string dest;  // local file path
};

absl::StatusOr<TransferStats> DownloadBlobs(BlobClient& client, std::vector<BlobDownload> items,
                                            const TransferOptions& options);

// A uri_file (one blob `blob_path` → file `dest`) or a uri_folder (every blob under
// `blob_path` + "/" → the same relative paths under folder `dest`; NotFound when there is none).
absl::StatusOr<TransferStats> DownloadBlobPath(BlobClient& client, const std::string& blob_path,
                                               bool is_file, const std::string& dest,
                                               const TransferOptions& options);

// A file (`local` → blob `blob_path`) or a folder (every file under `local` → blob_path/<rel>).
absl::StatusOr<TransferStats> UploadPath(BlobClient& client, const std::string& local, bool is_file,
                                         const std::string& blob_path,
                                         const TransferOptions& options);

// Copies a local file or folder tree to `dest` (created), refusing symlinks out of the tree.
absl::StatusOr<TransferStats> CopyLocalPath(const std::string& src, bool is_file,
                                            const std::string& dest,
                                            const TransferOptions& options);

}  // namespace kubetrain::storage

#endif  // KUBETRAIN_STORAGE_TRANSFER_H_
