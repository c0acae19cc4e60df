// `kubetrain environment ...`: create, list, show, archive, restore. Environments are named,
// immutable versions of a container image (Azure ML's `az ml environment`); jobs use them as
// `environment: azureml:<name>:<version>` or `<name>@latest` (launcher/compute/assets.h resolves
// them: on Kubernetes the image is the pods' image; on local compute this machine's software runs).
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kubetrain/launcher/cli/cli.h"
#include "kubetrain/launcher/cli/output.h"
#include "kubetrain/launcher/compute/assets.h"
#include "kubetrain/launcher/spec/asset_file.h"
#include "kubetrain/v1/asset.pb.h"

namespace kubetrain::cli {
namespace {

struct EnvironmentFlags {
  std::string file, name, version, reference, output;
  std::vector<std::string> sets;
  bool include_archived = false;
};

std::string What(const v1::EnvironmentAsset& e) {
  if (!e.image().empty()) return absl::StrCat("image ", e.image());
  return absl::StrCat("build ", e.build_context());
}

int Create(const GlobalFlags& global, const EnvironmentFlags& f) {
  spec::AssetFileOptions options{f.sets};
  if (!f.name.empty()) options.overrides.push_back("name=" + f.name);
  if (!f.version.empty()) options.overrides.push_back("version=" + f.version);
  spec::EnvironmentParseResult parsed = spec::ParseEnvironmentFile(f.file, options);
  std::cerr << parsed.diagnostics.Format();
  if (parsed.diagnostics.has_errors()) {
    int n = parsed.diagnostics.error_count();
    std::cerr << f.file << ": " << n << " error" << (n == 1 ? "" : "s")
              << "; nothing was created\n";
    return kExitFailure;
  }
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  auto created = compute::CreateEnvironment(**ws, std::move(parsed.environment));
  if (!created.ok()) return PrintError(created.status()), kExitFailure;
  const v1::EnvironmentAsset& e = created->asset;
  std::cout << "environment \"" << e.name() << ":" << e.version() << "\" "
            << (created->created ? "created" : "already exists with this content; unchanged")
            << " (" << What(e) << ")\n"
            << "use it in a job as `environment: azureml:" << e.name() << ":" << e.version()
            << "` or azureml:" << e.name() << "@latest\n";
  return kExitOk;
}

int List(const GlobalFlags& global, const EnvironmentFlags& f) {
  auto format = ParseOutputFormat(f.output);
  if (!format.ok()) return PrintError(format.status()), kExitUsage;
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  auto all = (*ws)->ListEnvironments(f.name);
  if (!all.ok()) return PrintError(all.status()), kExitFailure;
  std::vector<v1::EnvironmentAsset> shown;
  for (const v1::EnvironmentAsset& e : *all) {
    if (f.include_archived || !e.archived()) shown.push_back(e);
  }
  if (*format != OutputFormat::kTable) {
    PrintStructured(ToJsonArray(shown), *format, std::cout);
    return kExitOk;
  }
  Table table({"NAME", "VERSION", "IMAGE", "CONDA", "CREATED", "DESCRIPTION"});
  for (const v1::EnvironmentAsset& e : shown) {
    table.AddRow({e.name(), e.archived() ? absl::StrCat(e.version(), " (archived)") : e.version(),
                  What(e), e.conda_spec().empty() ? "-" : "yes", LocalTime(e.created_unix_ms()),
                  e.description()});
  }
  table.Print(std::cout);
  return kExitOk;
}

int Show(const GlobalFlags& global, const EnvironmentFlags& f) {
  auto format = ParseOutputFormat(f.output);
  if (!format.ok()) return PrintError(format.status()), kExitUsage;
  auto ref = spec::ParseAssetReferenceOrLatest(f.reference);
  if (!ref.ok()) return PrintError(ref.status()), kExitUsage;
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  auto e = compute::FindEnvironment(**ws, *ref);
  if (!e.ok()) return PrintError(e.status()), kExitFailure;
  if (*format != OutputFormat::kTable) {
    PrintStructured(ToJson(*e), *format, std::cout);
    return kExitOk;
  }
  Table t({"FIELD", "VALUE"});
  t.AddRow({"name", e->name()});
  t.AddRow({"version", e->archived() ? absl::StrCat(e->version(), " (archived)") : e->version()});
  if (!e->image().empty()) t.AddRow({"image", e->image()});
  if (!e->build_context().empty()) {
    t.AddRow({"build", absl::StrCat(e->build_context(), " (", e->dockerfile_path(), ")")});
  }
  if (!e->conda_spec().empty()) {
    t.AddRow({"conda file", e->conda_file().empty() ? "(inline)" : e->conda_file()});
  }
  t.AddRow({"os type", e->os_type()});
  if (!e->description().empty()) t.AddRow({"description", e->description()});
  for (const auto& [key, value] : e->tags()) t.AddRow({absl::StrCat("tag ", key), value});
  t.AddRow({"created", LocalTime(e->created_unix_ms())});
  if (!e->source_file().empty()) t.AddRow({"from", e->source_file()});
  t.AddRow({"use it as", absl::StrCat("environment: azureml:", e->name(), ":", e->version())});
  t.Print(std::cout);
  if (!e->conda_spec().empty()) std::cout << "\nconda specification\n" << e->conda_spec();
  return kExitOk;
}

int SetArchived(const GlobalFlags& global, const EnvironmentFlags& f, bool archived) {
  auto ref = spec::ParseAssetReference(f.reference);
  if (!ref.ok() || ref->version.empty()) {
    PrintError(absl::InvalidArgumentError(
        absl::StrCat("name the version to ", archived ? "archive" : "restore",
                     ": NAME:VERSION, e.g. ", ref.ok() ? ref->name : "my-env", ":1")));
    return kExitUsage;
  }
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  auto e = (*ws)->SetEnvironmentArchived(ref->name, ref->version, archived);
  if (!e.ok()) return PrintError(e.status()), kExitFailure;
  std::cout << "environment \"" << e->name() << ":" << e->version() << "\" "
            << (archived ? "archived: @latest and `environment list` skip it; jobs naming this "
                           "version still resolve"
                         : "restored")
            << "\n";
  return kExitOk;
}

}  // namespace

void AddEnvironmentCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code) {
  CLI::App* env = app.add_subcommand(
      "environment",
      "Register and inspect environments (jobs use azureml:<name>:<version>, <name>@latest)");
  env->require_subcommand(1);
  auto f = std::make_shared<EnvironmentFlags>();

  CLI::App* create = env->add_subcommand(
      "create",
      "Register an environment version from an Azure ML environment YAML (versions are immutable)");
  create
      ->add_option("-f,--file", f->file,
                   "Azure ML environment YAML: name, version, image (or build), conda_file, "
                   "description, tags")
      ->required();
  create->add_option("--name", f->name, "Replaces `name:` in the file");
  create->add_option("--version", f->version,
                     "Replaces `version:` in the file (none: the next whole number)");
  create->add_option("--set", f->sets, "Override a field of the file, e.g. --set image=x:1");
  create->callback([&flags, f, exit_code] { *exit_code = Create(flags, *f); });

  CLI::App* list = env->add_subcommand("list", "List environment versions");
  list->add_option("name", f->name, "Only the versions of this environment");
  list->add_flag("--include-archived", f->include_archived, "Show archived versions too");
  list->add_option("-o,--output", f->output, "table (default), json or yaml");
  list->callback([&flags, f, exit_code] { *exit_code = List(flags, *f); });

  CLI::App* show = env->add_subcommand("show", "Show one environment version");
  show->add_option("environment", f->reference, "NAME[:VERSION] or NAME@latest (default: @latest)")
      ->required();
  show->add_option("-o,--output", f->output, "table (default), json or yaml");
  show->callback([&flags, f, exit_code] { *exit_code = Show(flags, *f); });

  CLI::App* archive = env->add_subcommand(
      "archive", "Archive a version: @latest and `list` skip it; jobs naming it still resolve");
  archive->add_option("environment", f->reference, "NAME:VERSION")->required();
  archive->callback([&flags, f, exit_code] { *exit_code = SetArchived(flags, *f, true); });

  CLI::App* restore = env->add_subcommand("restore", "Restore an archived version");
  restore->add_option("environment", f->reference, "NAME:VERSION")->required();
  restore->callback([&flags, f, exit_code] { *exit_code = SetArchived(flags, *f, false); });
}

}  // namespace kubetrain::cli
