// `kubetrain job ...`: create, validate, show, list, stream, logs, metrics, cancel.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "launcher/cli/cli.h"
#include "launcher/cli/job_view.h"
#include "launcher/cli/output.h"
#include "launcher/compute/targets.h"
#include "launcher/compute/resolve.h"
#include "launcher/spec/job_parser.h"

namespace kubetrain::cli {
namespace {

struct JobFlags {
  std::string file, name, output, key;
  std::vector<std::string> sets;
  bool stream = false;
  int rank = -1;
};

int Validate(const GlobalFlags& global, const JobFlags& f) {
  auto format = ParseOutputFormat(f.output);
  if (!format.ok()) return PrintError(format.status()), kExitUsage;
  spec::JobParseResult parsed = spec::ParseJobFile(f.file, {f.sets});
  std::optional<compute::ResolvedJob> resolved;
  if (!parsed.diagnostics.has_errors()) {
    auto ws = OpenWorkspace(global);
    if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
    auto targets = compute::LoadComputeTargets(**ws);
    if (!targets.ok()) return PrintError(targets.status()), kExitFailure;
    resolved = compute::ResolveJob(parsed.spec, *targets, parsed.diagnostics);
  }
  std::cerr << parsed.diagnostics.Format();
  if (parsed.diagnostics.has_errors()) {
    int n = parsed.diagnostics.error_count();
    std::cerr << f.file << ": " << n << " error" << (n == 1 ? "" : "s") << "\n";
    return kExitFailure;
  }
  if (*format != OutputFormat::kTable) {
    PrintStructured(ResolvedJobJson(parsed.spec, resolved->instance_type), *format, std::cout);
  } else {
    PrintResolvedJob(parsed.spec, resolved->instance_type, std::cout);
  }
  return kExitOk;
}

}  // namespace

void AddJobCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code) {
  CLI::App* job = app.add_subcommand("job", "Create, inspect and control training jobs");
  job->require_subcommand(1);
  auto f = std::make_shared<JobFlags>();
  auto not_yet = [exit_code](CLI::App* cmd, std::string what) {
    cmd->callback([exit_code, what] { *exit_code = NotImplemented(what); });
  };

  CLI::App* create = job->add_subcommand(
      "create", "Submit a job from an Azure ML command-job YAML and run it on its compute");
  create->add_option("-f,--file", f->file, "The job YAML")->required();
  create->add_option("--name", f->name, "Job name (default: the file's `name:` or a generated one)");
  create->add_option("--set", f->sets, "Override a field, e.g. --set compute=local");
  create->add_flag("--stream", f->stream, "Follow the job's logs until it ends; exit 0 iff completed");
  not_yet(create, "job create");

  CLI::App* validate = job->add_subcommand(
      "validate", "Check a job YAML and print the resolved job, or every error in it");
  validate->add_option("-f,--file", f->file, "The job YAML")->required();
  validate->add_option("--set", f->sets, "Override a field, e.g. --set compute=local");
  validate->add_option("-o,--output", f->output, "table (default), json or yaml");
  validate->callback([&flags, f, exit_code] { *exit_code = Validate(flags, *f); });

  CLI::App* show = job->add_subcommand("show", "Show a job: spec, placement, status per rank");
  show->add_option("name", f->name, "Job name")->required();
  show->add_option("-o,--output", f->output, "table (default), json or yaml");
  not_yet(show, "job show");

  CLI::App* list = job->add_subcommand("list", "List jobs with status, compute and duration");
  list->add_option("-o,--output", f->output, "table (default), json or yaml");
  not_yet(list, "job list");

  CLI::App* stream = job->add_subcommand("stream", "Follow a job's logs until it ends");
  stream->add_option("name", f->name, "Job name")->required();
  not_yet(stream, "job stream");

  CLI::App* logs = job->add_subcommand("logs", "Print a job's captured logs");
  logs->add_option("name", f->name, "Job name")->required();
  logs->add_option("--rank", f->rank, "Only this rank");
  not_yet(logs, "job logs");

  CLI::App* metrics = job->add_subcommand("metrics", "Show a job's metrics");
  metrics->add_option("name", f->name, "Job name")->required();
  metrics->add_option("--key", f->key, "Show the history of one metric, with a chart");
  metrics->add_option("-o,--output", f->output, "table (default), csv or json");
  not_yet(metrics, "job metrics");

  CLI::App* cancel = job->add_subcommand("cancel", "Stop a queued or running job");
  cancel->add_option("name", f->name, "Job name")->required();
  not_yet(cancel, "job cancel");
}

}  // namespace kubetrain::cli
