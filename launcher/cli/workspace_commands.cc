// `kubetrain workspace ...`: serve.
//
// `workspace serve` serves the embedded workspace (--workspace DIR, default ~/.kubetrain) to
// agents, supervisors and the CLI on other machines (`--workspace grpc://HOST:PORT`). Its access
// token is generated at the first start, kept in DIR/server.token (mode 0600) and printed that
// once; give it to clients as KUBETRAIN_WORKSPACE_TOKEN or KUBETRAIN_WORKSPACE_TOKEN_FILE. It runs
// until SIGINT or SIGTERM.
#include <signal.h>

#include <iostream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kubetrain/launcher/cli/cli.h"
#include "kubetrain/launcher/cli/output.h"
#include "kubetrain/storage/grpc_workspace.h"
#include "kubetrain/storage/tokens.h"
#include "kubetrain/storage/workspace_server.h"
#include "spdlog/spdlog.h"

namespace kubetrain::cli {
namespace {

struct ServeFlags {
  std::string listen = "127.0.0.1:7070";
  std::string tls_cert, tls_key;
};

int Serve(const GlobalFlags& global, const ServeFlags& f) {
  const std::string dir = WorkspacePath(global);
  if (storage::IsRemoteWorkspace(dir)) {
    PrintError(absl::InvalidArgumentError(
        absl::StrCat("workspace serve serves a workspace directory, not ", dir,
                     "; give --workspace DIR (default ~/.kubetrain)")));
    return kExitUsage;
  }
  auto ws = storage::OpenEmbeddedWorkspace(dir);
  if (!ws.ok()) return PrintError(ws.status()), kExitFailure;
  const std::string token_file = dir + "/server.token";
  bool created = false;
  absl::StatusOr<std::string> token = storage::LoadOrCreateServerToken(token_file, &created);
  if (!token.ok()) return PrintError(token.status()), kExitFailure;

  // SIGINT / SIGTERM are taken by sigwait below; block them before the server starts its threads.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  storage::WorkspaceServerOptions options;
  options.listen = f.listen;
  options.token = *token;
  options.tls_cert_file = f.tls_cert;
  options.tls_key_file = f.tls_key;
  auto server = storage::StartWorkspaceServer(ws->get(), options);
  if (!server.ok()) return PrintError(server.status()), kExitFailure;

  std::cout << "serving workspace " << dir << " at " << (*server)->location()
            << (f.tls_cert.empty() ? " (plain TCP)" : " (TLS)") << "\n";
  if (created) {
    std::cout << "access token (shown this once; kept in " << token_file
              << ", readable only by you):\n  " << *token << "\n";
  } else {
    std::cout << "access token: in " << token_file << " (readable only by you)\n";
  }
  std::cout << "clients: KUBETRAIN_WORKSPACE=" << (*server)->location()
            << " KUBETRAIN_WORKSPACE_TOKEN_FILE=<a copy of the token file> kubetrain job list\n"
            << std::flush;
  if (f.tls_cert.empty() && !absl::StartsWith(f.listen, "127.") &&
      !absl::StartsWith(f.listen, "localhost:") && !absl::StartsWith(f.listen, "[::1]")) {
    spdlog::warn(
        "serving on {} without TLS: tokens and data cross the network in plain text; "
        "give --tls-cert and --tls-key",
        f.listen);
  }
  int sig = 0;
  sigwait(&stop, &sig);
  std::cout << "stopping (" << strsignal(sig) << ")\n" << std::flush;
  (*server)->Shutdown(absl::Seconds(2));
  return kExitOk;
}

}  // namespace

void AddWorkspaceCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code) {
  CLI::App* ws = app.add_subcommand("workspace", "Serve the workspace to agents on other machines");
  ws->require_subcommand(1);

  auto f = std::make_shared<ServeFlags>();
  CLI::App* serve = ws->add_subcommand(
      "serve", "Serve this workspace over gRPC (clients use --workspace grpc://HOST:PORT)");
  serve->add_option("--listen", f->listen, "HOST:PORT to listen on (port 0: any free one)")
      ->capture_default_str();
  serve->add_option("--tls-cert", f->tls_cert, "PEM certificate: serve TLS only (grpcs://)");
  serve->add_option("--tls-key", f->tls_key, "PEM private key of --tls-cert");
  serve->callback([&flags, f, exit_code] { *exit_code = Serve(flags, *f); });
}

}  // namespace kubetrain::cli
