// Test support: starts tests/testing/kube_apiserver.py (the Kubernetes API server test double; its
// header says what it implements and what it does not) on a free loopback port, and drives its
// /_control/ endpoints.
//
// The server exits when this object is destroyed (and on its own when the test process dies: it
// watches its stdin).
// Thread-safety: Control may be called from several threads.
#ifndef KUBETRAIN_TESTS_TESTING_KUBE_API_SERVER_H_
#define KUBETRAIN_TESTS_TESTING_KUBE_API_SERVER_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace kubetrain::testing {

class KubeApiServer {
 public:
  struct Tls {
    std::string cert, key;  // PEM files: the server's certificate and key (HTTPS when set)
    std::string client_ca;  // when set, clients must present a certificate signed by it
  };
  // Starts the server requiring `token` as bearer token ("" for none).
  static absl::StatusOr<std::unique_ptr<KubeApiServer>> Start(const std::string& token = "t0ken",
                                                              const Tls& tls = {});
  ~KubeApiServer();

  std::string url() const {
    return (tls_ ? "https://localhost:" : "http://127.0.0.1:") + std::to_string(port_);
  }
  int port() const { return port_; }

  // POST /_control/<path> with `body`; the answer as JSON.
  absl::StatusOr<nlohmann::json> Control(const std::string& path, const nlohmann::json& body = {});
  // GET /_control/<path>.
  absl::StatusOr<nlohmann::json> ControlGet(const std::string& path);

  // Writes a kubeconfig for this server (context "test", the token) into `path`.
  void WriteKubeconfig(const std::string& path) const;

  // Seeds a namespace and a Ready node with allocatable cpu / memory / gpus and labels.
  absl::Status AddNamespace(const std::string& name);
  absl::Status AddNode(const std::string& name, const std::string& cpu, const std::string& memory,
                       int gpus, const nlohmann::json& labels = nlohmann::json::object(),
                       bool ready = true);

 private:
  KubeApiServer() = default;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int port_ = 0;
  std::string token_;
  bool tls_ = false;
};

}  // namespace kubetrain::testing

#endif  // KUBETRAIN_TESTS_TESTING_KUBE_API_SERVER_H_
