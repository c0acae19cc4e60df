#include "kubetrain/launcher/backends/kubernetes/kubeconfig.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "yaml-cpp/yaml.h"

namespace kubetrain::backends::kubernetes {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", what, " ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return (std::filesystem::path(base_dir) / path).string();
}

// `names` joined for a message; "none" when there are none.
std::string NameList(const std::vector<std::string>& names) {
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

// The parsed document; InvalidArgument naming the line when it is not YAML, or when it is not a
// mapping.
absl::StatusOr<YAML::Node> LoadRoot(absl::string_view text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, " is not a kubeconfig (no mapping)"));
  }
  return root;
}

std::string Scalar(const YAML::Node& map, const char* key) {
  YAML::Node v = map[key];
  return v && v.IsScalar() ? v.Scalar() : std::string();
}

// `context`, or the current-context when it is empty, checked against the contexts `root` names.
absl::StatusOr<std::string> ResolveContext(const YAML::Node& root, const std::string& origin,
                                           const std::string& context) {
  std::vector<std::string> names;
  YAML::Node items = root["contexts"];
  if (items && items.IsSequence()) {
    for (YAML::Node item : items) {
      if (item["name"] && item["name"].IsScalar()) names.push_back(item["name"].Scalar());
    }
  }
  std::string want = context.empty() ? Scalar(root, "current-context") : context;
  if (want.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, " has no current-context; pass --context (one of: ", NameList(names), ")"));
  }
  if (std::find(names.begin(), names.end(), want) == names.end()) {
    return absl::NotFoundError(
        absl::StrCat(origin, " has no context \"", want, "\" (it has: ", NameList(names), ")"));
  }
  return want;
}

// The named entry of a kubeconfig list (`clusters`, `users`, `contexts`): its inner mapping.
absl::StatusOr<YAML::Node> Entry(const YAML::Node& root, const char* list, const char* inner,
                                 const std::string& name, const std::string& origin) {
  std::vector<std::string> names;
  YAML::Node items = root[list];
  if (items && items.IsSequence()) {
    for (YAML::Node item : items) {
      if (!item["name"] || !item["name"].IsScalar()) continue;
      names.push_back(item["name"].Scalar());
      if (item["name"].Scalar() == name) {
        YAML::Node body = item[inner];
        if (!body || !body.IsMap()) {
          return absl::InvalidArgumentError(
              absl::StrCat(origin, ": ", list, " entry \"", name, "\" has no `", inner, ":` map"));
        }
        return body;
      }
    }
  }
  return absl::NotFoundError(
      absl::StrCat(origin, " has no ", inner, " \"", name, "\" (it has: ", NameList(names), ")"));
}

// `<key>-data` (base64) or `<key>` (a file); empty when neither is given.
absl::StatusOr<std::string> Material(const YAML::Node& map, const std::string& key,
                                     const std::string& base_dir, const std::string& origin) {
  std::string data = Scalar(map, (key + "-data").c_str());
  if (!data.empty()) {
    std::string decoded;
    if (!absl::Base64Unescape(data, &decoded)) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": ", key, "-data is not valid base64"));
    }
    return decoded;
  }
  std::string file = Scalar(map, key.c_str());
  if (file.empty()) return std::string();
  return ReadFile(Resolve(base_dir, file), absl::StrCat(key, " (from ", origin, ")"));
}

}  // namespace

absl::StatusOr<KubeConnection> ParseKubeconfig(absl::string_view text, const std::string& origin,
                                               const std::string& base_dir,
                                               const std::string& context) {
  absl::StatusOr<YAML::Node> root = LoadRoot(text, origin);
  if (!root.ok()) return root.status();
  absl::StatusOr<std::string> resolved = ResolveContext(*root, origin, context);
  if (!resolved.ok()) return resolved.status();
  KubeConnection c;
  c.context = *resolved;
  absl::StatusOr<YAML::Node> ctx = Entry(*root, "contexts", "context", c.context, origin);
  if (!ctx.ok()) return ctx.status();
  std::string cluster_name = Scalar(*ctx, "cluster");
  std::string user_name = Scalar(*ctx, "user");
  c.default_namespace = Scalar(*ctx, "namespace");
  absl::StatusOr<YAML::Node> cluster = Entry(*root, "clusters", "cluster", cluster_name, origin);
  if (!cluster.ok()) return cluster.status();

  c.server = std::string(absl::StripSuffix(Scalar(*cluster, "server"), "/"));
  if (c.server.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": cluster \"", cluster_name, "\" has no server"));
  }
  std::string insecure = Scalar(*cluster, "insecure-skip-tls-verify");
  c.insecure_skip_tls_verify = insecure == "true" || insecure == "True";
  if (c.insecure_skip_tls_verify) {
    c.warnings.push_back(absl::StrCat(
        "cluster \"", cluster_name,
        "\" sets insecure-skip-tls-verify: the API server's "
        "certificate is not checked, so anyone on the network path can impersonate it; give "
        "certificate-authority-data instead"));
  }
  absl::StatusOr<std::string> ca = Material(*cluster, "certificate-authority", base_dir, origin);
  if (!ca.ok()) return ca.status();
  c.ca_pem = *ca;

  if (user_name.empty()) return c;  // anonymous
  absl::StatusOr<YAML::Node> user = Entry(*root, "users", "user", user_name, origin);
  if (!user.ok()) return user.status();
  if ((*user)["exec"]) {
    std::string command = (*user)["exec"]["command"] && (*user)["exec"]["command"].IsScalar()
                              ? (*user)["exec"]["command"].Scalar()
                              : std::string("?");
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": user \"", user_name, "\" authenticates through an exec credential plugin (`",
        command,
        "`), which kubetrain does not run; give it a kubeconfig whose user has a `token` "
        "(e.g. a ServiceAccount token bound to the Role in docker/rbac.yaml) or a client "
        "certificate (on AKS: `az aks get-credentials --admin`, or `kubelogin convert-kubeconfig "
        "-l azurecli` then a token)"));
  }
  if ((*user)["auth-provider"]) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": user \"", user_name,
                     "\" uses an auth-provider, which kubetrain does not "
                     "support; use a ServiceAccount token or a client certificate"));
  }
  if ((*user)["username"] || (*user)["password"]) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": user \"", user_name,
                     "\" uses basic authentication (username/password), which "
                     "Kubernetes removed; use a ServiceAccount token or a client certificate"));
  }
  c.bearer_token = Scalar(*user, "token");
  if (c.bearer_token.empty() && !Scalar(*user, "tokenFile").empty()) {
    absl::StatusOr<std::string> token =
        ReadFile(Resolve(base_dir, Scalar(*user, "tokenFile")), "tokenFile");
    if (!token.ok()) return token.status();
    c.bearer_token = std::string(absl::StripAsciiWhitespace(*token));
  }
  absl::StatusOr<std::string> cert = Material(*user, "client-certificate", base_dir, origin);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = Material(*user, "client-key", base_dir, origin);
  if (!key.ok()) return key.status();
  c.client_cert_pem = *cert;
  c.client_key_pem = *key;
  if (c.client_cert_pem.empty() != c.client_key_pem.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": user \"", user_name,
                     "\" gives a client certificate without its key (or a key "
                     "without its certificate); give both"));
  }
  return c;
}

absl::StatusOr<KubeConnection> LoadKubeconfig(const std::string& path, const std::string& context) {
  absl::StatusOr<std::string> text = ReadFile(path, "the kubeconfig");
  if (!text.ok()) return text.status();
  return ParseKubeconfig(*text, path, std::filesystem::path(path).parent_path().string(), context);
}

absl::StatusOr<std::string> ParseKubeconfigContext(absl::string_view text,
                                                   const std::string& origin,
                                                   const std::string& context) {
  absl::StatusOr<YAML::Node> root = LoadRoot(text, origin);
  if (!root.ok()) return root.status();
  return ResolveContext(*root, origin, context);
}

absl::StatusOr<std::string> LoadKubeconfigContext(const std::string& path,
                                                  const std::string& context) {
  absl::StatusOr<std::string> text = ReadFile(path, "the kubeconfig");
  if (!text.ok()) return text.status();
  return ParseKubeconfigContext(*text, path, context);
}

}  // namespace kubetrain::backends::kubernetes
