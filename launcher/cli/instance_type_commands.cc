// `kubetrain instance-type ...`: apply, list, show.
#include <string>

#include "launcher/cli/cli.h"

namespace kubetrain::cli {

void AddInstanceTypeCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code) {
  CLI::App* it = app.add_subcommand("instance-type", "Curate the instance types of a compute target");
  it->require_subcommand(1);

  static std::string file, name, compute = "local", output;

  CLI::App* apply = it->add_subcommand("apply", "Create or update instance types from YAML");
  apply->add_option("-f,--file", file, "InstanceType or InstanceTypeList YAML")->required();
  apply->add_option("--compute", compute, "Compute target")->capture_default_str();
  apply->callback([exit_code] { *exit_code = NotImplemented("instance-type apply"); });

  CLI::App* list = it->add_subcommand("list", "List a compute target's instance types");
  list->add_option("--compute", compute, "Compute target")->capture_default_str();
  list->add_option("-o,--output", output, "table (default), json or yaml");
  list->callback([exit_code] { *exit_code = NotImplemented("instance-type list"); });

  CLI::App* show = it->add_subcommand("show", "Show one instance type");
  show->add_option("name", name, "Instance type name")->required();
  show->add_option("--compute", compute, "Compute target")->capture_default_str();
  show->add_option("-o,--output", output, "table (default), json or yaml");
  show->callback([exit_code] { *exit_code = NotImplemented("instance-type show"); });
}

}  // namespace kubetrain::cli
