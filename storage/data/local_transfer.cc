// Local copies for the download / upload modes of local datastores (see transfer.h).
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "data/progress.h"
#include "kubetrain/storage/path_safety.h"
#include "kubetrain/storage/transfer.h"

namespace kubetrain::storage {
namespace fs = std::filesystem;

absl::StatusOr<TransferStats> CopyLocalPath(const std::string& src, bool is_file,
                                            const std::string& dest,
                                            const TransferOptions& options) {
  const absl::Time start = absl::Now();
  std::vector<LocalFile> files;
  std::error_code ec;
  if (is_file) {
    if (!fs::is_regular_file(src, ec)) return absl::NotFoundError(absl::StrCat("no file ", src));
    files.push_back({"", src, static_cast<int64_t>(fs::file_size(src, ec))});
  } else {
    absl::StatusOr<std::vector<LocalFile>> listed =
        ListTreeInside(src, absl::StrCat("copy of ", src));
    if (!listed.ok()) return listed.status();
    files = std::move(*listed);
    fs::create_directories(dest, ec);
  }
  TransferStats stats;
  for (const LocalFile& f : files) stats.bytes += f.size;
  data_internal::ProgressBar bar(options.progress_bar && stats.bytes > 0,
                                 options.label.empty() ? "copy" : options.label, stats.bytes);
  for (const LocalFile& f : files) {
    if (options.canceled && options.canceled()) {
      return absl::CancelledError("the copy was canceled");
    }
    fs::path to = f.relative.empty() ? fs::path(dest) : fs::path(dest) / f.relative;
    fs::create_directories(to.parent_path(), ec);
    fs::copy_file(f.path, to, fs::copy_options::overwrite_existing, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("cannot copy ", f.path, " to ", to.string(), ": ", ec.message()));
    }
    bar.Add(f.size);
    stats.files++;
  }
  stats.bytes_fetched = stats.bytes;
  stats.duration = absl::Now() - start;
  return stats;
}

}  // namespace kubetrain::storage
