// `kubetrain data ...`: create, list, show, archive, restore. Data assets are named, immutable
// versions of a data path (Azure ML's `az ml data`); jobs use them as azureml:<name>:<version> or
// azureml:<name>@latest (launcher/compute/assets.h resolves them).
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kubetrain/launcher/cli/cli.h"
#include "kubetrain/launcher/cli/output.h"
#include "kubetrain/launcher/compute/assets.h"
#include "kubetrain/launcher/spec/asset_file.h"
#include "kubetrain/launcher/spec/job_parser.h"
#include "kubetrain/v1/asset.pb.h"

namespace kubetrain::cli {
namespace {

struct DataFlags {
  std::string file, name, version, reference, output;
  std::vector<std::string> sets;
  bool include_archived = false;
};

int Create(const GlobalFlags& global, const DataFlags& f) {
  spec::AssetFileOptions options{f.sets};
  if (!f.name.empty()) options.overrides.push_back("name=" + f.name);
  if (!f.version.empty()) options.overrides.push_back("version=" + f.version);
  spec::DataAssetParseResult parsed = spec::ParseDataAssetFile(f.file, options);
  std::cerr << parsed.diagnostics.Format();
  if (parsed.diagnostics.has_errors()) {
    int n = parsed.diagnostics.error_count();
    std::cerr << f.file << ": " << n << " error" << (n == 1 ? "" : "s")
              << "; nothing was created\n";
    return kExitFailure;
  }
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  auto created = compute::CreateDataAsset(**ws, std::move(parsed.asset));
  if (!created.ok()) return PrintError(created.status()), kExitFailure;
  const v1::DataAsset& a = created->asset;
  std::cout << "data asset \"" << a.name() << ":" << a.version() << "\" "
            << (created->created ? "created" : "already exists with this content; unchanged")
            << " (" << spec::DataTypeName(a.type()) << " " << a.path() << ")\n"
            << "use it in a job as azureml:" << a.name() << ":" << a.version()
            << " or azureml:" << a.name() << "@latest\n";
  return kExitOk;
}

int List(const GlobalFlags& global, const DataFlags& f) {
  auto format = ParseOutputFormat(f.output);
  if (!format.ok()) return PrintError(format.status()), kExitUsage;
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  auto all = (*ws)->ListDataAssets(f.name);
  if (!all.ok()) return PrintError(all.status()), kExitFailure;
  std::vector<v1::DataAsset> shown;
  for (const v1::DataAsset& a : *all) {
    if (f.include_archived || !a.archived()) shown.push_back(a);
  }
  if (*format != OutputFormat::kTable) {
    PrintStructured(ToJsonArray(shown), *format, std::cout);
    return kExitOk;
  }
  Table table({"NAME", "VERSION", "TYPE", "PATH", "CREATED", "DESCRIPTION"});
  for (const v1::DataAsset& a : shown) {
    table.AddRow({a.name(), a.archived() ? absl::StrCat(a.version(), " (archived)") : a.version(),
                  spec::DataTypeName(a.type()), a.path(), LocalTime(a.created_unix_ms()),
                  a.description()});
  }
  table.Print(std::cout);
  return kExitOk;
}

int Show(const GlobalFlags& global, const DataFlags& f) {
  auto format = ParseOutputFormat(f.output);
  if (!format.ok()) return PrintError(format.status()), kExitUsage;
  auto ref = spec::ParseAssetReferenceOrLatest(f.reference);
  if (!ref.ok()) return PrintError(ref.status()), kExitUsage;
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  auto a = compute::FindDataAsset(**ws, *ref);
  if (!a.ok()) return PrintError(a.status()), kExitFailure;
  if (*format != OutputFormat::kTable) {
    PrintStructured(ToJson(*a), *format, std::cout);
    return kExitOk;
  }
  Table t({"FIELD", "VALUE"});
  t.AddRow({"name", a->name()});
  t.AddRow({"version", a->archived() ? absl::StrCat(a->version(), " (archived)") : a->version()});
  t.AddRow({"type", spec::DataTypeName(a->type())});
  t.AddRow({"path", a->path()});
  if (!a->description().empty()) t.AddRow({"description", a->description()});
  for (const auto& [key, value] : a->tags()) t.AddRow({absl::StrCat("tag ", key), value});
  t.AddRow({"created", LocalTime(a->created_unix_ms())});
  if (!a->source_file().empty()) t.AddRow({"from", a->source_file()});
  t.AddRow({"use it as", absl::StrCat("azureml:", a->name(), ":", a->version())});
  t.Print(std::cout);
  return kExitOk;
}

int SetArchived(const GlobalFlags& global, const DataFlags& f, bool archived) {
  auto ref = spec::ParseAssetReference(f.reference);
  if (!ref.ok() || ref->version.empty()) {
    PrintError(absl::InvalidArgumentError(
        absl::StrCat("name the version to ", archived ? "archive" : "restore",
                     ": NAME:VERSION, e.g. ", ref.ok() ? ref->name : "cifar-10", ":1")));
    return kExitUsage;
  }
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  auto a = (*ws)->SetDataAssetArchived(ref->name, ref->version, archived);
  if (!a.ok()) return PrintError(a.status()), kExitFailure;
  std::cout << "data asset \"" << a->name() << ":" << a->version() << "\" "
            << (archived ? "archived: @latest and `data list` skip it; jobs naming this version "
                           "still resolve"
                         : "restored")
            << "\n";
  return kExitOk;
}

}  // namespace

void AddDataCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code) {
  CLI::App* data = app.add_subcommand(
      "data",
      "Register and inspect data assets (jobs use azureml:<name>:<version>, <name>@latest)");
  data->require_subcommand(1);
  auto f = std::make_shared<DataFlags>();

  CLI::App* create = data->add_subcommand(
      "create",
      "Register a data asset version from an Azure ML data YAML (versions are immutable)");
  create
      ->add_option("-f,--file", f->file,
                   "Azure ML data YAML: name, version, type (uri_file | uri_folder | mltable), "
                   "path, description, tags")
      ->required();
  create->add_option("--name", f->name, "Replaces `name:` in the file");
  create->add_option("--version", f->version,
                     "Replaces `version:` in the file (none: the next whole number)");
  create->add_option("--set", f->sets, "Override a field of the file, e.g. --set path=./data");
  create->callback([&flags, f, exit_code] { *exit_code = Create(flags, *f); });

  CLI::App* list = data->add_subcommand("list", "List data asset versions");
  list->add_option("name", f->name, "Only the versions of this asset");
  list->add_flag("--include-archived", f->include_archived, "Show archived versions too");
  list->add_option("-o,--output", f->output, "table (default), json or yaml");
  list->callback([&flags, f, exit_code] { *exit_code = List(flags, *f); });

  CLI::App* show = data->add_subcommand("show", "Show one data asset version");
  show->add_option("asset", f->reference, "NAME[:VERSION] or NAME@latest (default: @latest)")
      ->required();
  show->add_option("-o,--output", f->output, "table (default), json or yaml");
  show->callback([&flags, f, exit_code] { *exit_code = Show(flags, *f); });

  CLI::App* archive = data->add_subcommand(
      "archive", "Archive a version: @latest and `list` skip it; jobs naming it still resolve");
  archive->add_option("asset", f->reference, "NAME:VERSION")->required();
  archive->callback([&flags, f, exit_code] { *exit_code = SetArchived(flags, *f, true); });

  CLI::App* restore = data->add_subcommand("restore", "Restore an archived version");
  restore->add_option("asset", f->reference, "NAME:VERSION")->required();
  restore->callback([&flags, f, exit_code] { *exit_code = SetArchived(flags, *f, false); });
}

}  // namespace kubetrain::cli
