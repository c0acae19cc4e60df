// The REST flow against the Kubernetes API server test double (tests/testing/kube_apiserver.py):
// errors, create retries (429, 5xx, a lost answer → 409 of our own object), 404 on delete, the
// owner-reference cascade, and the pod watch: resume after a killed connection without a relist,
// relist after 410 Gone.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/launcher/backends/kubernetes/api_client.h"
#include "kubetrain/launcher/backends/kubernetes/cluster.h"
#include "kubetrain/launcher/backends/kubernetes/watch.h"
#include "tests/testing/kube_api_server.h"

namespace kubetrain::backends::kubernetes {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

class ApiFlowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = testing::KubeApiServer::Start("s3cret");
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    ASSERT_TRUE(server_->AddNamespace("team-a").ok());
    KubeConnection c;
    c.server = server_->url();
    c.bearer_token = "s3cret";
    ApiClientOptions o;
    o.backoff_initial = absl::Milliseconds(5);
    client_ = std::make_unique<ApiClient>(c, o);
  }

  json Pod(const std::string& name, const json& labels = {{"app", "t"}}) {
    return {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata", {{"name", name}, {"labels", labels}}},
            {"spec", {{"containers", {{{"name", "worker"}, {"image", "x"}}}}}}};
  }

  std::unique_ptr<testing::KubeApiServer> server_;
  std::unique_ptr<ApiClient> client_;
};

TEST_F(ApiFlowTest, ErrorsMapToStatusCodes) {
  auto missing = client_->Get("/api/v1/namespaces/team-a/pods/nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("HTTP 404 NotFound"));
  KubeConnection bad;
  bad.server = server_->url();
  bad.bearer_token = "wrong";
  auto denied = ApiClient(bad).Get("/api/v1/nodes");
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kUnauthenticated);
  KubeConnection nowhere;
  nowhere.server = "http://127.0.0.1:1";
  EXPECT_EQ(ApiClient(nowhere).Get("/api/v1/nodes").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(CheckNamespace(*client_, "team-b").code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(CheckNamespace(*client_, "team-b").message(),
              HasSubstr("kubectl create namespace team-b"));
  EXPECT_TRUE(CheckNamespace(*client_, "team-a").ok());
}

TEST_F(ApiFlowTest, CreateRetriesAndTellsOursFromSomeoneElses) {
  auto is_ours = [](const json& existing) {
    return existing["metadata"]["labels"].value("app", "") == "ours";
  };
  // 429 then 500 then success.
  ASSERT_TRUE(
      server_->Control("faults", {{"method", "POST"}, {"resource", "pods"}, {"codes", {429, 500}}})
          .ok());
  auto created =
      client_->Create("/api/v1/namespaces/team-a/pods", Pod("a", {{"app", "ours"}}), is_ours);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE((*created)["metadata"].value("uid", "").empty());
  // The object is created but the answer is lost (500): the retry meets 409 for our own object.
  ASSERT_TRUE(
      server_
          ->Control(
              "faults",
              {{"method", "POST"}, {"resource", "pods"}, {"codes", {503}}, {"after_create", true}})
          .ok());
  auto lost =
      client_->Create("/api/v1/namespaces/team-a/pods", Pod("b", {{"app", "ours"}}), is_ours);
  ASSERT_TRUE(lost.ok()) << lost.status();
  EXPECT_EQ((*lost)["metadata"]["name"], "b");
  // Someone else's object of that name: AlreadyExists, and what to do.
  auto theirs = client_->Create("/api/v1/namespaces/team-a/pods", Pod("a", {{"app", "other"}}),
                                [](const json&) { return false; });
  EXPECT_EQ(theirs.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(theirs.status().message(), HasSubstr("kubectl delete Pod a"));
  // A namespace that does not exist: 404, not retried.
  auto nons = client_->Create("/api/v1/namespaces/none/pods", Pod("c"), is_ours);
  EXPECT_EQ(nons.status().code(), absl::StatusCode::kNotFound);
  // Too many failures: gives up and says so.
  ASSERT_TRUE(server_
                  ->Control("faults", {{"method", "POST"},
                                       {"resource", "pods"},
                                       {"codes", json(std::vector<int>(10, 500))}})
                  .ok());
  auto gave_up = client_->Create("/api/v1/namespaces/team-a/pods", Pod("d"), is_ours);
  EXPECT_EQ(gave_up.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(gave_up.status().message(), HasSubstr("gave up after 8 tries"));
}

TEST_F(ApiFlowTest, DeleteIsIdempotentAndCascadesToDependents) {
  json secret = {{"apiVersion", "v1"}, {"kind", "Secret"}, {"metadata", {{"name", "owner"}}}};
  auto owner = client_->Create("/api/v1/namespaces/team-a/secrets", secret, nullptr);
  ASSERT_TRUE(owner.ok()) << owner.status();
  json pod = Pod("dependent");
  pod["metadata"]["ownerReferences"] = {{{"apiVersion", "v1"},
                                         {"kind", "Secret"},
                                         {"name", "owner"},
                                         {"uid", (*owner)["metadata"]["uid"]}}};
  ASSERT_TRUE(client_->Create("/api/v1/namespaces/team-a/pods", pod, nullptr).ok());
  ASSERT_TRUE(client_->Delete("/api/v1/namespaces/team-a/secrets/owner").ok());
  EXPECT_EQ(client_->Get("/api/v1/namespaces/team-a/pods/dependent").status().code(),
            absl::StatusCode::kNotFound);
  // Deleting what is gone is fine (404 is success for a delete).
  EXPECT_TRUE(client_->Delete("/api/v1/namespaces/team-a/secrets/owner").ok());
  auto raw = client_->Request("DELETE", "/api/v1/namespaces/team-a/secrets/owner");
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->code, 404);
}

// Waits until `pred(view)` holds (or 10 s).
PodView WaitFor(const PodWatch& w, const std::function<bool(const PodView&)>& pred) {
  PodView v = w.Snapshot();
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!pred(v) && absl::Now() < deadline)
    v = w.WaitForChange(v.version, absl::Milliseconds(100));
  return v;
}

std::string Phase(const PodView& v, const std::string& pod) {
  auto it = v.pods.find(pod);
  return it == v.pods.end() ? "" : it->second["status"].value("phase", "");
}

TEST_F(ApiFlowTest, WatchResumesAfterAKilledConnectionAndRelistsOn410) {
  ASSERT_TRUE(client_->Create("/api/v1/namespaces/team-a/pods", Pod("p0"), nullptr).ok());
  ASSERT_TRUE(
      client_->Create("/api/v1/namespaces/team-a/pods", Pod("x", {{"app", "other"}}), nullptr)
          .ok());
  PodWatch watch(*client_, "team-a", "app=t");
  watch.Start();
  PodView v = WaitFor(watch, [](const PodView& v) { return v.listed && v.watches >= 1; });
  ASSERT_TRUE(v.listed);
  EXPECT_EQ(v.pods.size(), 1u);  // the selector keeps "x" out
  EXPECT_EQ(Phase(v, "p0"), "Pending");

  ASSERT_TRUE(server_->Control("pods/team-a/p0/status", {{"phase", "Running"}}).ok());
  v = WaitFor(watch, [](const PodView& v) { return Phase(v, "p0") == "Running"; });
  EXPECT_EQ(Phase(v, "p0"), "Running");

  // The connection dies mid-job; what happens meanwhile arrives through the resumed watch.
  ASSERT_TRUE(server_->Control("kill-watches").ok());
  ASSERT_TRUE(client_->Create("/api/v1/namespaces/team-a/pods", Pod("p1"), nullptr).ok());
  ASSERT_TRUE(server_->Control("pods/team-a/p0/status", {{"phase", "Succeeded"}}).ok());
  v = WaitFor(watch, [](const PodView& v) {
    return Phase(v, "p0") == "Succeeded" && v.pods.count("p1") == 1;
  });
  EXPECT_EQ(Phase(v, "p0"), "Succeeded");
  EXPECT_EQ(v.pods.count("p1"), 1u);
  EXPECT_EQ(v.lists, 1) << "a resumed watch must not list again";
  EXPECT_GE(v.watches, 2);

  // The server compacts its history, the connection drops: the resourceVersion we hold is too old
  // (410 Expired), so the watch lists again and sees the changes made in between.
  ASSERT_TRUE(server_->Control("compact").ok());
  ASSERT_TRUE(server_->Control("kill-watches").ok());
  ASSERT_TRUE(client_->Delete("/api/v1/namespaces/team-a/pods/p1").ok());
  ASSERT_TRUE(server_->Control("compact").ok());
  v = WaitFor(watch, [](const PodView& v) { return v.lists >= 2 && v.pods.count("p1") == 0; });
  EXPECT_GE(v.lists, 2);
  EXPECT_EQ(v.pods.count("p1"), 0u);
  EXPECT_EQ(v.deleted.count("p1"), 1u);
  ASSERT_TRUE(server_->Control("pods/team-a/p0/status", {{"phase", "Failed"}}).ok());
  v = WaitFor(watch, [](const PodView& v) { return Phase(v, "p0") == "Failed"; });
  EXPECT_EQ(Phase(v, "p0"), "Failed");
  watch.Stop();
}

TEST_F(ApiFlowTest, InventoryNodesInstanceTypesAndBoundPods) {
  ASSERT_TRUE(server_->AddNode("gpu-a", "16", "64Gi", 4, {{"accelerator", "a100"}}).ok());
  ASSERT_TRUE(server_->AddNode("cpu-a", "8", "32Gi", 0).ok());
  ASSERT_TRUE(server_->AddNode("down", "8", "32Gi", 0, json::object(), false).ok());
  auto nodes = ListReadyNodes(*client_);
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  ASSERT_EQ(nodes->size(), 2u);  // the NotReady node is left out
  EXPECT_EQ((*nodes)[1].name(), "gpu-a");
  EXPECT_EQ((*nodes)[1].cpu_millicores(), 16000);
  EXPECT_EQ((*nodes)[1].memory_bytes(), int64_t{64} << 30);
  EXPECT_EQ((*nodes)[1].gpu_ids_size(), 4);
  EXPECT_EQ((*nodes)[1].labels().at("accelerator"), "a100");

  auto none = ReadInstanceTypes(*client_);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->crd_installed);
  ASSERT_TRUE(server_
                  ->Control("objects", json::parse(R"({
      "apiVersion": "amlarc.azureml.com/v1alpha1", "kind": "InstanceType",
      "metadata": {"name": "gpu-1", "managedFields": [{"manager": "kubectl"}]},
      "spec": {"nodeSelector": {"accelerator": "a100"},
               "resources": {"requests": {"cpu": "2", "memory": "8Gi"},
                             "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": 1}}}})"))
                  .ok());
  auto types = ReadInstanceTypes(*client_);
  ASSERT_TRUE(types.ok()) << types.status();
  EXPECT_TRUE(types->crd_installed);
  ASSERT_EQ(types->items.size(), 1u);
  EXPECT_EQ(types->items[0].name(), "gpu-1");
  EXPECT_EQ(types->items[0].limits().gpu(), 1);
  EXPECT_EQ(types->items[0].requests().cpu().value(), 2000);

  // Someone else's running pod on gpu-a holds 6 cpus, 1 GPU; a finished one holds nothing; ours
  // (labelled with our workspace) is counted by the workspace itself.
  json busy = Pod("busy");
  busy["spec"]["nodeName"] = "gpu-a";
  busy["spec"]["containers"][0]["resources"] = {
      {"requests", {{"cpu", "6"}}}, {"limits", {{"memory", "8Gi"}, {"nvidia.com/gpu", "1"}}}};
  json done = busy;
  done["metadata"]["name"] = "done";
  json ours = busy;
  ours["metadata"]["name"] = "ours";
  ours["metadata"]["labels"]["kubetrain.io/workspace"] = "ws-me";
  for (const json& p : {busy, done, ours}) {
    ASSERT_TRUE(client_->Create("/api/v1/namespaces/team-a/pods", p, nullptr).ok());
  }
  ASSERT_TRUE(server_->Control("pods/team-a/busy/status", {{"phase", "Running"}}).ok());
  ASSERT_TRUE(server_->Control("pods/team-a/done/status", {{"phase", "Succeeded"}}).ok());
  auto held = ForeignHolds(*client_, *nodes, "ws-me");
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_EQ(held->instances_size(), 1);  // only gpu-a has someone else's pods
  const v1::InstancePlacement& on_gpu_a = held->instances(0);
  EXPECT_EQ(on_gpu_a.node(), "gpu-a");
  EXPECT_EQ(on_gpu_a.cpu_millicores(), 6000);
  EXPECT_EQ(on_gpu_a.memory_bytes(), int64_t{8} << 30);        // no request: the limit counts
  EXPECT_THAT(on_gpu_a.gpu_ids(), ::testing::ElementsAre(3));  // the highest id
}

// TLS: the server's certificate checked against the kubeconfig's CA bundle (from memory), refused
// without it, accepted unchecked with insecure-skip-tls-verify, and a client certificate for a
// server that requires one (mutual TLS).
class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "no openssl command (Debian package openssl) to make test certificates";
    }
    dir_ = ::testing::TempDir() + "/kt-tls-" + std::to_string(getpid());
    std::string d = dir_;
    std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string script =
        "set -e; mkdir -p " + d + "; cd " + d + "; " + "openssl req -x509" + key +
        " -keyout ca.key -out ca.crt -subj /CN=kt-test-ca -days 1; " + "openssl req" + key +
        " -keyout server.key -out server.csr -subj /CN=localhost; " +
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > san.ext; " +
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 "
        "-extfile san.ext -out server.crt; " +
        "openssl req" + key + " -keyout client.key -out client.csr -subj /CN=kubetrain; " +
        "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 "
        "-out client.crt";
    ASSERT_EQ(system(("(" + script + ") >/dev/null 2>&1").c_str()), 0) << "openssl failed";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Read(const std::string& name) {
    std::ifstream in(dir_ + "/" + name);
    std::stringstream b;
    b << in.rdbuf();
    return b.str();
  }

  std::string dir_;
};

TEST_F(TlsTest, ServerCertificateIsVerifiedWithTheCaBundle) {
  auto server =
      testing::KubeApiServer::Start("tok", {dir_ + "/server.crt", dir_ + "/server.key", ""});
  ASSERT_TRUE(server.ok()) << server.status();
  KubeConnection c;
  c.server = (*server)->url();
  c.bearer_token = "tok";
  c.ca_pem = Read("ca.crt");
  auto nodes = ApiClient(c).Get("/api/v1/nodes");
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  EXPECT_EQ((*nodes)["kind"], "NodeList");

  c.ca_pem.clear();  // the system CAs do not know our test CA
  auto untrusted = ApiClient(c).Get("/api/v1/nodes");
  EXPECT_EQ(untrusted.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(untrusted.status().message(), HasSubstr("certificate"));

  c.insecure_skip_tls_verify = true;
  EXPECT_TRUE(ApiClient(c).Get("/api/v1/nodes").ok());
}

TEST_F(TlsTest, ClientCertificateAuthenticates) {
  auto server = testing::KubeApiServer::Start(
      "", {dir_ + "/server.crt", dir_ + "/server.key", dir_ + "/ca.crt"});
  ASSERT_TRUE(server.ok()) << server.status();
  KubeConnection c;
  c.server = (*server)->url();
  c.ca_pem = Read("ca.crt");
  EXPECT_FALSE(ApiClient(c).Get("/api/v1/nodes").ok());  // no client certificate: refused
  c.client_cert_pem = Read("client.crt");
  c.client_key_pem = Read("client.key");
  auto nodes = ApiClient(c).Get("/api/v1/nodes");
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  EXPECT_EQ((*nodes)["kind"], "NodeList");
}

}  // namespace
}  // namespace kubetrain::backends::kubernetes
