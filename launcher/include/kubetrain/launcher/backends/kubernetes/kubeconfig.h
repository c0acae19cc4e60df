// Reading a kubeconfig: which API server to talk to and how to authenticate, for one context.
//
// Supported: clusters with `server`, `certificate-authority` (file) or `certificate-authority-data`
// (base64 PEM), `insecure-skip-tls-verify` (honoured, with a warning); users with `token`,
// `tokenFile`, `client-certificate` / `client-key` (files) or their `-data` forms (base64 PEM).
// Not supported, each an InvalidArgument that says what to do instead: `exec` credential plugins
// (e.g. kubelogin / aws-iam-authenticator), `auth-provider`, and `username` / `password`.
// Relative file paths resolve against the kubeconfig's folder, as kubectl does.
//
// Thread-safety: pure functions (they read files).
#ifndef KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_KUBECONFIG_H_
#define KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_KUBECONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kubetrain::backends::kubernetes {

// Everything needed to reach one API server as one user.
struct KubeConnection {
  std::string context;  // the context these came from
  std::string server;   // https://host:port (or http:// for a test server)
  std::string ca_pem;   // PEM bundle to verify the server with; empty = system CAs
  bool insecure_skip_tls_verify = false;
  std::string bearer_token;           // empty when the user authenticates with a client certificate
  std::string client_cert_pem;        // PEM
  std::string client_key_pem;         // PEM
  std::string default_namespace;      // the context's namespace, "" when it names none
  std::vector<std::string> warnings;  // one line each (insecure-skip-tls-verify)
};

// Reads `path` and resolves `context` (empty: the kubeconfig's current-context). The context errors
// are those of LoadKubeconfigContext.
absl::StatusOr<KubeConnection> LoadKubeconfig(const std::string& path, const std::string& context);

// The same, from text; `base_dir` resolves relative file references.
absl::StatusOr<KubeConnection> ParseKubeconfig(absl::string_view text, const std::string& origin,
                                               const std::string& base_dir,
                                               const std::string& context);

// Only resolves the context: `context`, or the kubeconfig's current-context when it is empty,
// checked against the contexts the kubeconfig defines; its clusters and users are not read (a
// context that names a missing cluster still resolves). Returns the context's name. Errors:
// NotFound "cannot read the kubeconfig <path>"; InvalidArgument "<path>:<line>: not valid YAML"
// or "<path> is not a kubeconfig (no mapping)"; InvalidArgument "<path> has no current-context;
// pass --context (one of: a, b)" when neither names one; NotFound "<path> has no context \"x\"
// (it has: a, b)" when it is not defined ("none" when there are no contexts).
absl::StatusOr<std::string> LoadKubeconfigContext(const std::string& path,
                                                  const std::string& context);

// The same, from text; `origin` names it in messages.
absl::StatusOr<std::string> ParseKubeconfigContext(absl::string_view text,
                                                   const std::string& origin,
                                                   const std::string& context);

}  // namespace kubetrain::backends::kubernetes

#endif  // KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_KUBECONFIG_H_
