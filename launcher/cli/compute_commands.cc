// `kubetrain compute ...`: attach, list, show.
#include <string>

#include "launcher/cli/cli.h"

namespace kubetrain::cli {

void AddComputeCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code) {
  CLI::App* compute = app.add_subcommand("compute", "Attach and inspect compute targets");
  compute->require_subcommand(1);

  static std::string name, type, kubeconfig, context, ns, nodes_file, output;

  CLI::App* attach = compute->add_subcommand(
      "attach", "Attach a compute target: this machine (with virtual nodes) or a Kubernetes namespace");
  attach->add_option("name", name, "Name jobs use in `compute:`")->required();
  attach->add_option("--type", type, "local or kubernetes")->required();
  attach->add_option("--nodes", nodes_file, "local: a YAML list of virtual nodes");
  attach->add_option("--kubeconfig", kubeconfig, "kubernetes: path of the kubeconfig");
  attach->add_option("--context", context, "kubernetes: context (default: current-context)");
  attach->add_option("--namespace", ns, "kubernetes: namespace the jobs run in");
  attach->callback([exit_code] { *exit_code = NotImplemented("compute attach"); });

  CLI::App* list = compute->add_subcommand("list", "List compute targets");
  list->add_option("-o,--output", output, "table (default), json or yaml");
  list->callback([exit_code] { *exit_code = NotImplemented("compute list"); });

  CLI::App* show = compute->add_subcommand("show", "Show a compute target's nodes and capacity");
  show->add_option("name", name, "Compute name")->required();
  show->add_option("-o,--output", output, "table (default), json or yaml");
  show->callback([exit_code] { *exit_code = NotImplemented("compute show"); });
}

}  // namespace kubetrain::cli
