#include "kubetrain/launcher/cli/cli.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kubetrain/common/logging.h"
#include "kubetrain/storage/grpc_workspace.h"

namespace kubetrain::cli {

std::string WorkspacePath(const GlobalFlags& flags) {
  std::string path = flags.workspace.empty() ? storage::DefaultWorkspacePath() : flags.workspace;
  if (storage::IsRemoteWorkspace(path)) return path;
  if (absl::StartsWith(path, "file://")) path = path.substr(7);
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

std::string LocalDir(const GlobalFlags& flags) {
  std::string location = WorkspacePath(flags);
  if (!storage::IsRemoteWorkspace(location)) return location;
  const char* home = std::getenv("HOME");
  std::string dir = home != nullptr && home[0] != '\0' ? absl::StrCat(home, "/.kubetrain")
                                                       : std::string(".kubetrain");
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(dir, ec);
  return ec ? dir : abs.lexically_normal().string();
}

absl::StatusOr<std::unique_ptr<storage::Workspace>> OpenWorkspace(const GlobalFlags& flags,
                                                                  absl::Duration connect_timeout) {
  std::string location = WorkspacePath(flags);
  if (!storage::IsRemoteWorkspace(location)) return storage::OpenEmbeddedWorkspace(location);
  absl::StatusOr<storage::WorkspaceConnectOptions> options =
      storage::ConnectOptionsFromEnvironment();
  if (!options.ok()) return options.status();
  // A person's command says soon that the server is out of reach; a supervisor waits longer.
  options->connect_timeout =
      connect_timeout > absl::ZeroDuration() ? connect_timeout : absl::Seconds(5);
  return storage::OpenWorkspace(location, *options);
}

std::string SelfPath() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "kubetrain" : self.string();
}

std::string WorkerPath() {
  if (const char* env = std::getenv("KUBETRAIN_WORKER"); env != nullptr && *env != '\0') {
    return env;
  }
  return (std::filesystem::path(SelfPath()).parent_path() / "kubetrain-worker").string();
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
                 "Workspace: a directory (default ~/.kubetrain), or a workspace server: "
                 "grpc://host:port (grpcs:// for TLS); its token comes from "
                 "KUBETRAIN_WORKSPACE_TOKEN or KUBETRAIN_WORKSPACE_TOKEN_FILE")
      ->envname("KUBETRAIN_WORKSPACE");
  app.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();

  int exit_code = kExitOk;
  AddJobCommands(app, flags, &exit_code);
  AddComputeCommands(app, flags, &exit_code);
  AddInstanceTypeCommands(app, flags, &exit_code);
  AddDatastoreCommands(app, flags, &exit_code);
  AddDataCommands(app, flags, &exit_code);
  AddEnvironmentCommands(app, flags, &exit_code);
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
