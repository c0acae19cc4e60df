#include "tests/testing/kube_api_server.h"

#include <curl/curl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace kubetrain::testing {
namespace {

size_t Collect(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

absl::StatusOr<nlohmann::json> Http(const std::string& method, const std::string& url,
                                    const std::string* body) {
  CURL* curl = curl_easy_init();
  std::string out;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (body != nullptr) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
  }
  CURLcode rc = curl_easy_perform(curl);
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) return absl::UnavailableError(curl_easy_strerror(rc));
  if (code != 200) return absl::InternalError(absl::StrCat(url, ": HTTP ", code, ": ", out));
  return nlohmann::json::parse(out, nullptr, false);
}

}  // namespace

absl::StatusOr<std::unique_ptr<KubeApiServer>> KubeApiServer::Start(const std::string& token,
                                                                    const Tls& tls) {
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0) return absl::InternalError("pipe");
  std::string script = KUBETRAIN_SOURCE_DIR "/tests/testing/kube_apiserver.py";
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    close(in[1]);
    close(out[0]);
    std::vector<std::string> args = {"python3", script};
    if (!token.empty()) args.insert(args.end(), {"--token", token});
    if (!tls.cert.empty()) args.insert(args.end(), {"--tls-cert", tls.cert, "--tls-key", tls.key});
    if (!tls.client_ca.empty()) args.insert(args.end(), {"--client-ca", tls.client_ca});
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/usr/bin/python3", argv.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  std::unique_ptr<KubeApiServer> server(new KubeApiServer());
  server->pid_ = pid;
  server->stdin_fd_ = in[1];
  server->token_ = token;
  server->tls_ = !tls.cert.empty();
  FILE* f = fdopen(out[0], "r");
  char line[128] = {0};
  if (f == nullptr || fgets(line, sizeof(line), f) == nullptr ||
      sscanf(line, "READY %d", &server->port_) != 1) {
    if (f != nullptr) fclose(f);
    return absl::InternalError(absl::StrCat("the test API server did not start: ", line));
  }
  fclose(f);
  return server;
}

KubeApiServer::~KubeApiServer() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
  if (stdin_fd_ >= 0) close(stdin_fd_);
}

absl::StatusOr<nlohmann::json> KubeApiServer::Control(const std::string& path,
                                                      const nlohmann::json& body) {
  std::string text = body.is_null() ? "{}" : body.dump();
  return Http("POST", absl::StrCat(url(), "/_control/", path), &text);
}

absl::StatusOr<nlohmann::json> KubeApiServer::ControlGet(const std::string& path) {
  return Http("GET", absl::StrCat(url(), "/_control/", path), nullptr);
}

void KubeApiServer::WriteKubeconfig(const std::string& path) const {
  std::ofstream out(path);
  out << "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
      << "clusters:\n- name: test-cluster\n  cluster:\n    server: " << url() << "\n"
      << "users:\n- name: test-user\n  user:\n    token: " << token_ << "\n"
      << "contexts:\n- name: test\n  context:\n    cluster: test-cluster\n    user: test-user\n";
}

absl::Status KubeApiServer::AddNamespace(const std::string& name) {
  return Control("objects", {{"kind", "Namespace"}, {"metadata", {{"name", name}}}}).status();
}

absl::Status KubeApiServer::AddNode(const std::string& name, const std::string& cpu,
                                    const std::string& memory, int gpus,
                                    const nlohmann::json& labels, bool ready) {
  nlohmann::json alloc = {{"cpu", cpu}, {"memory", memory}, {"pods", "110"}};
  if (gpus > 0) alloc["nvidia.com/gpu"] = std::to_string(gpus);
  nlohmann::json l = labels;
  l["kubernetes.io/hostname"] = name;
  nlohmann::json node = {
      {"kind", "Node"},
      {"metadata", {{"name", name}, {"labels", l}}},
      {"status",
       {{"allocatable", alloc},
        {"capacity", alloc},
        {"conditions",
         nlohmann::json::array({{{"type", "Ready"}, {"status", ready ? "True" : "False"}}})}}}};
  return Control("objects", node).status();
}

}  // namespace kubetrain::testing
