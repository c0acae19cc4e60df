// `kubetrain job ...`: create, validate, show, list, stream, logs, metrics, checkpoints, cancel.
#include <signal.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kubetrain/common/logging.h"
#include "kubetrain/launcher/backends/kubernetes/yaml_out.h"
#include "kubetrain/launcher/cli/cli.h"
#include "kubetrain/launcher/cli/data_check.h"
#include "kubetrain/launcher/cli/follow.h"
#include "kubetrain/launcher/cli/job_view.h"
#include "kubetrain/launcher/cli/metrics_view.h"
#include "kubetrain/launcher/cli/output.h"
#include "kubetrain/launcher/compute/assets.h"
#include "kubetrain/launcher/compute/resolve.h"
#include "kubetrain/launcher/compute/targets.h"
#include "kubetrain/launcher/jobs/job_supervisor.h"
#include "kubetrain/launcher/jobs/launch.h"
#include "kubetrain/launcher/jobs/submit.h"
#include "kubetrain/launcher/spec/job_parser.h"
#include "spdlog/spdlog.h"

namespace kubetrain::cli {
namespace {

struct JobFlags {
  std::string file, name, output, key;
  std::vector<std::string> sets;
  bool stream = false;
  bool follow = false;
  bool dry_run = false;
  int rank = -1;
};

// Parses, resolves and prints diagnostics; nullopt (after printing) when the job is invalid.
std::optional<std::pair<v1::JobSpec, compute::ResolvedJob>> ParseAndResolve(storage::Workspace& ws,
                                                                            const JobFlags& f) {
  spec::JobParseResult parsed = spec::ParseJobFile(f.file, {f.sets});
  std::optional<compute::ResolvedJob> resolved;
  if (!parsed.diagnostics.has_errors()) {
    auto targets = compute::LoadComputeTargets(ws);
    if (!targets.ok()) {
      PrintError(targets.status());
      return std::nullopt;
    }
    resolved = compute::ResolveJob(parsed.spec, *targets, parsed.diagnostics);
    // Data assets and the environment before the data checks, which then see the assets' paths.
    compute::ResolveJobAssets(ws, resolved ? &resolved->target : nullptr, &parsed.spec,
                              parsed.diagnostics);
    CheckDataPaths(parsed.spec, ws, parsed.diagnostics);
  }
  std::cerr << parsed.diagnostics.Format();
  if (parsed.diagnostics.has_errors()) {
    int n = parsed.diagnostics.error_count();
    std::cerr << f.file << ": " << n << " error" << (n == 1 ? "" : "s") << "\n";
    return std::nullopt;
  }
  return std::make_pair(std::move(parsed.spec), std::move(*resolved));
}

// `job create --dry-run -o yaml|json`: the objects a Kubernetes target would get, created nowhere
// (jobs::DryRunObjects renders them as a launch would).
int DryRun(const GlobalFlags& global, const JobFlags& f, v1::JobSpec spec,
           const compute::ResolvedJob& resolved) {
  std::string format = f.output.empty() ? "yaml" : f.output;
  if (format != "yaml" && format != "json") {
    PrintError(absl::InvalidArgumentError(
        absl::StrCat("-o '", f.output, "' with --dry-run: use yaml (default) or json")));
    return kExitUsage;
  }
  jobs::BackendOptions options;
  options.workspace_uri = WorkspacePath(global);
  options.warn = [](const std::string& w) { std::cerr << "kubetrain: warning: " << w << "\n"; };
  absl::StatusOr<std::vector<nlohmann::json>> objects =
      jobs::DryRunObjects(std::move(spec), resolved, options);
  if (!objects.ok()) {
    PrintError(objects.status());
    return absl::IsInvalidArgument(objects.status()) ? kExitUsage : kExitFailure;
  }
  if (format == "json") {
    std::cout << nlohmann::json{{"apiVersion", "v1"}, {"kind", "List"}, {"items", *objects}}.dump(2)
              << "\n";
  } else {
    std::cout << backends::kubernetes::ToYamlDocuments(*objects);
  }
  return kExitOk;
}

int Create(const GlobalFlags& global, const JobFlags& f) {
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  auto job = ParseAndResolve(**ws, f);
  if (!job) return kExitFailure;
  auto& [spec, resolved] = *job;
  if (!f.name.empty()) spec.set_name(f.name);
  if (absl::Status fits = jobs::CheckCanEverFit(spec, resolved.target, resolved.instance_type);
      !fits.ok()) {
    std::cerr << f.file << ": error: resources: " << fits.message() << "\n";
    return kExitFailure;
  }
  if (f.dry_run) return DryRun(global, f, spec, resolved);
  if (!f.output.empty()) {
    PrintError(absl::InvalidArgumentError("-o is for --dry-run (it prints the objects)"));
    return kExitUsage;
  }
  jobs::SubmitOptions options;
  options.workspace_path = LocalDir(global);  // job folders; with a server, on this machine
  // The supervisor inherits this environment, so it reaches a workspace server with the same
  // credentials (KUBETRAIN_WORKSPACE_TOKEN / _FILE); they never go on its command line.
  options.supervisor_argv = {
      SelfPath(), "--workspace", WorkspacePath(global), "--log-level", "info", "job", "supervise"};
  absl::StatusOr<v1::JobRecord> record = jobs::SubmitJob(**ws, spec, options);
  if (!record.ok()) return PrintError(record.status()), kExitFailure;
  std::cout << "job " << record->spec().name() << " submitted to compute "
            << record->spec().compute() << " (" << Ranks(record->spec()) << ")\n";
  if (!f.stream) {
    std::cout << "follow it with `kubetrain job stream " << record->spec().name() << "`\n";
    return kExitOk;
  }
  return FollowJob(**ws, record->spec().name(), std::cout);
}

std::atomic<bool> g_stop{false};
void OnStop(int) { g_stop.store(true); }

int Supervise(const GlobalFlags& global, const JobFlags& f) {
  // A supervisor outlives a restart of the workspace server: its calls wait for it to return.
  auto ws = OpenWorkspace(global, absl::Minutes(10));
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  common::SetLogContext({f.name, -1, -1});
  struct sigaction sa {};
  sa.sa_handler = OnStop;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  jobs::SupervisorRun run;
  run.backend.workspace_uri = WorkspacePath(global);
  run.backend.workspace = ws->get();
  run.backend.worker_binary = WorkerPath();
  run.backend.warn = [](const std::string& w) { spdlog::warn("{}", w); };
  run.stop = &g_stop;
  absl::StatusOr<v1::JobRecord> end = jobs::RunSupervisor(**ws, f.name, run);
  if (!end.ok()) {
    spdlog::error("supervising the job failed: {}", end.status().ToString());
    return kExitFailure;
  }
  spdlog::info("job ended: {}", StatusLine(*end));
  return end->status().state() == v1::JOB_STATE_COMPLETED ? kExitOk : kExitFailure;
}

int List(const GlobalFlags& global, const JobFlags& f) {
  auto format = ParseOutputFormat(f.output);
  if (!format.ok()) return PrintError(format.status()), kExitUsage;
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  auto all = (*ws)->ListJobs();
  if (!all.ok()) return PrintError(all.status()), kExitFailure;
  if (*format != OutputFormat::kTable) {
    PrintStructured(ToJsonArray(*all), *format, std::cout);
  } else {
    PrintJobTable(*all, std::cout);
  }
  return kExitOk;
}

int Show(const GlobalFlags& global, const JobFlags& f) {
  auto format = ParseOutputFormat(f.output);
  if (!format.ok()) return PrintError(format.status()), kExitUsage;
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  auto job = (*ws)->GetJob(f.name);
  if (!job.ok()) return PrintError(job.status()), kExitFailure;
  auto metrics = (*ws)->MetricSummary(f.name);
  if (!metrics.ok()) return PrintError(metrics.status()), kExitFailure;
  auto checkpoints = (*ws)->ListCheckpoints(f.name);
  if (!checkpoints.ok()) return PrintError(checkpoints.status()), kExitFailure;
  if (*format != OutputFormat::kTable) {
    nlohmann::json out = ToJson(*job);
    if (!metrics->empty()) out["metrics"] = MetricSummaryJson(*metrics);
    if (!checkpoints->empty()) out["checkpoints"] = ToJsonArray(*checkpoints);
    PrintStructured(out, *format, std::cout);
  } else {
    PrintJobDetails(*job, std::cout);
    if (!metrics->empty()) {
      std::cout << "\nMetrics (latest; `kubetrain job metrics " << f.name << " --key KEY` for "
                << "a history):\n";
      PrintMetricSummaryTable(*metrics, std::cout);
    }
    if (!checkpoints->empty()) {
      std::cout << "\ncheckpoints\n";
      PrintCheckpointTable(*checkpoints, "  ", std::cout);
    }
  }
  return kExitOk;
}

// `job checkpoints NAME [-o json|yaml]`.
int Checkpoints(const GlobalFlags& global, const JobFlags& f) {
  auto format = ParseOutputFormat(f.output);
  if (!format.ok()) return PrintError(format.status()), kExitUsage;
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  auto job = (*ws)->GetJob(f.name);  // NotFound names the job
  if (!job.ok()) return PrintError(job.status()), kExitFailure;
  auto checkpoints = (*ws)->ListCheckpoints(f.name);
  if (!checkpoints.ok()) return PrintError(checkpoints.status()), kExitFailure;
  if (*format != OutputFormat::kTable) {
    PrintStructured(ToJsonArray(*checkpoints), *format, std::cout);
  } else if (checkpoints->empty()) {
    std::cout << "job " << f.name << " has no complete checkpoint yet (ranks save them under "
              << "KUBETRAIN_CHECKPOINT_DIR, " << job->job_dir() << "/checkpoints by default)\n";
  } else {
    PrintCheckpointTable(*checkpoints, "", std::cout);
  }
  return kExitOk;
}

// `job metrics NAME [--key KEY] [-o table|csv|json]`.
int Metrics(const GlobalFlags& global, const JobFlags& f) {
  const std::string& o = f.output;
  if (!o.empty() && o != "table" && o != "csv" && o != "json") {
    PrintError(absl::InvalidArgumentError(
        absl::StrCat("--output '", o, "': use table (default), csv or json")));
    return kExitUsage;
  }
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  if (auto job = (*ws)->GetJob(f.name); !job.ok()) return PrintError(job.status()), kExitFailure;
  if (f.key.empty()) {
    auto summary = (*ws)->MetricSummary(f.name);
    if (!summary.ok()) return PrintError(summary.status()), kExitFailure;
    if (o == "csv") {
      PrintMetricSummaryCsv(*summary, std::cout);
    } else if (o == "json") {
      std::cout << MetricSummaryJson(*summary).dump(2) << "\n";
    } else if (summary->empty()) {
      std::cout << "job " << f.name << " has logged no metrics\n";
    } else {
      PrintMetricSummaryTable(*summary, std::cout);
    }
    return kExitOk;
  }
  auto history = (*ws)->MetricHistory(f.name, f.key);
  if (!history.ok()) return PrintError(history.status()), kExitFailure;
  if (history->empty() && o.empty()) {
    auto summary = (*ws)->MetricSummary(f.name);
    std::vector<std::string> keys;
    if (summary.ok()) {
      for (const auto& s : *summary) keys.push_back(s.key);
    }
    PrintError(absl::NotFoundError(absl::StrCat(
        "job ", f.name, " has no metric '", f.key, "'",
        keys.empty() ? std::string("; it logged none")
                     : absl::StrCat("; its metrics are: ", absl::StrJoin(keys, ", ")))));
    return kExitFailure;
  }
  if (o == "csv") {
    PrintMetricHistoryCsv(*history, std::cout);
  } else if (o == "json") {
    std::cout << nlohmann::json{{"key", f.key}, {"points", MetricHistoryJson(*history)}}.dump(2)
              << "\n";
  } else {
    PrintMetricHistory(f.key, *history, TerminalWidth(), 20, std::cout);
  }
  return kExitOk;
}

int Stream(const GlobalFlags& global, const JobFlags& f) {
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  return FollowJob(**ws, f.name, std::cout);
}

int Logs(const GlobalFlags& global, const JobFlags& f) {
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  if (auto job = (*ws)->GetJob(f.name); !job.ok()) return PrintError(job.status()), kExitFailure;
  if (f.follow) return FollowLogs(**ws, f.name, f.rank, std::cout);
  storage::LogQuery q;
  q.job = f.name;
  q.rank = f.rank;
  while (true) {
    absl::StatusOr<storage::LogPage> page = (*ws)->ReadLogs(q);
    if (!page.ok()) return PrintError(page.status()), kExitFailure;
    if (page->lines.empty()) break;
    for (const v1::LogLine& l : page->lines) std::cout << FormatLogLine(l) << "\n";
    q.after_id = page->next_id;
  }
  return kExitOk;
}

int Cancel(const GlobalFlags& global, const JobFlags& f) {
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  absl::StatusOr<v1::JobRecord> job = jobs::CancelJob(**ws, f.name);
  if (!job.ok()) return PrintError(job.status()), kExitFailure;
  std::cout << "job " << f.name
            << (job->status().state() == v1::JOB_STATE_CANCELED
                    ? " canceled"
                    : " is being canceled; its ranks are being stopped")
            << "\n";
  return kExitOk;
}

int Validate(const GlobalFlags& global, const JobFlags& f) {
  auto format = ParseOutputFormat(f.output);
  if (!format.ok()) return PrintError(format.status()), kExitUsage;
  auto ws = OpenWorkspace(global);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  auto job = ParseAndResolve(**ws, f);
  if (!job) return kExitFailure;
  const auto& [spec, resolved] = *job;
  if (*format != OutputFormat::kTable) {
    PrintStructured(ResolvedJobJson(spec, resolved.instance_type), *format, std::cout);
  } else {
    PrintResolvedJob(spec, resolved.instance_type, std::cout);
  }
  if (absl::Status fits = jobs::CheckCanEverFit(spec, resolved.target, resolved.instance_type);
      !fits.ok()) {
    std::cerr << f.file << ": error: resources: " << fits.message() << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

void AddJobCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code) {
  CLI::App* job = app.add_subcommand("job", "Create, inspect and control training jobs");
  job->require_subcommand(1);
  auto f = std::make_shared<JobFlags>();

  CLI::App* create = job->add_subcommand(
      "create", "Submit a job from an Azure ML command-job YAML and run it on its compute");
  create->add_option("-f,--file", f->file, "The job YAML")->required();
  create->add_option("--name", f->name,
                     "Job name (default: the file's `name:` or a generated one)");
  create->add_option("--set", f->sets, "Override a field, e.g. --set compute=local");
  create->add_flag("--stream", f->stream,
                   "Follow the job's logs until it ends; exit 0 iff completed");
  create->add_flag("--dry-run", f->dry_run,
                   "Kubernetes: print the objects the job would create, create nothing");
  create->add_option("-o,--output", f->output, "with --dry-run: yaml (default) or json");
  create->callback([&flags, f, exit_code] { *exit_code = Create(flags, *f); });

  CLI::App* supervise = job->add_subcommand("supervise", "Run a submitted job (internal)");
  supervise->group("");  // started by `job create`, not by people
  supervise->add_option("name", f->name, "Job name")->required();
  supervise->callback([&flags, f, exit_code] { *exit_code = Supervise(flags, *f); });

  CLI::App* validate = job->add_subcommand(
      "validate", "Check a job YAML and print the resolved job, or every error in it");
  validate->add_option("-f,--file", f->file, "The job YAML")->required();
  validate->add_option("--set", f->sets, "Override a field, e.g. --set compute=local");
  validate->add_option("-o,--output", f->output, "table (default), json or yaml");
  validate->callback([&flags, f, exit_code] { *exit_code = Validate(flags, *f); });

  CLI::App* show = job->add_subcommand("show", "Show a job: spec, placement, status per rank");
  show->add_option("name", f->name, "Job name")->required();
  show->add_option("-o,--output", f->output, "table (default), json or yaml");
  show->callback([&flags, f, exit_code] { *exit_code = Show(flags, *f); });

  CLI::App* list = job->add_subcommand("list", "List jobs with status, compute and duration");
  list->add_option("-o,--output", f->output, "table (default), json or yaml");
  list->callback([&flags, f, exit_code] { *exit_code = List(flags, *f); });

  CLI::App* stream = job->add_subcommand("stream", "Follow a job's logs until it ends");
  stream->add_option("name", f->name, "Job name")->required();
  stream->callback([&flags, f, exit_code] { *exit_code = Stream(flags, *f); });

  CLI::App* logs = job->add_subcommand("logs", "Print a job's captured logs");
  logs->add_option("name", f->name, "Job name")->required();
  logs->add_option("--rank", f->rank, "Only this rank");
  logs->add_flag("-f,--follow", f->follow, "Keep printing lines as they arrive until the job ends");
  logs->callback([&flags, f, exit_code] { *exit_code = Logs(flags, *f); });

  CLI::App* metrics = job->add_subcommand("metrics", "Show a job's metrics");
  metrics->add_option("name", f->name, "Job name")->required();
  metrics->add_option("--key", f->key, "Show the history of one metric, with a chart");
  metrics->add_option("-o,--output", f->output, "table (default), csv or json");
  metrics->callback([&flags, f, exit_code] { *exit_code = Metrics(flags, *f); });

  CLI::App* checkpoints =
      job->add_subcommand("checkpoints", "List a job's complete checkpoints (newest last)");
  checkpoints->add_option("name", f->name, "Job name")->required();
  checkpoints->add_option("-o,--output", f->output, "table (default), json or yaml");
  checkpoints->callback([&flags, f, exit_code] { *exit_code = Checkpoints(flags, *f); });

  CLI::App* cancel = job->add_subcommand("cancel", "Stop a queued or running job");
  cancel->add_option("name", f->name, "Job name")->required();
  cancel->callback([&flags, f, exit_code] { *exit_code = Cancel(flags, *f); });
}

}  // namespace kubetrain::cli
