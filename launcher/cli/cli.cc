#include "launcher/cli/cli.h"

#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

#include "kubetrain/common/logging.h"
#include "launcher/compute/nodes.h"

namespace kubetrain::cli {

int NotImplemented(const std::string& what) {
  std::cerr << "kubetrain " << what << ": not implemented yet\n";
  return kExitUsage;
}

absl::StatusOr<std::unique_ptr<storage::Workspace>> OpenWorkspace(const GlobalFlags& flags) {
  std::string path = flags.workspace.empty() ? storage::DefaultWorkspacePath() : flags.workspace;
  return storage::OpenEmbeddedWorkspace(path);
}

absl::StatusOr<std::vector<v1::ComputeTarget>> LoadComputeTargets(storage::Workspace& workspace) {
  absl::StatusOr<std::vector<v1::ComputeTarget>> targets = workspace.ListComputes();
  if (!targets.ok()) return targets.status();
  bool has_local = false;
  for (const v1::ComputeTarget& t : *targets) has_local |= t.name() == "local";
  if (!has_local) targets->insert(targets->begin(), compute::DefaultLocalCompute());
  return targets;
}

absl::StatusOr<v1::ComputeTarget> FindComputeTarget(storage::Workspace& workspace,
                                                    const std::string& name) {
  absl::StatusOr<std::vector<v1::ComputeTarget>> targets = LoadComputeTargets(workspace);
  if (!targets.ok()) return targets.status();
  std::vector<std::string> names;
  for (v1::ComputeTarget& t : *targets) {
    if (t.name() == name) return std::move(t);
    names.push_back(t.name());
  }
  return absl::NotFoundError(absl::StrCat("no compute target named \"", name, "\" (attached: ",
                                          absl::StrJoin(names, ", "), ")"));
}

int RunCli(int argc, char** argv) {
  CLI::App app{
      "kubetrain runs Azure ML command jobs (job.yml) as distributed training jobs on local or\n"
      "Kubernetes compute: gang placement on fixed nodes, MPI / PyTorch / TensorFlow ranks,\n"
      "metrics, logs and checkpoints in a workspace.",
      "kubetrain"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kubetrain 0.1.0");
  GlobalFlags flags;
  app.add_option("--workspace", flags.workspace,
                 "Workspace: a directory (default ~/.kubetrain) or grpc://host:port")
      ->envname("KUBETRAIN_WORKSPACE");
  app.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();

  int exit_code = kExitOk;
  AddJobCommands(app, flags, &exit_code);
  AddComputeCommands(app, flags, &exit_code);
  AddInstanceTypeCommands(app, flags, &exit_code);
  AddWorkspaceCommands(app, flags, &exit_code);
  app.parse_complete_callback([&flags] { common::InitLogging({}, flags.log_level); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  return exit_code;
}

}  // namespace kubetrain::cli
