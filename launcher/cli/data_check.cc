#include "kubetrain/launcher/cli/data_check.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "kubetrain/storage/data_uri.h"

namespace kubetrain::cli {
namespace {

spec::Location Where(const v1::JobSpec& job, const std::string& field) {
  for (const std::string& f : {absl::StrCat(field, ".path"), field}) {
    auto it = job.locations().find(f);
    if (it != job.locations().end()) {
      return {job.source_file(), it->second.line(), it->second.column(), ""};
    }
  }
  return {job.source_file(), 0, 0, ""};
}

void Check(const v1::JobSpec& job, const std::string& field, const std::string& path,
           v1::DataType type, bool input, storage::Workspace& ws, spec::Diagnostics& d) {
  if (path.empty()) return;
  absl::StatusOr<storage::DataUri> uri = storage::ParseDataUri(path);
  if (!uri.ok()) {
    d.Error(Where(job, field), field + ".path", std::string(uri.status().message()));
    return;
  }
  std::error_code ec;
  if (input && uri->kind == storage::DataUri::Kind::kLocal &&
      std::filesystem::exists(uri->local_path, ec)) {
    const bool dir = std::filesystem::is_directory(uri->local_path, ec);
    if (type == v1::DATA_TYPE_URI_FILE && dir) {
      d.Error(Where(job, field), field + ".type",
              absl::StrCat(uri->local_path, " is a folder but the input is uri_file"),
              "use `type: uri_folder`, or point `path:` at a file");
    } else if (type == v1::DATA_TYPE_URI_FOLDER && !dir) {
      d.Error(Where(job, field), field + ".type",
              absl::StrCat(uri->local_path, " is a file but the input is uri_folder (the default)"),
              "add `type: uri_file`, or point `path:` at a folder");
    }
  }
  if (uri->kind != storage::DataUri::Kind::kDatastore || uri->datastore == "workspaceblobstore") {
    return;
  }
  absl::StatusOr<v1::Datastore> ds = ws.GetDatastore(uri->datastore);
  if (absl::IsNotFound(ds.status())) {
    d.Error(Where(job, field), field + ".path",
            absl::StrCat("no datastore \"", uri->datastore, "\" in the workspace"),
            absl::StrCat("register it: `kubetrain datastore create ", uri->datastore,
                         " --type azureblob --account-name ... --container-name ...` (or "
                         "--type local --path DIR); `kubetrain datastore list` shows them"));
  } else if (!ds.ok()) {
    d.Error(Where(job, field), field + ".path", std::string(ds.status().message()));
  }
}

}  // namespace

void CheckDataPaths(const v1::JobSpec& spec, storage::Workspace& workspace,
                    spec::Diagnostics& diagnostics) {
  for (const auto& [name, input] : spec.inputs()) {
    const bool asset =
        input.path().rfind("azureml:", 0) == 0 && input.path().rfind("azureml://", 0) != 0;
    if (input.type() == v1::DATA_TYPE_LITERAL || input.mode() == v1::DATA_MODE_DIRECT || asset) {
      continue;  // literals; data assets were reported by the parser
    }
    Check(spec, "inputs." + name, input.path(), input.type(), true, workspace, diagnostics);
  }
  for (const auto& [name, output] : spec.outputs()) {
    if (output.mode() == v1::DATA_MODE_DIRECT) continue;  // the script's business
    Check(spec, "outputs." + name, output.path(), output.type(), false, workspace, diagnostics);
  }
}

}  // namespace kubetrain::cli
