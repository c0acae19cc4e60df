// Jobs on a Kubernetes compute target, against the Kubernetes API server test double
// (tests/testing/kube_apiserver.py; its header lists what it implements and its limits):
//   - `kubetrain compute attach --type kubernetes` (namespace check, nodes, InstanceType CRs);
//   - `kubetrain job create --dry-run -o yaml`;
//   - the backend's flow with pod states driven by the test: Running → Succeeded, a watch
//     connection killed mid-job, ImagePullBackOff, OOMKilled, start timeout, cancel, a create that
//     fails half-way — each must leave no object behind;
//   - end to end: a 2 instances × 2 ranks job on a GPU instance type through the real `kubetrain`
//     and real kubetrain-worker processes, which the test server starts as its kubelet double.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/launcher/backends/kubernetes/kubernetes_backend.h"
#include "kubetrain/storage/workspace.h"
#include "tests/testing/command.h"
#include "tests/testing/kube_api_server.h"

namespace kubetrain::backends::kubernetes {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

constexpr char kGpuType[] = R"({
  "apiVersion": "amlarc.azureml.com/v1alpha1", "kind": "InstanceType",
  "metadata": {"name": "gpu-2"},
  "spec": {"nodeSelector": {"accelerator": "a100"},
           "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                         "limits": {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": 2}}}})";

class KubernetesJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kt-k8s-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto s = testing::KubeApiServer::Start("tok");
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    kubeconfig_ = (dir_ / "kubeconfig").string();
    server_->WriteKubeconfig(kubeconfig_);
    ASSERT_TRUE(server_->AddNamespace("team-a").ok());
    ASSERT_TRUE(server_->AddNode("gpu-0", "8", "32Gi", 2, {{"accelerator", "a100"}}).ok());
    ASSERT_TRUE(server_->AddNode("gpu-1", "8", "32Gi", 2, {{"accelerator", "a100"}}).ok());
    ASSERT_TRUE(server_->Control("objects", json::parse(kGpuType)).ok());
  }
  void TearDown() override {
    // A test that failed half-way leaves no supervisor behind: cancel what has not ended.
    testing::CommandResult list = Kt("job list -o json");
    json jobs = json::parse(list.output, nullptr, false);
    if (jobs.is_array()) {
      for (const json& j : jobs) {
        std::string state = j["status"].value("state", "");
        if (state != "JOB_STATE_COMPLETED" && state != "JOB_STATE_FAILED" &&
            state != "JOB_STATE_CANCELED") {
          Kt("job cancel " + j["spec"].value("name", ""));
        }
      }
    }
    if (!HasFailure()) fs::remove_all(dir_);
  }

  std::string Ws() const { return (dir_ / "ws").string(); }

  testing::CommandResult Kt(const std::string& args) {
    return testing::RunCommand("KUBETRAIN_WORKSPACE=" + Ws() + " " + testing::KubetrainCli() +
                               args);
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream((dir_ / name).string()) << text;
    return (dir_ / name).string();
  }

  // The names of the objects of `resource` in team-a the server holds.
  std::vector<std::string> Objects(const std::string& resource) {
    std::vector<std::string> out;
    auto list = server_->ControlGet("objects/list");
    if (!list.ok()) return out;
    for (const json& o : (*list)["items"]) {
      if (o["resource"] == resource && o["namespace"] == "team-a") out.push_back(o["name"]);
    }
    return out;
  }
  size_t JobObjects() {
    return Objects("pods").size() + Objects("secrets").size() + Objects("configmaps").size() +
           Objects("services").size();
  }

  v1::ComputeTarget Target(const std::string& workspace_url = "") {
    v1::ComputeTarget t;
    t.set_name("aks");
    t.mutable_kubernetes()->set_kubeconfig_path(kubeconfig_);
    t.mutable_kubernetes()->set_namespace_("team-a");
    t.mutable_kubernetes()->set_worker_image("kubetrain/worker:test");
    t.mutable_kubernetes()->set_workspace_url(workspace_url);
    return t;
  }

  std::unique_ptr<KubernetesBackend> Backend(storage::Workspace* ws,
                                             absl::Duration start_timeout = absl::Seconds(30)) {
    KubernetesBackendOptions o;
    o.target = Target();
    o.workspace_id = "ws-test";
    o.workspace = ws;
    o.start_timeout = start_timeout;
    auto b = KubernetesBackend::Create(o);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? std::move(*b) : nullptr;
  }

  LaunchRequest Request(const std::string& name, int instances) {
    LaunchRequest r;
    v1::JobSpec* spec = r.job.mutable_spec();
    spec->set_name(name);
    spec->set_command("echo hi");
    spec->mutable_resources()->set_instance_count(instances);
    spec->mutable_distribution()->set_type(v1::DistributionSpec::TYPE_PYTORCH);
    spec->mutable_distribution()->set_process_count_per_instance(2);
    for (int i = 0; i < instances; ++i) {
      v1::InstancePlacement* p = r.job.mutable_placement()->add_instances();
      p->set_instance_index(i);
      p->set_node(i % 2 == 0 ? "gpu-0" : "gpu-1");
    }
    r.instance_type.set_name("cpu");
    r.instance_type.mutable_limits()->mutable_cpu()->set_value(1000);
    r.instance_type.mutable_limits()->mutable_memory()->set_value(int64_t{1} << 30);
    r.grace = absl::Seconds(1);
    return r;
  }

  // A rank's line as kubetrain-worker --output json writes it (launch.proto: one v1.LogLine).
  static std::string RankLine(int rank, const std::string& text) {
    return json{{"rank", rank}, {"stream", "STREAM_STDOUT"}, {"text", text}}.dump();
  }

  std::string Pod(const std::string& job, int i) {
    return BaseName(job, 0) + "-" + std::to_string(i);
  }

  absl::Status SetPod(const std::string& pod, const json& status) {
    return server_->Control("pods/team-a/" + pod + "/status", status).status();
  }
  json Running() {
    return {{"phase", "Running"},
            {"containerStatuses",
             {{{"name", "worker"}, {"state", {{"running", {{"startedAt", "t"}}}}}}}}};
  }
  json Terminated(int code, const std::string& reason = "") {
    json t = {{"exitCode", code}};
    if (!reason.empty()) t["reason"] = reason;
    return {{"phase", code == 0 ? "Succeeded" : "Failed"},
            {"containerStatuses", {{{"name", "worker"}, {"state", {{"terminated", t}}}}}}};
  }

  std::optional<GangResult> PollUntil(Gang& g, absl::Duration d) {
    absl::Time end = absl::Now() + d;
    while (absl::Now() < end) {
      if (auto r = g.Poll(absl::Milliseconds(100))) return r;
    }
    return std::nullopt;
  }

  fs::path dir_;
  std::unique_ptr<testing::KubeApiServer> server_;
  std::string kubeconfig_;
};

TEST_F(KubernetesJobTest, AttachReadsNamespaceNodesAndInstanceTypes) {
  testing::CommandResult r = Kt("compute attach aks --type kubernetes --kubeconfig " + kubeconfig_ +
                                " --namespace team-a --worker-image kubetrain/worker:test");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("compute \"aks\" attached (kubernetes, 2 nodes)"));
  EXPECT_THAT(r.output, HasSubstr("1 instance type from the cluster's InstanceType resources"));
  r = Kt("compute show aks");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("gpu-0"));
  EXPECT_THAT(r.output, HasSubstr("accelerator=a100"));
  EXPECT_THAT(r.output, HasSubstr("gpu-2"));
  // The same cluster again, under another name and namespace.
  ASSERT_TRUE(server_->AddNamespace("team-b").ok());
  r = Kt("compute attach aks-b --type kubernetes --kubeconfig " + kubeconfig_ +
         " --namespace team-b");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Kt("compute list");
  EXPECT_THAT(r.output, HasSubstr("aks-b"));
  // A namespace that does not exist.
  r = Kt("compute attach aks-c --type kubernetes --kubeconfig " + kubeconfig_ +
         " --namespace nope");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("namespace \"nope\" does not exist"));
  // An exec plugin.
  std::string exec = Write("exec-kubeconfig",
                           "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                           "clusters: [{name: k, cluster: {server: '" +
                               server_->url() +
                               "'}}]\n"
                               "users: [{name: u, user: {exec: {command: kubelogin}}}]\n"
                               "contexts: [{name: c, context: {cluster: k, user: u}}]\n");
  r = Kt("compute attach aks-d --type kubernetes --kubeconfig " + exec + " --namespace team-a");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("exec credential plugin (`kubelogin`)"));
}

TEST_F(KubernetesJobTest, DryRunPrintsTheObjects) {
  ASSERT_EQ(Kt("compute attach aks --type kubernetes --kubeconfig " + kubeconfig_ +
               " --namespace team-a --worker-image kubetrain/worker:test")
                .exit_code,
            0);
  std::string job = Write("job.yml",
                          "command: echo hi\ncompute: aks\nname: dry\n"
                          "resources: {instance_type: gpu-2, instance_count: 2, shm_size: 1Gi}\n"
                          "distribution: {type: pytorch, process_count_per_instance: 2}\n");
  testing::CommandResult r = Kt("job create -f " + job + " --dry-run -o yaml");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* want : {"kind: Secret", "kind: ConfigMap", "kind: Service", "name: dry-0-0",
                           "name: dry-0-1", "nodeName: gpu-0", "nodeName: gpu-1",
                           "nvidia.com/gpu: \"2\"", "medium: Memory", "clusterIP: None"}) {
    EXPECT_THAT(r.output, HasSubstr(want));
  }
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("Z29sZGVu")));
  EXPECT_EQ(JobObjects(), 0u);  // nothing was created
  EXPECT_EQ(Kt("job list").output.find("dry"), std::string::npos);
}

// A registered environment (`environment create`) is the pods' image, instead of the target's
// worker image; the local-compute warning is not printed here.
TEST_F(KubernetesJobTest, DryRunRunsTheRegisteredEnvironmentsImage) {
  ASSERT_EQ(Kt("compute attach aks --type kubernetes --kubeconfig " + kubeconfig_ +
               " --namespace team-a --worker-image kubetrain/worker:test")
                .exit_code,
            0);
  std::string env = Write("env.yml",
                          "name: AzureML-pytorch-1.9-ubuntu18.04-py37-cuda11-gpu\nversion: 6\n"
                          "image: myregistry.azurecr.io/kubetrain/pytorch:1.9\n");
  testing::CommandResult r = Kt("environment create -f " + env);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string job =
      Write("job.yml",
            "command: echo hi\ncompute: azureml:aks\nname: envjob\n"
            "environment: azureml:AzureML-pytorch-1.9-ubuntu18.04-py37-cuda11-gpu@latest\n"
            "resources: {instance_type: gpu-2}\n");
  r = Kt("job create -f " + job + " --dry-run -o yaml");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("image: \"myregistry.azurecr.io/kubetrain/pytorch:1.9\""));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("kubetrain/worker:test")));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("warning")));
}

// What `job create --dry-run` prints is what `job create` makes the backend create, field for
// field: one launch request and one render input behind both (jobs/launch.h). Tokens, the launch
// id and what the API server adds (uid, resourceVersion, owners, status) aside.
TEST_F(KubernetesJobTest, DryRunEqualsWhatTheLaunchCreates) {
  ASSERT_EQ(Kt("compute attach aks --type kubernetes --kubeconfig " + kubeconfig_ +
               " --namespace team-a --worker-image kubetrain/worker:test")
                .exit_code,
            0);
  std::string job = Write("job.yml",
                          "command: echo hi\ncompute: aks\nname: same\n"
                          "environment_variables: {A: b}\n"
                          "resources: {instance_type: gpu-2, instance_count: 2, shm_size: 1Gi}\n"
                          "distribution: {type: pytorch, process_count_per_instance: 2}\n");
  testing::CommandResult dry = Kt("job create -f " + job + " --dry-run -o json");
  ASSERT_EQ(dry.exit_code, 0) << dry.output;
  json printed = json::parse(dry.output.substr(dry.output.find('{')), nullptr, false);
  ASSERT_TRUE(printed.is_object()) << dry.output;
  ASSERT_EQ(Kt("job create -f " + job).exit_code, 0);
  absl::Time end = absl::Now() + absl::Seconds(30);
  while (Objects("pods").size() < 2 && absl::Now() < end) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_EQ(Objects("pods").size(), 2u);

  auto client = ConnectToTarget(Target());
  ASSERT_TRUE(client.ok()) << client.status();
  auto normalise = [](json o) {
    json& meta = o["metadata"];
    for (const char* k : {"uid", "resourceVersion", "creationTimestamp", "ownerReferences",
                          "managedFields", "generation"}) {
      meta.erase(k);
    }
    if (meta.contains("annotations")) meta["annotations"].erase(kAnnotationLaunchId);
    o.erase("status");
    if (o["kind"] == "Secret") {
      o.erase("data");
      o.erase("stringData");
    }
    return o;
  };
  ASSERT_EQ(printed["items"].size(), 5u);
  for (const json& want : printed["items"]) {
    const std::map<std::string, std::string> plural = {{"Secret", "secrets"},
                                                       {"ConfigMap", "configmaps"},
                                                       {"Service", "services"},
                                                       {"Pod", "pods"}};
    std::string path = "/api/v1/namespaces/team-a/" + plural.at(want["kind"]) + "/" +
                       want["metadata"]["name"].get<std::string>();
    absl::StatusOr<json> got = (*client)->Get(path);
    ASSERT_TRUE(got.ok()) << path << ": " << got.status();
    EXPECT_EQ(normalise(*got).dump(2), normalise(want).dump(2)) << path;
  }
  EXPECT_EQ(Kt("job cancel same").exit_code, 0);
}

TEST_F(KubernetesJobTest, SubmitRunningCompletedWithAKilledWatchAndLogsThroughTheApi) {
  auto ws = storage::OpenEmbeddedWorkspace(Ws());
  ASSERT_TRUE(ws.ok());
  auto backend = Backend(ws->get());
  ASSERT_NE(backend, nullptr);
  LaunchRequest req = Request("train", 2);
  auto gang = backend->Launch(req);
  ASSERT_TRUE(gang.ok()) << gang.status();
  EXPECT_EQ(Objects("pods").size(), 2u);
  EXPECT_EQ(Objects("secrets").size(), 1u);
  EXPECT_EQ(Objects("configmaps").size(), 1u);
  EXPECT_EQ(Objects("services").size(), 1u);
  EXPECT_FALSE((*gang)->Poll(absl::Milliseconds(200)));
  EXPECT_FALSE((*gang)->Running());

  ASSERT_TRUE(SetPod(Pod("train", 0), Running()).ok());
  ASSERT_TRUE(SetPod(Pod("train", 1), Running()).ok());
  absl::Time end = absl::Now() + absl::Seconds(10);
  while (!(*gang)->Running() && absl::Now() < end) (*gang)->Poll(absl::Milliseconds(50));
  EXPECT_TRUE((*gang)->Running());
  ASSERT_TRUE(server_
                  ->Control("pods/team-a/" + Pod("train", 0) + "/log",
                            {{"text", "agent starting\n" + RankLine(0, "loss 0.5") + "\n" +
                                          RankLine(1, "loss 0.6")}})
                  .ok());
  // The watch connection (and the log streams) die mid-job; the pods end meanwhile.
  ASSERT_TRUE(server_->Control("kill-watches").ok());
  ASSERT_TRUE(
      server_
          ->Control("pods/team-a/" + Pod("train", 0) + "/log", {{"text", RankLine(0, "loss 0.1")}})
          .ok());
  ASSERT_TRUE(SetPod(Pod("train", 0), Terminated(0)).ok());
  ASSERT_TRUE(SetPod(Pod("train", 1), Terminated(0)).ok());
  std::optional<GangResult> r = PollUntil(**gang, absl::Seconds(20));
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->succeeded) << r->message;
  EXPECT_EQ(JobObjects(), 0u) << "every object of the job is deleted at its end";

  // The pod's log went into the workspace once each (no duplicates after the reconnect).
  storage::LogQuery q;
  q.job = "train";
  auto page = (*ws)->ReadLogs(q);
  ASSERT_TRUE(page.ok());
  std::vector<std::string> lines;
  for (const auto& l : page->lines) lines.push_back(std::to_string(l.rank()) + ":" + l.text());
  EXPECT_THAT(
      lines, ::testing::ElementsAre("-1:agent starting", "0:loss 0.5", "1:loss 0.6", "0:loss 0.1"));
  auto job =
      (*ws)->GetJob("train");  // the states were recorded per instance (no job record: NotFound ok)
  (void)job;
}

TEST_F(KubernetesJobTest, ImagePullBackOffFailsWithItsReasonAndCleansUp) {
  auto backend = Backend(nullptr);
  auto gang = backend->Launch(Request("pull", 2));
  ASSERT_TRUE(gang.ok()) << gang.status();
  ASSERT_TRUE(SetPod(Pod("pull", 0), Running()).ok());
  ASSERT_TRUE(
      SetPod(Pod("pull", 1),
             {{"containerStatuses",
               {{{"name", "worker"},
                 {"image", "kubetrain/worker:test"},
                 {"state",
                  {{"waiting",
                    {{"reason", "ImagePullBackOff"}, {"message", "Back-off pulling image"}}}}}}}}})
          .ok());
  std::optional<GangResult> r = PollUntil(**gang, absl::Seconds(10));
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->succeeded);
  EXPECT_EQ(r->reason, "ImagePullBackOff");
  EXPECT_EQ(r->failed_instance, 1);
  EXPECT_THAT(r->message, HasSubstr("kubetrain/worker:test"));
  EXPECT_EQ(JobObjects(), 0u);
}

TEST_F(KubernetesJobTest, OomKilledAndEvictedAreClearFailures) {
  auto backend = Backend(nullptr);
  auto gang = backend->Launch(Request("oom", 1));
  ASSERT_TRUE(gang.ok()) << gang.status();
  ASSERT_TRUE(SetPod(Pod("oom", 0), Running()).ok());
  ASSERT_TRUE(SetPod(Pod("oom", 0), Terminated(137, "OOMKilled")).ok());
  std::optional<GangResult> r = PollUntil(**gang, absl::Seconds(10));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->reason, "OOMKilled");
  EXPECT_EQ(r->exit_code, 137);
  EXPECT_EQ(JobObjects(), 0u);

  auto evicted = backend->Launch(Request("evict", 1));
  ASSERT_TRUE(evicted.ok()) << evicted.status();
  ASSERT_TRUE(SetPod(Pod("evict", 0), {{"phase", "Failed"},
                                       {"reason", "Evicted"},
                                       {"message", "The node was low on resource: memory."}})
                  .ok());
  r = PollUntil(**evicted, absl::Seconds(10));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->reason, "Evicted");
  EXPECT_THAT(r->message, HasSubstr("low on resource"));
  EXPECT_EQ(JobObjects(), 0u);
}

TEST_F(KubernetesJobTest, PodsNotRunningWithinTheStartTimeoutFailTheJob) {
  auto backend = Backend(nullptr, absl::Seconds(1));
  auto gang = backend->Launch(Request("slow", 2));
  ASSERT_TRUE(gang.ok()) << gang.status();
  ASSERT_TRUE(SetPod(Pod("slow", 0), Running()).ok());
  ASSERT_TRUE(
      SetPod(
          Pod("slow", 1),
          {{"containerStatuses",
            {{{"name", "worker"}, {"state", {{"waiting", {{"reason", "ContainerCreating"}}}}}}}}})
          .ok());
  std::optional<GangResult> r = PollUntil(**gang, absl::Seconds(10));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->reason, "StartTimeout");
  EXPECT_EQ(r->failed_instance, 1);
  EXPECT_THAT(r->message,
              HasSubstr(Pod("slow", 1) + " on node gpu-1 is Pending (ContainerCreating)"));
  EXPECT_EQ(JobObjects(), 0u);
}

TEST_F(KubernetesJobTest, CancelDeletesEverything) {
  auto backend = Backend(nullptr);
  auto gang = backend->Launch(Request("cancel-me", 2));
  ASSERT_TRUE(gang.ok()) << gang.status();
  EXPECT_EQ(JobObjects(), 5u);
  (*gang)->Terminate();
  EXPECT_EQ(JobObjects(), 0u);
}

TEST_F(KubernetesJobTest, ACreateThatFailsHalfWayLeavesNothing) {
  auto backend = Backend(nullptr);
  // The second pod is refused (403, not retried).
  ASSERT_TRUE(
      server_->Control("faults", {{"method", "POST"}, {"resource", "services"}, {"codes", {403}}})
          .ok());
  auto gang = backend->Launch(Request("half", 2));
  ASSERT_FALSE(gang.ok());
  EXPECT_THAT(gang.status().message(), HasSubstr("everything created was deleted"));
  EXPECT_EQ(JobObjects(), 0u);
}

// End to end: real `kubetrain`, real kubetrain-worker agents started by the test server's kubelet
// double, 2 instances × 2 ranks on a GPU instance type.
class KubernetesEndToEndTest : public KubernetesJobTest {
 protected:
  void SetUp() override {
    KubernetesJobTest::SetUp();
    ASSERT_TRUE(server_
                    ->Control("kubelet", {{"enabled", true},
                                          {"bin_dir", KUBETRAIN_BINARY_DIR "/bin"},
                                          {"work_dir", (dir_ / "kubelet").string()}})
                    .ok());
  }

  std::string Job() {
    // Each rank prints its env contract and logs a metric through the agent's MLflow endpoint.
    return Write("job.yml", R"YAML(
command: >-
  echo "rank $RANK of $WORLD_SIZE node $NODE_RANK gpus $CUDA_VISIBLE_DEVICES" &&
  /usr/bin/python3 -c "import json, os, urllib.request as u;
  u.urlopen(u.Request(os.environ['MLFLOW_TRACKING_URI'] + '/api/2.0/mlflow/runs/log-metric',
  data=json.dumps({'run_id': os.environ['MLFLOW_RUN_ID'], 'key': 'loss', 'value': 1.0 / (1 + int(os.environ['RANK'])),
  'step': int(os.environ['RANK']), 'timestamp': 0}).encode(), headers={'Content-Type': 'application/json'}))"
compute: aks
resources: {instance_type: gpu-2, instance_count: 2}
distribution: {type: pytorch, process_count_per_instance: 2}
)YAML");
  }
};

TEST_F(KubernetesEndToEndTest, TwoByTwoGpuJobReportsToTheWorkspace) {
  // The pods run on this machine, so they reach the embedded workspace by its path.
  testing::CommandResult r = Kt("compute attach aks --type kubernetes --kubeconfig " + kubeconfig_ +
                                " --namespace team-a --worker-image kubetrain/worker:test"
                                " --workspace-url " +
                                Ws());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Kt("job create -f " + Job() + " --name e2e --stream");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_THAT(r.output, HasSubstr("rank " + std::to_string(rank) + " of 4 node " +
                                    std::to_string(rank / 2) + " gpus 0,1"));
  }
  r = Kt("job show e2e -o json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  json job = json::parse(r.output);
  EXPECT_EQ(job["status"]["state"], "JOB_STATE_COMPLETED") << r.output;
  EXPECT_EQ(job["placement"]["instances"][0]["node"], "gpu-0");
  EXPECT_EQ(job["placement"]["instances"][1]["node"], "gpu-1");
  EXPECT_EQ(job["metrics"][0]["key"], "loss");
  EXPECT_EQ(job["metrics"][0]["count"], 4);
  EXPECT_EQ(JobObjects(), 0u);
}

TEST_F(KubernetesEndToEndTest, WithoutAWorkspaceUrlLogsComeThroughThePodLogApi) {
  testing::CommandResult r = Kt("compute attach aks --type kubernetes --kubeconfig " + kubeconfig_ +
                                " --namespace team-a --worker-image kubetrain/worker:test");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = Kt("job create -f " + Job() + " --name viaapi --stream");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_THAT(r.output, HasSubstr("rank " + std::to_string(rank) + " of 4"));
  }
  r = Kt("job logs viaapi --rank 3");
  EXPECT_THAT(r.output, HasSubstr("rank 3 of 4 node 1 gpus 0,1"));
  r = Kt("job show viaapi -o json");
  json job = json::parse(r.output);
  EXPECT_EQ(job["status"]["state"], "JOB_STATE_COMPLETED") << r.output;
  EXPECT_EQ(JobObjects(), 0u);
}

TEST_F(KubernetesEndToEndTest, AFailingRankFailsTheJobWithItsLines) {
  ASSERT_EQ(Kt("compute attach aks --type kubernetes --kubeconfig " + kubeconfig_ +
               " --namespace team-a --worker-image kubetrain/worker:test")
                .exit_code,
            0);
  std::string job = Write("fail.yml",
                          "command: 'if [ $RANK = 3 ]; then echo boom >&2; exit 7; fi; sleep 30'\n"
                          "compute: aks\nresources: {instance_type: gpu-2, instance_count: 2}\n"
                          "distribution: {type: pytorch, process_count_per_instance: 2}\n");
  testing::CommandResult r = Kt("job create -f " + job + " --name failing --stream");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  r = Kt("job show failing -o json");
  json shown = json::parse(r.output);
  EXPECT_EQ(shown["status"]["state"], "JOB_STATE_FAILED") << r.output;
  EXPECT_EQ(shown["status"]["reason"], "InstanceFailed") << r.output;
  EXPECT_THAT(shown["status"]["message"].get<std::string>(), HasSubstr("exited with code 1"));
  EXPECT_THAT(shown["status"].dump(), HasSubstr("boom"));
  EXPECT_EQ(JobObjects(), 0u);
}

// Polls `kubetrain job show NAME -o json` until `pred` holds (or 60 s); returns the last record.
json WaitForJob(const std::function<testing::CommandResult()>& show,
                const std::function<bool(const json&)>& pred) {
  json job;
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    testing::CommandResult r = show();
    job = json::parse(r.output, nullptr, false);
    if (!job.is_discarded() && pred(job)) return job;
    absl::SleepFor(absl::Milliseconds(200));
  }
  return job;
}

TEST_F(KubernetesEndToEndTest, CancelStopsThePodsAndDeletesTheObjects) {
  ASSERT_EQ(Kt("compute attach aks --type kubernetes --kubeconfig " + kubeconfig_ +
               " --namespace team-a --worker-image kubetrain/worker:test")
                .exit_code,
            0);
  std::string job = Write("sleep.yml",
                          "command: echo started; sleep 120\ncompute: aks\n"
                          "resources: {instance_type: gpu-2, instance_count: 2}\n");
  ASSERT_EQ(Kt("job create -f " + job + " --name sleeper").exit_code, 0);
  json shown =
      WaitForJob([&] { return Kt("job show sleeper -o json"); },
                 [](const json& j) { return j["status"]["state"] == "JOB_STATE_RUNNING"; });
  ASSERT_EQ(shown["status"]["state"], "JOB_STATE_RUNNING") << shown.dump();
  EXPECT_EQ(Objects("pods").size(), 2u);
  testing::CommandResult r = Kt("job cancel sleeper");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  shown = WaitForJob([&] { return Kt("job show sleeper -o json"); },
                     [](const json& j) { return j["status"]["state"] == "JOB_STATE_CANCELED"; });
  EXPECT_EQ(shown["status"]["state"], "JOB_STATE_CANCELED") << shown.dump();
  EXPECT_EQ(JobObjects(), 0u);
}

TEST_F(KubernetesEndToEndTest, WaitsForWhatOtherPodsHoldOnTheNodes) {
  ASSERT_EQ(Kt("compute attach aks --type kubernetes --kubeconfig " + kubeconfig_ +
               " --namespace team-a --worker-image kubetrain/worker:test")
                .exit_code,
            0);
  // Someone else's pod holds both GPUs of gpu-1 (kubetrain did not start it).
  json foreign = {{"kind", "Pod"},
                  {"metadata", {{"name", "foreign"}, {"namespace", "team-a"}}},
                  {"spec",
                   {{"nodeName", "gpu-1"},
                    {"containers",
                     {{{"name", "c"},
                       {"image", "x"},
                       {"resources", {{"limits", {{"nvidia.com/gpu", "2"}}}}}}}}}},
                  {"status", {{"phase", "Running"}}}};
  ASSERT_TRUE(server_->Control("objects", foreign).ok());
  std::string job = Write("job.yml",
                          "command: echo done\ncompute: aks\n"
                          "resources: {instance_type: gpu-2, instance_count: 2}\n");
  ASSERT_EQ(Kt("job create -f " + job + " --name waits").exit_code, 0);
  json shown = WaitForJob([&] { return Kt("job show waits -o json"); },
                          [](const json& j) { return j.contains("waiting_for"); });
  EXPECT_EQ(shown["status"]["state"], "JOB_STATE_QUEUED") << shown.dump();
  EXPECT_THAT(shown.value("waiting_for", ""), HasSubstr("gpu-1"));
  EXPECT_EQ(Objects("pods").size(), 1u);  // nothing of the job was created
  // The foreign pod finishes: its GPUs are free again and the job runs to its end.
  ASSERT_TRUE(SetPod("foreign", {{"phase", "Succeeded"}}).ok());
  shown = WaitForJob([&] { return Kt("job show waits -o json"); },
                     [](const json& j) { return j["status"]["state"] == "JOB_STATE_COMPLETED"; });
  EXPECT_EQ(shown["status"]["state"], "JOB_STATE_COMPLETED") << shown.dump();
}

TEST_F(KubernetesEndToEndTest, AnUnreachableApiServerKeepsTheJobQueuedAndCancellable) {
  ASSERT_EQ(Kt("compute attach aks --type kubernetes --kubeconfig " + kubeconfig_ +
               " --namespace team-a --worker-image kubetrain/worker:test")
                .exit_code,
            0);
  server_.reset();  // the API server goes away
  std::string job = Write("job.yml",
                          "command: echo done\ncompute: aks\n"
                          "resources: {instance_type: gpu-2, instance_count: 2}\n");
  ASSERT_EQ(Kt("job create -f " + job + " --name unreachable").exit_code, 0);
  json shown = WaitForJob([&] { return Kt("job show unreachable -o json"); },
                          [](const json& j) { return j.contains("waiting_for"); });
  EXPECT_EQ(shown["status"]["state"], "JOB_STATE_QUEUED") << shown.dump();
  EXPECT_THAT(shown.value("waiting_for", ""),
              HasSubstr("cannot read the compute's current capacity"));
  ASSERT_EQ(Kt("job cancel unreachable").exit_code, 0);
  shown = WaitForJob([&] { return Kt("job show unreachable -o json"); },
                     [](const json& j) { return j["status"]["state"] == "JOB_STATE_CANCELED"; });
  EXPECT_EQ(shown["status"]["state"], "JOB_STATE_CANCELED") << shown.dump();
  // Its supervisor has ended (no process left behind).
  testing::CommandResult ps;
  for (int i = 0; i < 50; ++i) {
    ps = testing::RunCommand("pgrep -f 'job supervise unreachabl[e]'");
    if (ps.exit_code != 0) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_NE(ps.exit_code, 0) << ps.output;
}

TEST_F(KubernetesEndToEndTest, ALostSupervisorsObjectsAreDeletedByTheNextOne) {
  ASSERT_EQ(Kt("compute attach aks --type kubernetes --kubeconfig " + kubeconfig_ +
               " --namespace team-a --worker-image kubetrain/worker:test")
                .exit_code,
            0);
  std::string sleeper = Write("sleep.yml",
                              "command: sleep 120\ncompute: aks\n"
                              "resources: {instance_count: 2}\n");
  ASSERT_EQ(Kt("job create -f " + sleeper + " --name orphan").exit_code, 0);
  json shown =
      WaitForJob([&] { return Kt("job show orphan -o json"); },
                 [](const json& j) { return j["status"]["state"] == "JOB_STATE_RUNNING"; });
  ASSERT_EQ(shown["status"]["state"], "JOB_STATE_RUNNING") << shown.dump();
  ASSERT_EQ(JobObjects(), 5u);
  // The supervisor dies without cleaning up (kill -9): its pods and objects stay in the cluster.
  ASSERT_EQ(kill(std::stoi(shown["supervisor_pid"].get<std::string>()), SIGKILL), 0);
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(JobObjects(), 5u);
  // The next job's supervisor reaps it: Failed (SupervisorLost), and its objects deleted.
  std::string job = Write("job.yml", "command: echo next\ncompute: aks\n");
  testing::CommandResult r = Kt("job create -f " + job + " --name next --stream");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  shown = json::parse(Kt("job show orphan -o json").output);
  EXPECT_EQ(shown["status"]["reason"], "SupervisorLost") << shown.dump();
  EXPECT_EQ(JobObjects(), 0u);
}

}  // namespace
}  // namespace kubetrain::backends::kubernetes
