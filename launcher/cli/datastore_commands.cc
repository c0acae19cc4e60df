// `kubetrain datastore ...`: create, list, show. Datastores are where job data lives
// (azureml://datastores/<name>/paths/...): a local folder, an Azure Blob container, or the
// workspace's default `workspaceblobstore`. Secrets (account key, SAS token) are stored in the
// workspace (0600) and never printed: show / list / -o json|yaml say "<set>".
#include <iostream>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kubetrain/launcher/cli/cli.h"
#include "kubetrain/launcher/cli/output.h"
#include "kubetrain/launcher/spec/datastore_file.h"
#include "kubetrain/v1/datastore.pb.h"

namespace kubetrain::cli {
namespace {

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

int Create(const GlobalFlags& global, const DatastoreFlags& f) {
  v1::Datastore d;
  if (!f.file.empty()) {
    spec::DatastoreFileResult file = spec::ParseDatastoreFile(f.file);
    for (const std::string& w : file.warnings) std::cerr << w << "\n";
    if (!file.status.ok()) return PrintError(file.status), kExitFailure;
    d = std::move(file.datastore);
  }
  // Flags given on the command line win over the file.
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
  if (absl::Status s = spec::ValidateDatastore(ws_dir, &d); !s.ok()) {
    return PrintError(s), kExitFailure;
  }
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
