// Parallel, resumable, verified blob downloads and block uploads (see transfer.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "blob/shared_key.h"
#include "data/progress.h"
#include "kubetrain/storage/path_safety.h"
#include "kubetrain/storage/transfer.h"

namespace kubetrain::storage {
namespace fs = std::filesystem;
namespace {

constexpr char kPartSuffix[] = ".kubetrain-part";
constexpr char kStateSuffix[] = ".kubetrain-part.state";

// Runs fn(0..n-1) on up to `parallelism` threads; stops handing out work at the first error.
absl::Status RunParallel(size_t n, const TransferOptions& options,
                         const std::function<absl::Status(size_t)>& fn) {
  const int parallelism = options.parallelism;
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  absl::Status first;
  auto work = [&] {
    while (!failed.load()) {
      size_t i = next.fetch_add(1);
      if (i >= n) return;
      absl::Status s = options.canceled && options.canceled()
                           ? absl::CancelledError("the transfer was canceled")
                           : fn(i);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = s;
        failed = true;
      }
    }
  };
  int threads =
      static_cast<int>(std::min<size_t>(n, static_cast<size_t>(std::max(1, parallelism))));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  if (threads > 0) work();
  for (std::thread& t : pool) t.join();
  return first;
}

absl::StatusOr<std::string> FileMd5(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot read ", path, ": ", strerror(errno)));
  shared_key::Md5Stream md5;
  std::vector<char> buf(4 << 20);
  while (true) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0) {
      close(fd);
      return absl::InternalError(absl::StrCat("cannot read ", path, ": ", strerror(errno)));
    }
    if (n == 0) break;
    md5.Update(buf.data(), static_cast<size_t>(n));
  }
  close(fd);
  return absl::Base64Escape(md5.Finish());
}

absl::Status MakeParent(const std::string& path) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create the folder of ", path, ": ", ec.message()));
  }
  return absl::OkStatus();
}

struct FileJob {
  BlobDownload item;
  std::string part, state;
  int fd = -1;
  int64_t chunks = 0;
  int64_t chunk_size = 0;
  std::atomic<int64_t> remaining{0};
  std::mutex mu;  // the state file and the fields below
  // The MD5 is computed while the download runs: whichever thread completes the chunk at the
  // front of the finished prefix hashes forward (from the page cache), one thread at a time.
  std::vector<bool> complete;
  int64_t next_hash = 0;
  bool hashing = false;
  shared_key::Md5Stream md5;
  absl::Status hash_error;
};

// Marks chunk `index` finished and, if this thread is the one to do it, hashes the finished
// prefix of the file forward.
void ChunkFinished(FileJob& f, int64_t index) {
  {
    std::lock_guard<std::mutex> lock(f.mu);
    f.complete[static_cast<size_t>(index)] = true;
    if (f.hashing || f.item.blob.content_md5.empty()) return;
    f.hashing = true;
  }
  std::vector<char> buf;
  while (true) {
    int64_t next;
    {
      std::lock_guard<std::mutex> lock(f.mu);
      if (f.next_hash >= f.chunks || !f.complete[static_cast<size_t>(f.next_hash)] ||
          !f.hash_error.ok()) {
        f.hashing = false;
        return;
      }
      next = f.next_hash;
    }
    const int64_t offset = next * f.chunk_size;
    const int64_t length = std::min(f.chunk_size, f.item.blob.size - offset);
    buf.resize(static_cast<size_t>(length));
    int64_t got = 0;
    while (got < length) {
      ssize_t n = pread(f.fd, buf.data() + got, static_cast<size_t>(length - got), offset + got);
      if (n <= 0) break;
      got += n;
    }
    std::lock_guard<std::mutex> lock(f.mu);
    if (got != length) {
      f.hash_error = absl::InternalError(absl::StrCat("cannot read back ", f.part));
    } else {
      f.md5.Update(buf.data(), buf.size());
    }
    f.next_hash++;
  }
}

// Reads a sidecar: "etag size chunk_size" then one finished chunk index per line.
std::vector<bool> ReadState(const FileJob& f, int64_t chunk_size) {
  std::vector<bool> done(static_cast<size_t>(f.chunks), false);
  std::ifstream in(f.state);
  std::string etag;
  int64_t size = -1, cs = -1;
  if (!(in >> etag >> size >> cs)) return done;
  std::error_code ec;
  if (etag != f.item.blob.etag || size != f.item.blob.size || cs != chunk_size ||
      static_cast<int64_t>(fs::file_size(f.part, ec)) != size || ec) {
    return done;
  }
  int64_t idx;
  while (in >> idx) {
    if (idx >= 0 && idx < f.chunks) done[static_cast<size_t>(idx)] = true;
  }
  return done;
}

absl::Status Finalize(FileJob& f) {
  if (f.fd >= 0) {
    close(f.fd);
    f.fd = -1;
  }
  const std::string& name = f.item.blob.name;
  std::error_code ec;
  int64_t size = static_cast<int64_t>(fs::file_size(f.part, ec));
  if (ec || size != f.item.blob.size) {
    fs::remove(f.part, ec);
    fs::remove(f.state, ec);
    return absl::DataLossError(absl::StrCat("blob '", name, "': downloaded ", size,
                                            " bytes, the blob has ", f.item.blob.size));
  }
  if (!f.item.blob.content_md5.empty()) {
    absl::StatusOr<std::string> md5 =
        f.next_hash == f.chunks && f.hash_error.ok() && f.chunks > 0
            ? absl::StatusOr<std::string>(absl::Base64Escape(f.md5.Finish()))
            : FileMd5(f.part);
    if (!md5.ok()) return md5.status();
    if (*md5 != f.item.blob.content_md5) {
      fs::remove(f.part, ec);
      fs::remove(f.state, ec);
      return absl::DataLossError(absl::StrCat("blob '", name, "': the downloaded bytes have MD5 ",
                                              *md5, ", the blob's Content-MD5 is ",
                                              f.item.blob.content_md5, "; download it again"));
    }
  }
  fs::rename(f.part, f.item.dest, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot move ", f.part, " to ", f.item.dest, ": ", ec.message()));
  }
  fs::remove(f.state, ec);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TransferStats> DownloadBlobs(BlobClient& client, std::vector<BlobDownload> items,
                                            const TransferOptions& options) {
  const absl::Time start = absl::Now();
  const int64_t chunk = std::max<int64_t>(options.chunk_size, 64 << 10);
  TransferStats stats;
  std::vector<std::unique_ptr<FileJob>> jobs;
  struct Task {
    FileJob* f;
    int64_t index;
  };
  std::vector<Task> tasks;
  int64_t to_fetch = 0;
  for (BlobDownload& item : items) {
    if (!options.verify_md5) item.blob.content_md5.clear();
    stats.files++;
    stats.bytes += item.blob.size;
    if (absl::Status s = MakeParent(item.dest); !s.ok()) return s;
    std::error_code ec;
    auto f = std::make_unique<FileJob>();
    f->item = std::move(item);
    f->part = f->item.dest + kPartSuffix;
    f->state = f->item.dest + kStateSuffix;
    // assign(), not = "-": GCC 12 reports a false -Wrestrict positive for the latter.
    if (f->item.blob.etag.empty()) f->item.blob.etag.assign(1, '-');
    if (fs::is_regular_file(f->item.dest, ec) && !fs::exists(f->state, ec) &&
        static_cast<int64_t>(fs::file_size(f->item.dest, ec)) == f->item.blob.size) {
      bool same = f->item.blob.content_md5.empty();
      if (!same) {
        absl::StatusOr<std::string> md5 = FileMd5(f->item.dest);
        same = md5.ok() && *md5 == f->item.blob.content_md5;
      }
      if (same) continue;  // already complete
    }
    f->chunks = (f->item.blob.size + chunk - 1) / chunk;
    f->chunk_size = chunk;
    f->complete.assign(static_cast<size_t>(f->chunks), false);
    std::vector<bool> done = ReadState(*f, chunk);
    f->complete = done;
    const bool resuming = std::any_of(done.begin(), done.end(), [](bool b) { return b; });
    f->fd = open(f->part.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | (resuming ? 0 : O_TRUNC), 0644);
    if (f->fd < 0) {
      return absl::InternalError(absl::StrCat("cannot write ", f->part, ": ", strerror(errno)));
    }
    if (!resuming) {
      if (ftruncate(f->fd, f->item.blob.size) != 0) {
        return absl::InternalError(absl::StrCat("cannot size ", f->part, ": ", strerror(errno)));
      }
      std::ofstream st(f->state, std::ios::trunc);
      st << f->item.blob.etag << " " << f->item.blob.size << " " << chunk << "\n";
    }
    int64_t remaining = 0;
    for (int64_t i = 0; i < f->chunks; ++i) {
      if (done[static_cast<size_t>(i)]) continue;
      tasks.push_back({f.get(), i});
      remaining++;
      to_fetch += std::min(chunk, f->item.blob.size - i * chunk);
    }
    f->remaining = remaining;
    if (remaining == 0) {
      if (absl::Status s = Finalize(*f); !s.ok()) return s;
      continue;
    }
    jobs.push_back(std::move(f));
  }
  data_internal::ProgressBar bar(options.progress_bar && to_fetch > 0,
                                 options.label.empty() ? "download" : options.label, to_fetch);
  std::atomic<int64_t> fetched{0};
  absl::Status s = RunParallel(tasks.size(), options, [&](size_t t) -> absl::Status {
    FileJob& f = *tasks[t].f;
    const int64_t offset = tasks[t].index * chunk;
    const int64_t length = std::min(chunk, f.item.blob.size - offset);
    int64_t written = 0;
    absl::Status got = client.GetRange(
        f.item.blob.name, offset, length,
        [&](const char* data, size_t n) -> absl::Status {
          if (options.canceled && options.canceled()) {
            return absl::CancelledError("the transfer was canceled");
          }
          size_t off = 0;
          while (off < n) {
            ssize_t w =
                pwrite(f.fd, data + off, n - off, offset + written + static_cast<int64_t>(off));
            if (w < 0) {
              return absl::InternalError(
                  absl::StrCat("cannot write ", f.part, ": ", strerror(errno)));
            }
            off += static_cast<size_t>(w);
          }
          written += static_cast<int64_t>(n);
          fetched += static_cast<int64_t>(n);
          bar.Add(static_cast<int64_t>(n));
          return absl::OkStatus();
        },
        f.item.blob.etag == "-" ? "" : f.item.blob.etag);
    if (!got.ok()) return got;
    {
      std::lock_guard<std::mutex> lock(f.mu);
      std::ofstream st(f.state, std::ios::app);
      st << tasks[t].index << "\n";
    }
    ChunkFinished(f, tasks[t].index);
    if (f.remaining.fetch_sub(1) == 1) {
      // The last chunk: wait for a hashing thread still working on the prefix.
      while (true) {
        {
          std::lock_guard<std::mutex> lock(f.mu);
          if (!f.hashing) break;
        }
        std::this_thread::yield();
      }
      ChunkFinished(f, tasks[t].index);
      return Finalize(f);
    }
    return absl::OkStatus();
  });
  for (auto& f : jobs) {
    if (f->fd >= 0) close(f->fd);
  }
  if (!s.ok()) return s;
  stats.bytes_fetched = fetched.load();
  stats.duration = absl::Now() - start;
  return stats;
}

absl::StatusOr<TransferStats> DownloadBlobPath(BlobClient& client, const std::string& blob_path,
                                               bool is_file, const std::string& dest,
                                               const TransferOptions& options) {
  std::vector<BlobDownload> items;
  if (is_file) {
    absl::StatusOr<BlobInfo> info = client.GetProperties(blob_path);
    if (!info.ok()) return info.status();
    items.push_back({*info, dest});
  } else {
    const std::string prefix = blob_path.empty() ? "" : blob_path + "/";
    absl::StatusOr<std::vector<BlobInfo>> blobs = client.List(prefix);
    if (!blobs.ok()) return blobs.status();
    for (BlobInfo& b : *blobs) {
      absl::string_view rel = b.name;
      rel.remove_prefix(prefix.size());
      if (absl::EndsWith(rel, "/") && b.size == 0) continue;  // a folder marker
      absl::StatusOr<std::string> local =
          JoinInside(dest, rel, absl::StrCat("blob '", b.name, "' in ", client.Describe()));
      if (!local.ok()) return local.status();
      if (*local == dest) continue;
      items.push_back({std::move(b), *local});
    }
    if (items.empty()) {
      return absl::NotFoundError(absl::StrCat("no blobs under '", prefix, "' in ",
                                              client.Describe(), " (", client.BlobUrl(blob_path),
                                              ")"));
    }
    std::error_code ec;
    fs::create_directories(dest, ec);
  }
  return DownloadBlobs(client, std::move(items), options);
}

absl::StatusOr<TransferStats> UploadPath(BlobClient& client, const std::string& local, bool is_file,
                                         const std::string& blob_path,
                                         const TransferOptions& options) {
  const absl::Time start = absl::Now();
  std::vector<LocalFile> files;
  if (is_file) {
    std::error_code ec;
    if (!fs::is_regular_file(local, ec)) {
      return absl::NotFoundError(absl::StrCat("no file ", local, " to upload"));
    }
    files.push_back({fs::path(local).filename().string(), local,
                     static_cast<int64_t>(fs::file_size(local, ec))});
  } else {
    absl::StatusOr<std::vector<LocalFile>> listed =
        ListTreeInside(local, absl::StrCat("upload of ", local));
    if (!listed.ok()) return listed.status();
    files = std::move(*listed);
  }
  struct Piece {
    size_t file;
    int64_t block;  // -1: the whole file in one Put Blob
  };
  struct FileState {
    std::vector<std::string> ids;
    std::atomic<int64_t> remaining{0};
  };
  std::vector<FileState> state(files.size());
  std::vector<Piece> pieces;
  TransferStats stats;
  const int64_t chunk = std::max<int64_t>(options.chunk_size, 64 << 10);
  std::vector<std::string> names(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    if (is_file) {
      names[i] = blob_path;
    } else {
      names[i] =
          blob_path.empty() ? files[i].relative : absl::StrCat(blob_path, "/", files[i].relative);
    }
    stats.files++;
    stats.bytes += files[i].size;
    if (files[i].size <= options.single_put_limit) {
      pieces.push_back({i, -1});
      continue;
    }
    int64_t blocks = (files[i].size + chunk - 1) / chunk;
    state[i].remaining = blocks;
    for (int64_t b = 0; b < blocks; ++b) {
      state[i].ids.push_back(absl::StrFormat("kubetrain-block-%08d", b));
      pieces.push_back({i, b});
    }
  }
  data_internal::ProgressBar bar(options.progress_bar && stats.bytes > 0,
                                 options.label.empty() ? "upload" : options.label, stats.bytes);
  absl::Status s = RunParallel(pieces.size(), options, [&](size_t p) -> absl::Status {
    const LocalFile& f = files[pieces[p].file];
    const int64_t offset = pieces[p].block < 0 ? 0 : pieces[p].block * chunk;
    const int64_t length = pieces[p].block < 0 ? f.size : std::min(chunk, f.size - offset);
    std::string buf(static_cast<size_t>(length), '\0');
    int fd = open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return absl::InternalError(absl::StrCat("cannot read ", f.path, ": ", strerror(errno)));
    int64_t got = 0;
    while (got < length) {
      ssize_t n = pread(fd, buf.data() + got, static_cast<size_t>(length - got), offset + got);
      if (n <= 0) break;
      got += n;
    }
    close(fd);
    if (got != length) {
      return absl::DataLossError(absl::StrCat(f.path, " changed while it was being uploaded"));
    }
    const std::string& name = names[pieces[p].file];
    if (pieces[p].block < 0) {
      absl::Status put = client.PutBlob(name, buf, blob_internal::Md5Base64(buf));
      if (put.ok()) bar.Add(length);
      return put;
    }
    FileState& st = state[pieces[p].file];
    absl::Status put = client.PutBlock(name, st.ids[static_cast<size_t>(pieces[p].block)], buf);
    if (!put.ok()) return put;
    bar.Add(length);
    if (st.remaining.fetch_sub(1) != 1) return absl::OkStatus();
    absl::StatusOr<std::string> md5 = FileMd5(f.path);
    if (!md5.ok()) return md5.status();
    return client.PutBlockList(name, st.ids, *md5);
  });
  if (!s.ok()) return s;
  stats.bytes_fetched = stats.bytes;
  stats.duration = absl::Now() - start;
  return stats;
}

}  // namespace kubetrain::storage
