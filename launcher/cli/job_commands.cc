// `kubetrain job ...`: create, validate, show, list, stream, logs, metrics, cancel.
#include <string>
#include <vector>

#include "launcher/cli/cli.h"

namespace kubetrain::cli {

void AddJobCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code) {
  CLI::App* job = app.add_subcommand("job", "Create, inspect and control training jobs");
  job->require_subcommand(1);

  auto not_yet = [exit_code](CLI::App* cmd, std::string what) {
    cmd->callback([exit_code, what] { *exit_code = NotImplemented(what); });
  };

  static std::string file, name, output;
  static std::vector<std::string> sets;
  static bool stream = false;
  static int rank = -1;
  static std::string key;

  CLI::App* create = job->add_subcommand(
      "create", "Submit a job from an Azure ML command-job YAML and run it on its compute");
  create->add_option("-f,--file", file, "The job YAML")->required();
  create->add_option("--name", name, "Job name (default: the file's `name:` or a generated one)");
  create->add_option("--set", sets, "Override a field, e.g. --set compute=local");
  create->add_flag("--stream", stream, "Follow the job's logs until it ends; exit 0 iff completed");
  not_yet(create, "job create");

  CLI::App* validate = job->add_subcommand(
      "validate", "Check a job YAML and print the resolved job, or every error in it");
  validate->add_option("-f,--file", file, "The job YAML")->required();
  validate->add_option("--set", sets, "Override a field, e.g. --set compute=local");
  validate->add_option("-o,--output", output, "table (default), json or yaml");
  not_yet(validate, "job validate");

  CLI::App* show = job->add_subcommand("show", "Show a job: spec, placement, status per rank");
  show->add_option("name", name, "Job name")->required();
  show->add_option("-o,--output", output, "table (default), json or yaml");
  not_yet(show, "job show");

  CLI::App* list = job->add_subcommand("list", "List jobs with status, compute and duration");
  list->add_option("-o,--output", output, "table (default), json or yaml");
  not_yet(list, "job list");

  CLI::App* stream_cmd = job->add_subcommand("stream", "Follow a job's logs until it ends");
  stream_cmd->add_option("name", name, "Job name")->required();
  not_yet(stream_cmd, "job stream");

  CLI::App* logs = job->add_subcommand("logs", "Print a job's captured logs");
  logs->add_option("name", name, "Job name")->required();
  logs->add_option("--rank", rank, "Only this rank");
  not_yet(logs, "job logs");

  CLI::App* metrics = job->add_subcommand("metrics", "Show a job's metrics");
  metrics->add_option("name", name, "Job name")->required();
  metrics->add_option("--key", key, "Show the history of one metric, with a chart");
  metrics->add_option("-o,--output", output, "table (default), csv or json");
  not_yet(metrics, "job metrics");

  CLI::App* cancel = job->add_subcommand("cancel", "Stop a queued or running job");
  cancel->add_option("name", name, "Job name")->required();
  not_yet(cancel, "job cancel");
}

}  // namespace kubetrain::cli
