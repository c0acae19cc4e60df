#include "kubetrain/launcher/spec/datastore_file.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "yaml-cpp/yaml.h"

namespace kubetrain::spec {
namespace {
namespace fs = std::filesystem;

std::string Scalar(const YAML::Node& n) { return n && n.IsScalar() ? n.Scalar() : ""; }

// The keys of Azure ML's azureBlob schema, plus kubetrain's `path` for local datastores.
const std::vector<std::string>& KnownKeys() {
  static const std::vector<std::string> kKeys = {
      "$schema",  "name",     "type",        "description", "account_name", "container_name",
      "endpoint", "protocol", "credentials", "tags",        "path"};
  return kKeys;
}

}  // namespace

DatastoreFileResult ParseDatastoreYaml(absl::string_view text, const std::string& path) {
  DatastoreFileResult out;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    out.status = absl::InvalidArgumentError(
        absl::StrCat(path, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
    return out;
  }
  if (!root.IsMap()) {
    out.status = absl::InvalidArgumentError(absl::StrCat(path, ": expected a mapping"));
    return out;
  }
  const std::vector<std::string>& known = KnownKeys();
  for (auto it = root.begin(); it != root.end(); ++it) {
    std::string key = it->first.Scalar();
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      out.warnings.push_back(absl::StrCat(path, ":", it->first.Mark().line + 1, ": warning: `", key,
                                          "` is not used by kubetrain and is ignored"));
    }
  }
  v1::Datastore& d = out.datastore;
  d.set_name(Scalar(root["name"]));
  std::string type = Scalar(root["type"]);
  if (type == "azure_blob" || type == "azureblob") {
    d.set_type("azureblob");
  } else if (type == "local" || type == "workspaceblobstore") {
    d.set_type(type);
  } else if (!type.empty()) {
    out.status = absl::InvalidArgumentError(
        absl::StrCat(path, ":", root["type"].Mark().line + 1, ": type \"", type,
                     "\" is not supported; kubetrain supports azure_blob (and its own local, "
                     "workspaceblobstore)"));
    return out;
  }
  d.set_description(Scalar(root["description"]));
  d.set_account_name(Scalar(root["account_name"]));
  d.set_container_name(Scalar(root["container_name"]));
  d.set_path(Scalar(root["path"]));
  // A relative `path:` in the file is relative to the file.
  if (!d.path().empty() && !fs::path(d.path()).is_absolute()) {
    d.set_path((fs::absolute(path).parent_path() / d.path()).string());
  }
  std::string endpoint = Scalar(root["endpoint"]);
  std::string protocol = root["protocol"] ? Scalar(root["protocol"]) : "https";
  if (absl::StrContains(endpoint, "://")) {
    d.set_endpoint(endpoint);  // kubetrain's override: the full service URL (Azurite)
  } else if (!endpoint.empty() && (endpoint != "core.windows.net" || protocol != "https")) {
    // Azure ML's `endpoint` is the storage DNS suffix (sovereign clouds).
    d.set_endpoint(absl::StrCat(protocol, "://", d.account_name(), ".blob.", endpoint));
  }
  if (YAML::Node c = root["credentials"]; c && c.IsMap()) {
    d.set_account_key(Scalar(c["account_key"]));
    d.set_sas_token(Scalar(c["sas_token"]));
  }
  return out;
}

DatastoreFileResult ParseDatastoreFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    DatastoreFileResult out;
    out.status = absl::NotFoundError(absl::StrCat("cannot read ", path));
    return out;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParseDatastoreYaml(buffer.str(), path);
}

absl::Status ValidateDatastore(const std::string& workspace_dir, v1::Datastore* datastore) {
  v1::Datastore& d = *datastore;
  static const std::regex kName("[A-Za-z0-9_][A-Za-z0-9_-]{0,254}");
  if (d.name().empty()) {
    return absl::InvalidArgumentError(
        "the datastore has no name (give NAME or `name:` in the file)");
  }
  if (!std::regex_match(d.name(), kName)) {
    return absl::InvalidArgumentError(
        absl::StrCat("datastore name \"", d.name(), "\": use letters, digits, '_' and '-' only"));
  }
  if (d.type().empty()) {
    d.set_type(d.account_name().empty() ? "local" : "azureblob");
  }
  const std::string& t = d.type();
  if (t != "local" && t != "azureblob" && t != "workspaceblobstore") {
    return absl::InvalidArgumentError(absl::StrCat(
        "datastore type \"", t, "\" is not supported; use local, azureblob or workspaceblobstore"));
  }
  const bool blob = t == "azureblob" || (t == "workspaceblobstore" && !d.account_name().empty());
  if (blob) {
    if (d.account_name().empty() || d.container_name().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "datastore \"", d.name(), "\" (", t, ") needs --account-name and --container-name"));
    }
    if (!d.path().empty()) {
      return absl::InvalidArgumentError("--path is for local datastores");
    }
    if (!d.account_key().empty() && !d.sas_token().empty()) {
      return absl::InvalidArgumentError("give either an account key or a SAS token, not both");
    }
    std::string raw;
    if (!d.account_key().empty() && !absl::Base64Unescape(d.account_key(), &raw)) {
      return absl::InvalidArgumentError(
          "the account key is not valid base64; copy it from the storage account's Access keys");
    }
    if (absl::StartsWith(d.sas_token(), "?")) d.set_sas_token(d.sas_token().substr(1));
    if (!d.endpoint().empty() && !absl::StartsWith(d.endpoint(), "http://") &&
        !absl::StartsWith(d.endpoint(), "https://")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--endpoint \"", d.endpoint(),
          "\" must be a URL, e.g. http://127.0.0.1:10000/devstoreaccount1 for Azurite"));
    }
    return absl::OkStatus();
  }
  if (!d.account_key().empty() || !d.sas_token().empty() || !d.container_name().empty() ||
      !d.endpoint().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--account-key, --sas-token, --container-name and --endpoint are for azureblob datastores; "
        "datastore \"",
        d.name(), "\" is ", t));
  }
  if (d.path().empty() && t == "workspaceblobstore") {
    d.set_path(absl::StrCat(workspace_dir, "/datastores/workspaceblobstore"));
  }
  if (d.path().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("datastore \"", d.name(), "\" (local) needs --path DIR"));
  }
  std::error_code ec;
  fs::path p = fs::absolute(d.path(), ec);
  if (t == "workspaceblobstore") fs::create_directories(p, ec);
  if (!fs::is_directory(p, ec)) {
    return absl::NotFoundError(absl::StrCat("datastore \"", d.name(), "\": ", p.string(),
                                            " is not a directory; create it or fix --path"));
  }
  d.set_path(fs::canonical(p, ec).string());
  return absl::OkStatus();
}

}  // namespace kubetrain::spec
