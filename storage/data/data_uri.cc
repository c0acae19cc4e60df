#include "kubetrain/storage/data_uri.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "kubetrain/storage/path_safety.h"

namespace kubetrain::storage {
namespace {

absl::StatusOr<std::string> PercentDecode(absl::string_view s, absl::string_view uri) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    int v = 0;
    if (i + 2 >= s.size() || !absl::SimpleHexAtoi(s.substr(i + 1, 2), &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("data path '", RedactDataUri(uri), "': bad percent-encoding"));
    }
    out.push_back(static_cast<char>(v));
    i += 2;
  }
  return out;
}

absl::Status Bad(absl::string_view uri, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("data path '", RedactDataUri(uri), "': ", why,
                   "; use a local path, file://, azureml://datastores/<name>/paths/<path>, "
                   "https://<account>.blob.core.windows.net/<container>/<path> or "
                   "wasbs://<container>@<account>.blob.core.windows.net/<path>"));
}

}  // namespace

std::string RedactDataUri(absl::string_view uri) {
  size_t q = uri.find('?');
  if (q == absl::string_view::npos || !absl::StrContains(uri.substr(0, q), "://")) {
    return std::string(uri);
  }
  return absl::StrCat(uri.substr(0, q), "?<redacted>");
}

bool IsRemoteDataUri(absl::string_view uri) {
  return (absl::StrContains(uri, "://") && !absl::StartsWith(uri, "file://")) ||
         absl::StartsWith(uri, "azureml:");
}

absl::StatusOr<DataUri> ParseDataUri(absl::string_view uri) {
  DataUri out;
  out.original = RedactDataUri(uri);
  const std::string what = absl::StrCat("data path '", out.original, "'");
  absl::string_view rest = uri;
  if (absl::ConsumePrefix(&rest, "file://") || !absl::StrContains(uri, ":")) {
    if (!absl::StartsWith(rest, "/")) return Bad(uri, "a local path must be absolute here");
    out.kind = DataUri::Kind::kLocal;
    out.local_path = std::string(rest);
    while (out.local_path.size() > 1 && absl::EndsWith(out.local_path, "/"))
      out.local_path.pop_back();
    return out;
  }
  if (absl::ConsumePrefix(&rest, "azureml://")) {
    size_t at = rest.find("datastores/");
    if (at == absl::string_view::npos || (at != 0 && rest[at - 1] != '/')) {
      return Bad(
          uri,
          "an azureml:// URI must name a datastore (azureml://datastores/<name>/paths/<path>)");
    }
    rest.remove_prefix(at + sizeof("datastores/") - 1);
    size_t slash = rest.find('/');
    out.datastore = std::string(rest.substr(0, slash));
    if (out.datastore.empty()) return Bad(uri, "the datastore name is empty");
    absl::string_view path = slash == absl::string_view::npos ? "" : rest.substr(slash + 1);
    if (!path.empty() && !absl::ConsumePrefix(&path, "paths/") && path != "paths") {
      return Bad(uri, "expected /paths/ after the datastore name");
    }
    if (path == "paths") path = "";
    absl::StatusOr<std::string> clean = CleanRelativePath(path, what, true);
    if (!clean.ok()) return clean.status();
    out.kind = DataUri::Kind::kDatastore;
    out.path = *clean;
    return out;
  }
  if (absl::StartsWith(uri, "azureml:")) {
    return Bad(uri, "Azure ML data assets (azureml:name:version) are not supported by kubetrain");
  }
  const size_t scheme_end = rest.find("://");
  if (scheme_end == absl::string_view::npos) {
    return Bad(uri, "it is neither an absolute local path nor a URL");
  }
  std::string scheme = absl::AsciiStrToLower(rest.substr(0, scheme_end));
  rest.remove_prefix(scheme_end + 3);
  if (scheme == "wasbs" || scheme == "wasb") {
    size_t at = rest.find('@');
    size_t slash = rest.find('/');
    if (at == absl::string_view::npos || (slash != absl::string_view::npos && slash < at)) {
      return Bad(uri, "expected wasbs://<container>@<account>.blob.core.windows.net/<path>");
    }
    out.container = std::string(rest.substr(0, at));
    absl::string_view host = rest.substr(
        at + 1, slash == absl::string_view::npos ? absl::string_view::npos : slash - at - 1);
    size_t dot = host.find('.');
    out.account = std::string(host.substr(0, dot));
    out.endpoint = absl::StrCat(scheme == "wasbs" ? "https://" : "http://", host);
    absl::StatusOr<std::string> path =
        PercentDecode(slash == absl::string_view::npos ? "" : rest.substr(slash + 1), uri);
    if (!path.ok()) return path.status();
    absl::StatusOr<std::string> clean = CleanRelativePath(*path, what, true);
    if (!clean.ok()) return clean.status();
    out.path = *clean;
  } else if (scheme == "https" || scheme == "http") {
    size_t slash = rest.find('/');
    absl::string_view host = rest.substr(0, slash);
    absl::string_view path = slash == absl::string_view::npos ? "" : rest.substr(slash + 1);
    if (size_t q = path.find('?'); q != absl::string_view::npos) {
      return Bad(uri,
                 "a query string (SAS token) does not belong in a data path: register the "
                 "token with `kubetrain datastore create --sas-token` instead");
    }
    absl::StatusOr<std::string> decoded = PercentDecode(path, uri);
    if (!decoded.ok()) return decoded.status();
    absl::string_view p = *decoded;
    out.endpoint = absl::StrCat(scheme, "://", host);
    if (absl::StrContains(absl::AsciiStrToLower(host), ".blob.")) {
      out.account = std::string(host.substr(0, host.find('.')));
    } else {  // path style: /<account>/<container>/<path>
      out.account = std::string(p.substr(0, p.find('/')));
      p.remove_prefix(std::min(p.size(), out.account.size() + 1));
      absl::StrAppend(&out.endpoint, "/", out.account);
    }
    size_t cslash = p.find('/');
    out.container = std::string(p.substr(0, cslash));
    absl::StatusOr<std::string> clean = CleanRelativePath(
        cslash == absl::string_view::npos ? "" : p.substr(cslash + 1), what, true);
    if (!clean.ok()) return clean.status();
    out.path = *clean;
  } else {
    return Bad(uri, absl::StrCat("the scheme '", scheme, "://' is not supported"));
  }
  if (out.account.empty() || out.container.empty()) {
    return Bad(uri, "the URL must name a storage account and a container");
  }
  out.kind = DataUri::Kind::kBlobUrl;
  return out;
}

absl::StatusOr<DataLocation> ResolveData(const DataUri& uri, const DatastoreResolver& resolver) {
  DataLocation loc;
  auto local_in = [&](const std::string& root, const std::string& display) -> DataLocation {
    DataLocation l;
    l.local_path = uri.path.empty() ? root : absl::StrCat(root, "/", uri.path);
    l.display = display;
    return l;
  };
  switch (uri.kind) {
    case DataUri::Kind::kLocal:
      loc.local_path = uri.local_path;
      loc.display = uri.local_path;
      return loc;
    case DataUri::Kind::kDatastore: {
      absl::StatusOr<DatastoreConfig> ds =
          resolver.get ? resolver.get(uri.datastore)
                       : absl::StatusOr<DatastoreConfig>(absl::NotFoundError("no registry"));
      if (!ds.ok() && absl::IsNotFound(ds.status()) && uri.datastore == "workspaceblobstore" &&
          !resolver.workspace_dir.empty()) {
        return local_in(absl::StrCat(resolver.workspace_dir, "/datastores/workspaceblobstore"),
                        uri.original);
      }
      if (!ds.ok()) {
        if (absl::IsNotFound(ds.status())) {
          return absl::NotFoundError(absl::StrCat(
              "data path '", uri.original, "': no datastore '", uri.datastore,
              "' in the workspace; register it with `kubetrain datastore create ", uri.datastore,
              " --type azureblob|local ...` (see `kubetrain datastore list`)"));
        }
        return ds.status();
      }
      if (ds->type == "local" || (ds->type == "workspaceblobstore" && ds->account_name.empty())) {
        std::string root = ds->path;
        if (root.empty() && ds->type == "workspaceblobstore") {
          root = absl::StrCat(resolver.workspace_dir, "/datastores/workspaceblobstore");
        }
        if (root.empty()) {
          return absl::FailedPreconditionError(
              absl::StrCat("datastore '", ds->name, "' (local) has no path"));
        }
        return local_in(root, uri.original);
      }
      loc.is_blob = true;
      loc.account.account_name = ds->account_name;
      loc.account.container = ds->container_name;
      loc.account.endpoint = ds->endpoint;
      loc.account.account_key = ds->account_key;
      loc.account.sas_token = ds->sas_token;
      loc.blob_path = uri.path;
      loc.display = uri.original;
      return loc;
    }
    case DataUri::Kind::kBlobUrl: {
      loc.is_blob = true;
      loc.account.account_name = uri.account;
      loc.account.container = uri.container;
      loc.account.endpoint = uri.endpoint;
      loc.blob_path = uri.path;
      loc.display = uri.original;
      if (resolver.list) {
        absl::StatusOr<std::vector<DatastoreConfig>> all = resolver.list();
        if (!all.ok()) return all.status();
        const DatastoreConfig* best = nullptr;
        for (const DatastoreConfig& d : *all) {
          if (d.account_name != uri.account) continue;
          if (d.account_key.empty() && d.sas_token.empty() && d.endpoint.empty()) continue;
          if (best == nullptr ||
              (d.container_name == uri.container && best->container_name != uri.container)) {
            best = &d;
          }
        }
        if (best != nullptr) {
          loc.account.account_key = best->account_key;
          // A SAS token is scoped: borrow it only from a datastore of the same container.
          if (best->container_name == uri.container) loc.account.sas_token = best->sas_token;
          if (!best->endpoint.empty()) loc.account.endpoint = best->endpoint;
        }
      }
      return loc;
    }
  }
  return absl::InternalError("unreachable");
}

}  // namespace kubetrain::storage
