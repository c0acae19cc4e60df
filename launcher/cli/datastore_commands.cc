// `kubetrain datastore ...`: create, list, show. Datastores are where job data lives
// (azureml://datastores/<name>/paths/...): a local folder, an Azure Blob container, or the
// workspace's default `workspaceblobstore`. Secrets (account key, SAS token) are stored in the
// workspace (0600) and never printed: show / list / -o json|yaml say "<set>".
#include <filesystem>
#include <iostream>
#include <memory>
#include <regex>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "kubetrain/v1/datastore.pb.h"
#include "kubetrain/launcher/cli/cli.h"
#include "kubetrain/launcher/cli/output.h"
#include "yaml-cpp/yaml.h"

namespace kubetrain::cli {
namespace {
namespace fs = std::filesystem;

struct DatastoreFlags {
  std::string name, type, path, account_name, container_name, endpoint, account_key, sas_token,
      description, file, output;
};

constexpr char kSecretSet[] = "<set>";

// A copy fit for printing: secrets replaced by "<set>".
v1::Datastore Masked(v1::Datastore d) {
  if (!d.account_key().empty()) d.set_account_key(kSecretSet);
  if (!d.sas_token().empty()) d.set_sas_token(kSecretSet);
  return d;
}

std::string Location(const v1::Datastore& d) {
  if (!d.account_name().empty()) {
    std::string endpoint =
        d.endpoint().empty() ? absl::StrCat("https://", d.account_name(), ".blob.core.windows.net")
                             : d.endpoint();
    return absl::StrCat(endpoint, "/", d.container_name());
  }
  return d.path();
}

std::string Credentials(const v1::Datastore& d) {
  if (!d.account_key().empty()) return "account key";
  if (!d.sas_token().empty()) return "SAS token";
  return d.account_name().empty() ? "-" : "none (anonymous)";
}

std::string Scalar(const YAML::Node& n) { return n && n.IsScalar() ? n.Scalar() : ""; }

// Reads an Azure ML datastore YAML (azureBlob.schema.json) into `d`; flags given on the command
// line win over the file.
absl::Status ReadDatastoreFile(const std::string& file, v1::Datastore* d) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(file);
  } catch (const YAML::BadFile&) {
    return absl::NotFoundError(absl::StrCat("cannot read ", file));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
  }
  if (!root.IsMap()) return absl::InvalidArgumentError(absl::StrCat(file, ": expected a mapping"));
  static const std::vector<std::string> kKeys = {
      "$schema",  "name",     "type",        "description", "account_name", "container_name",
      "endpoint", "protocol", "credentials", "tags",        "path"};
  for (auto it = root.begin(); it != root.end(); ++it) {
    std::string key = it->first.Scalar();
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
      std::cerr << file << ":" << it->first.Mark().line + 1 << ": warning: `" << key
                << "` is not used by kubetrain and is ignored\n";
    }
  }
  d->set_name(Scalar(root["name"]));
  std::string type = Scalar(root["type"]);
  if (type == "azure_blob" || type == "azureblob") {
    d->set_type("azureblob");
  } else if (type == "local" || type == "workspaceblobstore") {
    d->set_type(type);
  } else if (!type.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ":", root["type"].Mark().line + 1, ": type \"", type,
                     "\" is not supported; kubetrain supports azure_blob (and its own local, "
                     "workspaceblobstore)"));
  }
  d->set_description(Scalar(root["description"]));
  d->set_account_name(Scalar(root["account_name"]));
  d->set_container_name(Scalar(root["container_name"]));
  d->set_path(Scalar(root["path"]));
  std::string endpoint = Scalar(root["endpoint"]);
  std::string protocol = root["protocol"] ? Scalar(root["protocol"]) : "https";
  if (absl::StrContains(endpoint, "://")) {
    d->set_endpoint(endpoint);  // kubetrain's override: the full service URL (Azurite)
  } else if (!endpoint.empty() && (endpoint != "core.windows.net" || protocol != "https")) {
    // Azure ML's `endpoint` is the storage DNS suffix (sovereign clouds).
    d->set_endpoint(absl::StrCat(protocol, "://", d->account_name(), ".blob.", endpoint));
  }
  if (YAML::Node c = root["credentials"]; c && c.IsMap()) {
    d->set_account_key(Scalar(c["account_key"]));
    d->set_sas_token(Scalar(c["sas_token"]));
  }
  return absl::OkStatus();
}

absl::Status Validate(v1::Datastore* d, const std::string& workspace_dir) {
  static const std::regex kName("[A-Za-z0-9_][A-Za-z0-9_-]{0,254}");
  if (d->name().empty()) {
    return absl::InvalidArgumentError(
        "the datastore has no name (give NAME or `name:` in the file)");
  }
  if (!std::regex_match(d->name(), kName)) {
    return absl::InvalidArgumentError(
        absl::StrCat("datastore name \"", d->name(), "\": use letters, digits, '_' and '-' only"));
  }
  if (d->type().empty()) {
    d->set_type(d->account_name().empty() ? "local" : "azureblob");
  }
  const std::string& t = d->type();
  if (t != "local" && t != "azureblob" && t != "workspaceblobstore") {
    return absl::InvalidArgumentError(absl::StrCat(
        "datastore type \"", t, "\" is not supported; use local, azureblob or workspaceblobstore"));
  }
  const bool blob = t == "azureblob" || (t == "workspaceblobstore" && !d->account_name().empty());
  if (blob) {
    if (d->account_name().empty() || d->container_name().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "datastore \"", d->name(), "\" (", t, ") needs --account-name and --container-name"));
    }
    if (!d->path().empty()) {
      return absl::InvalidArgumentError("--path is for local datastores");
    }
    if (!d->account_key().empty() && !d->sas_token().empty()) {
      return absl::InvalidArgumentError("give either an account key or a SAS token, not both");
    }
    std::string raw;
    if (!d->account_key().empty() && !absl::Base64Unescape(d->account_key(), &raw)) {
      return absl::InvalidArgumentError(
          "the account key is not valid base64; copy it from the storage account's Access keys");
    }
    if (absl::StartsWith(d->sas_token(), "?")) d->set_sas_token(d->sas_token().substr(1));
    if (!d->endpoint().empty() && !absl::StartsWith(d->endpoint(), "http://") &&
        !absl::StartsWith(d->endpoint(), "https://")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--endpoint \"", d->endpoint(),
          "\" must be a URL, e.g. http://127.0.0.1:10000/devstoreaccount1 for Azurite"));
    }
    return absl::OkStatus();
  }
  if (!d->account_key().empty() || !d->sas_token().empty() || !d->container_name().empty() ||
      !d->endpoint().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--account-key, --sas-token, --container-name and --endpoint are for azureblob datastores; "
        "datastore \"",
        d->name(), "\" is ", t));
  }
  if (d->path().empty() && t == "workspaceblobstore") {
    d->set_path(absl::StrCat(workspace_dir, "/datastores/workspaceblobstore"));
  }
  if (d->path().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("datastore \"", d->name(), "\" (local) needs --path DIR"));
  }
  std::error_code ec;
  fs::path p = fs::absolute(d->path(), ec);
  if (t == "workspaceblobstore") fs::create_directories(p, ec);
  if (!fs::is_directory(p, ec)) {
    return absl::NotFoundError(absl::StrCat("datastore \"", d->name(), "\": ", p.string(),
                                            " is not a directory; create it or fix --path"));
  }
  d->set_path(fs::canonical(p, ec).string());
  return absl::OkStatus();
}

int Create(const GlobalFlags& global, const DatastoreFlags& f) {
  v1::Datastore d;
  if (!f.file.empty()) {
    if (absl::Status s = ReadDatastoreFile(f.file, &d); !s.ok()) return PrintError(s), kExitFailure;
    // A relative `path:` in the file is relative to the file.
    if (!d.path().empty() && !fs::path(d.path()).is_absolute()) {
      d.set_path((fs::absolute(f.file).parent_path() / d.path()).string());
    }
  }
  auto set = [](const std::string& flag, auto setter) {
    if (!flag.empty()) setter(flag);
  };
  set(f.name, [&](const std::string& v) { d.set_name(v); });
  set(f.type, [&](const std::string& v) { d.set_type(v == "azure_blob" ? "azureblob" : v); });
  set(f.path, [&](const std::string& v) { d.set_path(v); });
  set(f.account_name, [&](const std::string& v) { d.set_account_name(v); });
  set(f.container_name, [&](const std::string& v) { d.set_container_name(v); });
  set(f.endpoint, [&](const std::string& v) { d.set_endpoint(v); });
  set(f.account_key, [&](const std::string& v) { d.set_account_key(v); });
  set(f.sas_token, [&](const std::string& v) { d.set_sas_token(v); });
  set(f.description, [&](const std::string& v) { d.set_description(v); });
  std::string ws_dir =
      global.workspace.empty() ? storage::DefaultWorkspacePath() : global.workspace;
  if (absl::Status s = Validate(&d, ws_dir); !s.ok()) return PrintError(s), kExitFailure;
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  bool existed = (*ws)->GetDatastore(d.name()).ok();
  d.set_created_unix_ms(absl::ToUnixMillis(absl::Now()));
  if (absl::Status s = (*ws)->PutDatastore(d); !s.ok()) return PrintError(s), kExitFailure;
  std::cout << "datastore \"" << d.name() << "\" " << (existed ? "updated" : "created") << " ("
            << d.type() << ", " << Location(d) << ", credentials: " << Credentials(d) << ")\n";
  return kExitOk;
}

int List(const GlobalFlags& global, const DatastoreFlags& f) {
  auto format = ParseOutputFormat(f.output);
  if (!format.ok()) return PrintError(format.status()), kExitUsage;
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  auto all = (*ws)->ListDatastores();
  if (!all.ok()) return PrintError(all.status()), kExitFailure;
  if (*format != OutputFormat::kTable) {
    nlohmann::json out = nlohmann::json::array();
    for (const v1::Datastore& d : *all) out.push_back(ToJson(Masked(d)));
    PrintStructured(out, *format, std::cout);
    return kExitOk;
  }
  Table table({"NAME", "TYPE", "LOCATION", "CREDENTIALS", "DESCRIPTION"});
  for (const v1::Datastore& d : *all) {
    table.AddRow({d.name(), d.type(), Location(d), Credentials(d), d.description()});
  }
  table.Print(std::cout);
  return kExitOk;
}

int Show(const GlobalFlags& global, const DatastoreFlags& f) {
  auto format = ParseOutputFormat(f.output);
  if (!format.ok()) return PrintError(format.status()), kExitUsage;
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  auto d = (*ws)->GetDatastore(f.name);
  if (!d.ok()) {
    if (absl::IsNotFound(d.status())) {
      return PrintError(absl::NotFoundError(absl::StrCat(
                 "no datastore \"", f.name, "\"; `kubetrain datastore list` shows them"))),
             kExitFailure;
    }
    return PrintError(d.status()), kExitFailure;
  }
  if (*format != OutputFormat::kTable) {
    PrintStructured(ToJson(Masked(*d)), *format, std::cout);
    return kExitOk;
  }
  auto line = [](const char* key, const std::string& value) {
    if (!value.empty()) std::cout << key << ": " << value << "\n";
  };
  line("name", d->name());
  line("type", d->type());
  line("description", d->description());
  line("path", d->path());
  line("account_name", d->account_name());
  line("container_name", d->container_name());
  if (!d->account_name().empty()) {
    line("endpoint", d->endpoint().empty() ? absl::StrCat("https://", d->account_name(),
                                                          ".blob.core.windows.net (default)")
                                           : d->endpoint());
    std::cout << "account_key: " << (d->account_key().empty() ? "<not set>" : kSecretSet) << "\n";
    std::cout << "sas_token: " << (d->sas_token().empty() ? "<not set>" : kSecretSet) << "\n";
  }
  std::cout << "uri: azureml://datastores/" << d->name() << "/paths/<path>\n";
  return kExitOk;
}

}  // namespace

void AddDatastoreCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code) {
  CLI::App* ds = app.add_subcommand(
      "datastore", "Register and inspect datastores (azureml://datastores/<name>/paths/...)");
  ds->require_subcommand(1);
  auto f = std::make_shared<DatastoreFlags>();

  CLI::App* create = ds->add_subcommand(
      "create", "Create or replace a datastore from flags and/or an Azure ML datastore YAML");
  create->add_option("name", f->name, "Datastore name (or `name:` in the file)");
  create->add_option("-f,--file", f->file,
                     "Azure ML datastore YAML (type: azure_blob, account_name, container_name, "
                     "credentials: {account_key | sas_token}, endpoint)");
  create->add_option("--type", f->type, "local, azureblob or workspaceblobstore");
  create->add_option("--path", f->path, "local: the folder");
  create->add_option("--account-name", f->account_name, "azureblob: storage account");
  create->add_option("--container-name", f->container_name, "azureblob: container");
  create->add_option(
      "--endpoint", f->endpoint,
      "azureblob: service URL override (Azurite: http://127.0.0.1:10000/devstoreaccount1)");
  create
      ->add_option("--account-key", f->account_key, "azureblob: account key (stored, never shown)")
      ->envname("KUBETRAIN_DATASTORE_ACCOUNT_KEY");
  create->add_option("--sas-token", f->sas_token, "azureblob: SAS token (stored, never shown)")
      ->envname("KUBETRAIN_DATASTORE_SAS_TOKEN");
  create->add_option("--description", f->description, "Free text");
  create->callback([&flags, f, exit_code] { *exit_code = Create(flags, *f); });

  CLI::App* list = ds->add_subcommand("list", "List datastores (secrets are never shown)");
  list->add_option("-o,--output", f->output, "table (default), json or yaml");
  list->callback([&flags, f, exit_code] { *exit_code = List(flags, *f); });

  CLI::App* show = ds->add_subcommand("show", "Show a datastore (secrets are never shown)");
  show->add_option("name", f->name, "Datastore name")->required();
  show->add_option("-o,--output", f->output, "table (default), json or yaml");
  show->callback([&flags, f, exit_code] { *exit_code = Show(flags, *f); });
}

}  // namespace kubetrain::cli
