#include "kubetrain/storage/data_stage.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kubetrain/storage/path_safety.h"

namespace kubetrain::storage {
namespace fs = std::filesystem;
namespace {

absl::Status Named(const absl::Status& s, absl::string_view what) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

absl::StatusOr<DataLocation> Locate(const std::string& path, const StageOptions& options) {
  absl::StatusOr<DataUri> uri = ParseDataUri(path);
  if (!uri.ok()) return uri.status();
  return ResolveData(*uri, options.datastores);
}

// The mode a view is for, as errors and warnings name it.
absl::string_view ViewLabel(ViewKind kind) {
  return kind == ViewKind::kReadOnly ? "ro_mount" : "rw_mount";
}

// The default view where StageOptions has none: a symlink.
absl::StatusOr<std::string> DefaultView(const std::string& source, const std::string& target,
                                        ViewKind kind) {
  absl::StatusOr<bool> prepared = PrepareViewTarget(source, target, kind);
  if (!prepared.ok()) return prepared.status();
  return SymlinkView(source, target, kind, "this process has no mount namespace of its own");
}

std::string Describe(const TransferStats& s) {
  return absl::StrCat(s.files, " file", s.files == 1 ? "" : "s", ", ", s.bytes, " bytes in ",
                      absl::FormatDuration(absl::Trunc(s.duration, absl::Milliseconds(1))));
}

}  // namespace

bool InputNeedsStaging(const v1::JobInput& input) {
  return input.type() != v1::DATA_TYPE_LITERAL && input.mode() != v1::DATA_MODE_DIRECT &&
         !input.path().empty();
}

bool OutputNeedsPublish(const v1::JobOutput& output) {
  if (output.path().empty() || output.mode() == v1::DATA_MODE_DIRECT) return false;
  return IsRemoteDataUri(output.path()) || output.mode() == v1::DATA_MODE_UPLOAD;
}

absl::StatusOr<StageResult> StageInput(const std::string& name, const v1::JobInput& input,
                                       const std::string& target, const StageOptions& options) {
  const std::string what = absl::StrCat("input '", name, "' (", RedactDataUri(input.path()), ")");
  StageResult result;
  if (!InputNeedsStaging(input)) {
    result.local_path = input.type() == v1::DATA_TYPE_LITERAL ? input.literal() : input.path();
    result.how = "passed as written";
    return result;
  }
  const v1::DataMode mode =
      input.mode() == v1::DATA_MODE_UNSPECIFIED ? v1::DATA_MODE_RO_MOUNT : input.mode();
  if (mode != v1::DATA_MODE_RO_MOUNT && mode != v1::DATA_MODE_DOWNLOAD &&
      mode != v1::DATA_MODE_RW_MOUNT) {
    return absl::InvalidArgumentError(
        absl::StrCat(what,
                     ": this mode cannot be used for an input; use ro_mount, rw_mount, "
                     "download or direct"));
  }
  const bool is_file = input.type() == v1::DATA_TYPE_URI_FILE;
  absl::StatusOr<DataLocation> loc = Locate(input.path(), options);
  if (!loc.ok()) return Named(loc.status(), what);
  TransferOptions topts = options.transfer;
  topts.label = absl::StrCat("input ", name);
  result.local_path = target;
  std::error_code ec;
  fs::create_directories(fs::path(target).parent_path(), ec);

  std::string view_source;
  if (!loc->is_blob) {
    const std::string& src = loc->local_path;
    if (!fs::exists(src, ec)) {
      return absl::NotFoundError(absl::StrCat(what, ": ", src, " does not exist"));
    }
    if (is_file != !fs::is_directory(src, ec)) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": ", src,
                                                     is_file
                                                         ? " is a folder but the input is uri_file"
                                                         : " is a file but the input is uri_folder",
                                                     "; fix `type:`"));
    }
    if (!is_file) {
      // A symlink out of the folder would let the job read outside what it was given.
      absl::StatusOr<std::vector<LocalFile>> files = ListTreeInside(src, what);
      if (!files.ok()) return files.status();
    }
    if (mode == v1::DATA_MODE_RW_MOUNT) {
      // A writable view of the data itself: writes reach it.
      absl::StatusOr<std::string> w = options.writable_view
                                          ? options.writable_view(src, target)
                                          : DefaultView(src, target, ViewKind::kWritable);
      if (!w.ok()) return Named(w.status(), what);
      result.how = absl::StrCat(*w, " of ", src, " (writable)");
      return result;
    }
    if (mode == v1::DATA_MODE_DOWNLOAD) {
      absl::StatusOr<TransferStats> s = CopyLocalPath(src, is_file, target, topts);
      if (!s.ok()) return Named(s.status(), what);
      result.stats = *s;
      result.how = absl::StrCat("copied from ", src, ": ", Describe(*s));
      return result;
    }
    view_source = src;
  } else {
    if (is_file && loc->blob_path.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": a uri_file input must name a blob, not a container"));
    }
    absl::StatusOr<std::unique_ptr<BlobClient>> client =
        BlobClient::Create(loc->account, options.blob);
    if (!client.ok()) return Named(client.status(), what);
    const bool copy = mode == v1::DATA_MODE_DOWNLOAD || mode == v1::DATA_MODE_RW_MOUNT;
    const std::string dest = copy ? target : target + ".cache";
    absl::StatusOr<TransferStats> s =
        DownloadBlobPath(**client, loc->blob_path, is_file, dest, topts);
    if (!s.ok()) return Named(s.status(), what);
    result.stats = *s;
    result.how =
        absl::StrCat("downloaded ", Describe(*s), " (", s->bytes_fetched, " bytes fetched)");
    if (mode == v1::DATA_MODE_RW_MOUNT) {
      result.warnings.push_back(absl::StrCat(
          what,
          ": rw_mount of blob data is a downloaded, writable copy (there is no blob mount "
          "here); changes to it are not written back — write results to an output"));
    }
    if (copy) return result;
    view_source = dest;
  }
  absl::StatusOr<std::string> warning = options.read_only_view
                                            ? options.read_only_view(view_source, target)
                                            : DefaultView(view_source, target, ViewKind::kReadOnly);
  if (!warning.ok()) return Named(warning.status(), what);
  if (!warning->empty()) {
    result.warnings.push_back(absl::StrCat(what, ": ", *warning));
    absl::StrAppend(&result.how, result.how.empty() ? "" : "; ", "symlink to ", view_source);
  } else {
    absl::StrAppend(&result.how, result.how.empty() ? "" : "; ", "read-only bind mount of ",
                    view_source);
  }
  return result;
}

absl::StatusOr<bool> PrepareViewTarget(const std::string& source, const std::string& target,
                                       ViewKind kind) {
  std::error_code ec;
  if (!fs::exists(source, ec)) {
    return absl::NotFoundError(absl::StrCat(ViewLabel(kind), ": ", source, " does not exist"));
  }
  const bool is_dir = fs::is_directory(source, ec);
  fs::create_directories(fs::path(target).parent_path(), ec);
  if (fs::is_symlink(target, ec) || (fs::exists(target, ec) && !fs::is_directory(target, ec))) {
    fs::remove(target, ec);
  } else if (fs::is_directory(target, ec)) {
    fs::remove(target, ec);  // only an empty folder goes; anything else is reported below
  }
  if (kind == ViewKind::kReadOnly && (fs::exists(target, ec) || fs::is_symlink(target, ec))) {
    return absl::FailedPreconditionError(
        absl::StrCat(ViewLabel(kind), ": ", target,
                     " already exists and is not empty; remove it and try again"));
  }
  return is_dir;
}

absl::StatusOr<std::string> SymlinkView(const std::string& source, const std::string& target,
                                        ViewKind kind, absl::string_view why) {
  if (symlink(source.c_str(), target.c_str()) != 0) {
    return absl::InternalError(absl::StrCat(ViewLabel(kind), ": cannot link ", target, " to ",
                                            source, ": ", std::strerror(errno)));
  }
  if (kind == ViewKind::kWritable) return std::string("symlink");
  return absl::StrCat("ro_mount: a read-only bind mount is not possible here (", why, "); ", target,
                      " is a symlink to ", source,
                      ", which the job can write to — treat it as read-only");
}

absl::StatusOr<PublishResult> PublishOutput(const std::string& name, const v1::JobOutput& output,
                                            const std::string& local, const StageOptions& options) {
  const std::string what = absl::StrCat("output '", name, "' (", RedactDataUri(output.path()), ")");
  PublishResult result;
  result.destination = RedactDataUri(output.path());
  if (!OutputNeedsPublish(output)) return result;
  const bool is_file = output.type() == v1::DATA_TYPE_URI_FILE;
  std::error_code ec;
  if (!fs::exists(local, ec)) {
    if (!is_file) return result;  // the job wrote nothing: nothing to publish
    return absl::NotFoundError(
        absl::StrCat(what, ": the job wrote no file at ", local, ", so nothing was uploaded"));
  }
  absl::StatusOr<DataLocation> loc = Locate(output.path(), options);
  if (!loc.ok()) return Named(loc.status(), what);
  TransferOptions topts = options.transfer;
  topts.label = absl::StrCat("output ", name);
  if (!loc->is_blob) {
    if (fs::equivalent(local, loc->local_path, ec)) return result;
    absl::StatusOr<TransferStats> s = CopyLocalPath(local, is_file, loc->local_path, topts);
    if (!s.ok()) return Named(s.status(), what);
    result.stats = *s;
    return result;
  }
  if (is_file && loc->blob_path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": a uri_file output must name a blob, not a container"));
  }
  absl::StatusOr<std::unique_ptr<BlobClient>> client =
      BlobClient::Create(loc->account, options.blob);
  if (!client.ok()) return Named(client.status(), what);
  absl::StatusOr<TransferStats> s = UploadPath(**client, local, is_file, loc->blob_path, topts);
  if (!s.ok()) return Named(s.status(), what);
  result.stats = *s;
  return result;
}

}  // namespace kubetrain::storage
