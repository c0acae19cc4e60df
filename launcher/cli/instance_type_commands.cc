// `kubetrain instance-type ...`: apply, list, show.
#include <algorithm>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kubetrain/common/quantity.h"
#include "kubetrain/launcher/cli/cli.h"
#include "kubetrain/launcher/cli/output.h"
#include "kubetrain/launcher/compute/instance_types.h"
#include "kubetrain/launcher/compute/targets.h"
#include "kubetrain/launcher/placement/placement.h"

namespace kubetrain::cli {
namespace {

struct InstanceTypeFlags {
  std::string file, name, compute = "local", output;
};

std::string Selector(const v1::InstanceType& t) {
  std::vector<std::string> sel;
  for (const auto& [k, v] : t.node_selector()) sel.push_back(absl::StrCat(k, "=", v));
  std::sort(sel.begin(), sel.end());
  return sel.empty() ? "-" : absl::StrJoin(sel, ",");
}

// The compute target named by --compute, read from the workspace.
absl::StatusOr<v1::ComputeTarget> LoadTarget(const GlobalFlags& global, const std::string& name) {
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return ws.status();
  return compute::FindComputeTarget(**ws, name);
}

int Apply(const GlobalFlags& global, const InstanceTypeFlags& f) {
  compute::InstanceTypeParseResult parsed = compute::ParseInstanceTypesFile(f.file);
  std::cerr << parsed.diagnostics.Format();
  if (parsed.diagnostics.has_errors()) {
    std::cerr << "nothing was applied\n";
    return kExitFailure;
  }
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  absl::StatusOr<v1::ComputeTarget> target = compute::FindComputeTarget(**ws, f.compute);
  if (!target.ok()) return PrintError(target.status()), kExitFailure;
  std::vector<std::string> existing;
  for (const auto& t : target->instance_types()) existing.push_back(t.name());
  compute::ApplyInstanceTypes(parsed.items, *target);
  if (absl::Status s = (*ws)->PutCompute(*target); !s.ok()) return PrintError(s), kExitFailure;
  for (const v1::InstanceType& t : parsed.items) {
    bool updated = std::find(existing.begin(), existing.end(), t.name()) != existing.end();
    std::cout << "instance type \"" << t.name() << "\" " << (updated ? "updated" : "created")
              << " on compute \"" << f.compute
              << "\": " << placement::FormatRequest(placement::EffectiveRequest(t)) << "\n";
  }
  return kExitOk;
}

int List(const GlobalFlags& global, const InstanceTypeFlags& f) {
  auto format = ParseOutputFormat(f.output);
  if (!format.ok()) return PrintError(format.status()), kExitUsage;
  absl::StatusOr<v1::ComputeTarget> target = LoadTarget(global, f.compute);
  if (!target.ok()) return PrintError(target.status()), kExitFailure;
  std::vector<v1::InstanceType> types = compute::EffectiveInstanceTypes(*target);
  if (*format != OutputFormat::kTable) {
    PrintStructured(ToJsonArray(types), *format, std::cout);
    return kExitOk;
  }
  Table table({"NAME", "CPU REQ", "MEM REQ", "CPU LIMIT", "MEM LIMIT", "GPU", "NODE SELECTOR"});
  for (const v1::InstanceType& t : types) {
    table.AddRow({t.name(), t.requests().cpu().original(), t.requests().memory().original(),
                  t.limits().cpu().original(), t.limits().memory().original(),
                  absl::StrCat(t.limits().gpu()), Selector(t)});
  }
  table.Print(std::cout);
  return kExitOk;
}

int Show(const GlobalFlags& global, const InstanceTypeFlags& f) {
  auto format = ParseOutputFormat(f.output);
  if (!format.ok()) return PrintError(format.status()), kExitUsage;
  absl::StatusOr<v1::ComputeTarget> target = LoadTarget(global, f.compute);
  if (!target.ok()) return PrintError(target.status()), kExitFailure;
  absl::StatusOr<v1::InstanceType> t = compute::FindInstanceType(*target, f.name);
  if (!t.ok()) return PrintError(t.status()), kExitFailure;
  if (*format != OutputFormat::kTable) {
    PrintStructured(ToJson(*t), *format, std::cout);
    return kExitOk;
  }
  std::cout << "name           " << t->name() << "\n"
            << "compute        " << f.compute << "\n"
            << "node selector  " << Selector(*t) << "\n"
            << "requests       cpu " << t->requests().cpu().original() << ", memory "
            << t->requests().memory().original() << "\n"
            << "limits         cpu " << t->limits().cpu().original() << ", memory "
            << t->limits().memory().original() << ", nvidia.com/gpu " << t->limits().gpu() << "\n";
  if (!t->source().file().empty()) {
    std::cout << "defined in     " << t->source().file() << ":" << t->source().line() << "\n";
  } else {
    std::cout << "defined in     built in (Azure ML's default)\n";
  }
  return kExitOk;
}

}  // namespace

void AddInstanceTypeCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code) {
  CLI::App* it =
      app.add_subcommand("instance-type", "Curate the instance types of a compute target");
  it->require_subcommand(1);
  auto f = std::make_shared<InstanceTypeFlags>();

  CLI::App* apply = it->add_subcommand("apply", "Create or update instance types from YAML");
  apply->add_option("-f,--file", f->file, "InstanceType or InstanceTypeList YAML")->required();
  apply->add_option("--compute", f->compute, "Compute target")->capture_default_str();
  apply->callback([&flags, f, exit_code] { *exit_code = Apply(flags, *f); });

  CLI::App* list = it->add_subcommand("list", "List a compute target's instance types");
  list->add_option("--compute", f->compute, "Compute target")->capture_default_str();
  list->add_option("-o,--output", f->output, "table (default), json or yaml");
  list->callback([&flags, f, exit_code] { *exit_code = List(flags, *f); });

  CLI::App* show = it->add_subcommand("show", "Show one instance type");
  show->add_option("name", f->name, "Instance type name")->required();
  show->add_option("--compute", f->compute, "Compute target")->capture_default_str();
  show->add_option("-o,--output", f->output, "table (default), json or yaml");
  show->callback([&flags, f, exit_code] { *exit_code = Show(flags, *f); });
}

}  // namespace kubetrain::cli
