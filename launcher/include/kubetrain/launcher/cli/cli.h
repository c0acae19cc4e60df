// The `kubetrain` command line.
//
// RunCli parses argv, dispatches to the command group that owns the subcommand and returns the
// process exit code: 0 success, 1 the command ran and failed (invalid job file, failed job), 2
// usage errors. Each command group lives in its own file and registers its subcommands through an
// Add*Commands function.
//
// Thread-safety: RunCli is meant to be called once, from main.
#ifndef KUBETRAIN_LAUNCHER_CLI_CLI_H_
#define KUBETRAIN_LAUNCHER_CLI_CLI_H_

#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kubetrain/storage/workspace.h"
#include "kubetrain/v1/compute.pb.h"

namespace kubetrain::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Flags every subcommand accepts.
struct GlobalFlags {
  std::string workspace;           // --workspace / KUBETRAIN_WORKSPACE; default ~/.kubetrain
  std::string log_level = "warn";  // --log-level
};

int RunCli(int argc, char** argv);

// Command groups. Each adds its subcommands to `app`; the subcommand's callback stores its exit
// code in `*exit_code`. `flags` is filled in by the parser before any callback runs.
void AddJobCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code);
void AddComputeCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code);
void AddInstanceTypeCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code);
void AddDatastoreCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code);
void AddDataCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code);
void AddEnvironmentCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code);
void AddWorkspaceCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code);

// Opens the workspace the flags name: a directory (default ~/.kubetrain) or a workspace server
// (grpc://HOST:PORT, grpcs://HOST:PORT; credentials from the environment, see
// kubetrain/storage/grpc_workspace.h). `connect_timeout` > 0 replaces how long a call waits for an
// unreachable server (a supervisor waits out a server restart; a person's command does not).
absl::StatusOr<std::unique_ptr<storage::Workspace>> OpenWorkspace(
    const GlobalFlags& flags, absl::Duration connect_timeout = absl::ZeroDuration());

// The workspace the flags name: an absolute directory, or the grpc:// / grpcs:// location as given.
std::string WorkspacePath(const GlobalFlags& flags);

// Where this machine keeps its files of the jobs it runs (job folders, agent logs, outputs): the
// workspace directory itself, or, with a workspace server, $HOME/.kubetrain.
std::string LocalDir(const GlobalFlags& flags);

// This binary, and the kubetrain-worker beside it ($KUBETRAIN_WORKER overrides).
std::string SelfPath();
std::string WorkerPath();

}  // namespace kubetrain::cli

#endif  // KUBETRAIN_LAUNCHER_CLI_CLI_H_
