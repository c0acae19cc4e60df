// `kubetrain workspace ...`: serve.
#include <string>

#include "launcher/cli/cli.h"

namespace kubetrain::cli {

void AddWorkspaceCommands(CLI::App& app, const GlobalFlags& flags, int* exit_code) {
  CLI::App* ws = app.add_subcommand("workspace", "Serve the workspace to agents on other machines");
  ws->require_subcommand(1);

  static std::string listen = "127.0.0.1:7070", tls_cert, tls_key;
  CLI::App* serve = ws->add_subcommand("serve", "Serve this workspace over gRPC");
  serve->add_option("--listen", listen, "Address to listen on")->capture_default_str();
  serve->add_option("--tls-cert", tls_cert, "PEM certificate for TLS");
  serve->add_option("--tls-key", tls_key, "PEM private key for TLS");
  serve->callback([exit_code] { *exit_code = NotImplemented("workspace serve"); });
}

}  // namespace kubetrain::cli
