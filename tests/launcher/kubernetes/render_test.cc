// Rendering: golden files for the common jobs (set KUBETRAIN_UPDATE_GOLDEN=1 to rewrite them),
// the Baseline Pod Security check on every rendered pod (and on pods that break it), names,
// resources, mounts, ownership; pod status mapping; the PVC rule.
#include "kubetrain/launcher/backends/kubernetes/render.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubetrain/launcher/backends/kubernetes/pod_security.h"
#include "kubetrain/launcher/backends/kubernetes/pod_status.h"
#include "kubetrain/launcher/backends/kubernetes/pvc_mounts.h"
#include "kubetrain/launcher/backends/kubernetes/yaml_out.h"
#include "tests/launcher/kubernetes/sample_jobs.h"
#include "yaml-cpp/yaml.h"

namespace kubetrain::backends::kubernetes {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

const std::string kGoldenDir = KUBETRAIN_SOURCE_DIR "/tests/launcher/kubernetes/golden/";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream b;
  b << in.rdbuf();
  return b.str();
}

// YAML → JSON with yaml-cpp's own typing (so a quoting mistake in ToYaml shows as a type change).
json FromYaml(const YAML::Node& n) {
  if (n.IsMap()) {
    json o = json::object();
    for (auto it = n.begin(); it != n.end(); ++it) o[it->first.Scalar()] = FromYaml(it->second);
    return o;
  }
  if (n.IsSequence()) {
    json a = json::array();
    for (YAML::Node item : n) a.push_back(FromYaml(item));
    return a;
  }
  if (n.IsNull()) return nullptr;
  if (n.Tag() == "!") return n.Scalar();  // quoted: always a string
  const std::string& s = n.Scalar();
  if (s == "true" || s == "false") return s == "true";
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (!s.empty() && *end == '\0') return v;
  return s;
}

TEST(RenderTest, GoldenFiles) {
  for (const auto& sample : testing::SampleJobs()) {
    SCOPED_TRACE(sample.name);
    absl::StatusOr<RenderedJob> r = RenderJob(sample.input);
    ASSERT_TRUE(r.ok()) << r.status();
    std::string yaml = ToYamlDocuments(r->All());
    std::string path = kGoldenDir + sample.name + ".yaml";
    if (std::getenv("KUBETRAIN_UPDATE_GOLDEN") != nullptr) {
      std::ofstream(path) << yaml;
      continue;
    }
    EXPECT_EQ(ReadFile(path), yaml)
        << "rendering changed; if that is intended, rerun with KUBETRAIN_UPDATE_GOLDEN=1 and "
           "review the diff of "
        << path;
    // The YAML reads back as exactly the JSON (types and multi-line text included).
    std::vector<YAML::Node> docs = YAML::LoadAll(yaml);
    ASSERT_EQ(docs.size(), r->All().size());
    for (size_t i = 0; i < docs.size(); ++i) EXPECT_EQ(FromYaml(docs[i]), r->All()[i]);
  }
}

TEST(RenderTest, TwoByTwoGpuJob) {
  auto sample = testing::SampleJobs()[0];
  absl::StatusOr<RenderedJob> r = RenderJob(sample.input);
  ASSERT_TRUE(r.ok()) << r.status();
  // "bert_pretrain_01" is not a DNS label: lower-cased, '_' → '-', and a hash of the real name.
  EXPECT_THAT(r->base, ::testing::MatchesRegex("bert-pretrain-01-[0-9a-f]{6}-0"));
  ASSERT_EQ(r->pods.size(), 2u);
  EXPECT_EQ(r->secret["kind"], "Secret");
  EXPECT_EQ(r->service["spec"]["clusterIP"], "None");
  EXPECT_EQ(r->service["spec"]["publishNotReadyAddresses"], true);
  for (int i = 0; i < 2; ++i) {
    const json& pod = r->pods[i];
    EXPECT_EQ(pod["metadata"]["name"], r->base + "-" + std::to_string(i));
    EXPECT_EQ(pod["metadata"]["labels"][kLabelInstance], std::to_string(i));
    EXPECT_EQ(pod["metadata"]["labels"][kLabelJob], JobLabel("bert_pretrain_01"));
    EXPECT_EQ(pod["metadata"]["annotations"]["kubetrain.io/job-name"], "bert_pretrain_01");
    EXPECT_EQ(pod["metadata"]["ownerReferences"][0]["kind"], "Secret");
    EXPECT_EQ(pod["metadata"]["ownerReferences"][0]["name"], r->base);
    EXPECT_EQ(pod["spec"]["nodeName"], i == 0 ? "aks-gpu-0" : "aks-gpu-1");
    EXPECT_EQ(pod["spec"]["subdomain"], r->base);
    EXPECT_EQ(pod["spec"]["restartPolicy"], "Never");
    const json& c = pod["spec"]["containers"][0];
    EXPECT_EQ(c["image"], "myregistry.azurecr.io/kubetrain/pytorch:2.3");
    EXPECT_EQ(c["resources"]["limits"]["nvidia.com/gpu"], "2");
    EXPECT_EQ(c["resources"]["limits"]["cpu"], "8");
    EXPECT_EQ(c["resources"]["requests"]["memory"], "16Gi");
    EXPECT_FALSE(c["resources"]["requests"].contains("nvidia.com/gpu"));
    std::string mounts = c["volumeMounts"].dump();
    EXPECT_THAT(mounts, HasSubstr(R"("mountPath":"/dev/shm")"));
    EXPECT_THAT(mounts, HasSubstr(R"("mountPath":"/mnt/data")"));
    std::string volumes = pod["spec"]["volumes"].dump();
    EXPECT_THAT(volumes,
                HasSubstr(R"({"emptyDir":{"medium":"Memory","sizeLimit":"8Gi"},"name":"dshm"})"));
    EXPECT_THAT(volumes, HasSubstr(R"("claimName":"datasets")"));
    std::string env = c["env"].dump();
    EXPECT_THAT(
        env,
        HasSubstr(
            R"({"name":"KUBETRAIN_WORKSPACE","value":"grpc://kubetrain-workspace.ml.svc:7070"})"));
    EXPECT_THAT(env, HasSubstr(R"("secretKeyRef":{"key":"workspace-token","name":")" + r->base));
    EXPECT_TRUE(CheckBaseline(pod).empty());
  }
  // The plan each pod runs: its index, every pod's DNS name, GPUs as the container sees them.
  std::string plan = r->config_map["data"]["instance-1.plan"];
  EXPECT_THAT(plan, HasSubstr("instance_index: 1"));
  EXPECT_THAT(plan, HasSubstr("instance_hosts: \"" + r->base + "-0." + r->base + "\""));
  EXPECT_THAT(plan, HasSubstr("gpu_ids: 0\n"));
  EXPECT_THAT(plan, ::testing::Not(HasSubstr("gpu_ids: 2")));
  EXPECT_THAT(plan, HasSubstr("job_dir: \"/kubetrain/job\""));
  EXPECT_EQ(r->config_map["data"]["hostfile"],
            r->base + "-0." + r->base + " slots=2\n" + r->base + "-1." + r->base + " slots=2\n");
  EXPECT_EQ(r->secret["data"]["job-token"], "Z29sZGVuLXRva2Vu");  // base64("golden-token")
}

TEST(RenderTest, CodeFolderShippedInConfigMap) {
  auto sample = testing::SampleJobs()[2];
  absl::StatusOr<RenderedJob> r = RenderJob(sample.input);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->config_map["binaryData"].size(), 2u);
  std::string volumes = r->pods[0]["spec"]["volumes"].dump();
  EXPECT_THAT(volumes, HasSubstr(R"("path":"lib/config.py")"));
  EXPECT_THAT(volumes, HasSubstr(R"("path":"train.py")"));
  EXPECT_THAT(std::string(r->config_map["data"]["instance-0.plan"]),
              HasSubstr("local_path: \"/etc/kubetrain/code\""));
  EXPECT_EQ(r->pods[0]["spec"]["containers"][0]["command"].back(), "--no-workspace");
}

TEST(RenderTest, ErrorsSayWhatToDo) {
  auto sample = testing::SampleJobs()[1];
  sample.input.worker_image.clear();
  absl::StatusOr<RenderedJob> r = RenderJob(sample.input);
  EXPECT_THAT(r.status().message(), HasSubstr("--worker-image"));

  sample = testing::SampleJobs()[0];
  sample.input.pvc = PvcMounts();  // /mnt/data/wiki is then on no claim
  r = RenderJob(sample.input);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("input \"data\""));
  EXPECT_THAT(r.status().message(), HasSubstr("ml.azure.com/pvc=true"));
}

TEST(RenderTest, NamesAreValidLabels) {
  EXPECT_EQ(BaseName("train-1", 0), "train-1-0");
  EXPECT_THAT(BaseName("9lives", 2), ::testing::MatchesRegex("kt-9lives-2"));
  std::string long_name(100, 'x');
  EXPECT_LE(BaseName(long_name, 12).size(), 47u);
  EXPECT_NE(JobLabel("A_b"), JobLabel("a-b"));  // different names never share a label
  EXPECT_LE(JobLabel(std::string(200, 'Q')).size(), 63u);
}

json PodWith(const json& spec_patch, const json& container_patch = json::object()) {
  json c = {{"name", "worker"}, {"image", "x"}};
  if (container_patch.is_object()) c.update(container_patch);
  json spec = {{"containers", json::array({c})}};
  if (spec_patch.is_object()) spec.update(spec_patch);
  return {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", {{"name", "p"}}}, {"spec", spec}};
}

TEST(PodSecurityTest, BaselineViolationsAreFound) {
  EXPECT_TRUE(CheckBaseline(PodWith({})).empty());
  EXPECT_EQ(CheckBaseline(PodWith({{"hostNetwork", true}})).size(), 1u);
  EXPECT_EQ(CheckBaseline(PodWith({{"hostPID", true}, {"hostIPC", true}})).size(), 2u);
  EXPECT_EQ(CheckBaseline(PodWith({{"volumes", {{{"name", "h"}, {"hostPath", {{"path", "/"}}}}}}}))
                .size(),
            1u);
  EXPECT_EQ(CheckBaseline(PodWith({}, {{"securityContext", {{"privileged", true}}}})).size(), 1u);
  EXPECT_EQ(CheckBaseline(PodWith({}, {{"securityContext",
                                        {{"capabilities", {{"add", {"SYS_ADMIN", "CHOWN"}}}}}}}))
                .size(),
            1u);
  EXPECT_TRUE(CheckBaseline(PodWith({}, {{"securityContext",
                                          {{"capabilities", {{"add", {"NET_BIND_SERVICE"}}}}}}}))
                  .empty());
  EXPECT_EQ(
      CheckBaseline(PodWith({}, {{"ports", {{{"containerPort", 80}, {"hostPort", 80}}}}})).size(),
      1u);
  EXPECT_EQ(CheckBaseline(PodWith({{"securityContext",
                                    {{"seccompProfile", {{"type", "Unconfined"}}},
                                     {"sysctls", {{{"name", "kernel.msgmax"}, {"value", "1"}}}}}}}))
                .size(),
            2u);
  EXPECT_EQ(CheckBaseline(PodWith({}, {{"securityContext", {{"procMount", "Unmasked"}}}})).size(),
            1u);
  json apparmor = PodWith({});
  apparmor["metadata"]["annotations"] = {
      {"container.apparmor.security.beta.kubernetes.io/worker", "unconfined"}};
  EXPECT_EQ(CheckBaseline(apparmor).size(), 1u);
  json init =
      PodWith({{"initContainers", {{{"name", "i"}, {"securityContext", {{"privileged", true}}}}}}});
  EXPECT_EQ(CheckBaseline(init).size(), 1u);
}

TEST(PodSecurityTest, EveryRenderedPodConforms) {
  for (const auto& sample : testing::SampleJobs()) {
    absl::StatusOr<RenderedJob> r = RenderJob(sample.input);
    ASSERT_TRUE(r.ok()) << r.status();
    for (const json& pod : r->pods) {
      EXPECT_THAT(CheckBaseline(pod), ::testing::IsEmpty()) << sample.name;
    }
  }
}

json Pod(const std::string& phase, const json& state, const json& status_extra = json::object()) {
  json status = {
      {"phase", phase},
      {"containerStatuses", {{{"name", "worker"}, {"image", "img:1"}, {"state", state}}}}};
  status.update(status_extra);
  return {{"metadata", {{"name", "job-0-1"}}}, {"spec", {{"nodeName", "n1"}}}, {"status", status}};
}

TEST(PodStatusTest, PhasesAndContainerStatesMapToJobStates) {
  EXPECT_EQ(ClassifyPod(Pod("Pending", {{"waiting", {{"reason", "ContainerCreating"}}}})).state,
            v1::JOB_STATE_STARTING);
  EXPECT_EQ(ClassifyPod(Pod("Running", {{"running", {{"startedAt", "x"}}}})).state,
            v1::JOB_STATE_RUNNING);
  EXPECT_EQ(ClassifyPod(Pod("Succeeded", {{"terminated", {{"exitCode", 0}}}})).state,
            v1::JOB_STATE_COMPLETED);
  PodOutcome pull = ClassifyPod(
      Pod("Pending", {{"waiting", {{"reason", "ImagePullBackOff"}, {"message", "not found"}}}}));
  EXPECT_EQ(pull.state, v1::JOB_STATE_FAILED);
  EXPECT_EQ(pull.reason, "ImagePullBackOff");
  EXPECT_THAT(pull.message, HasSubstr("img:1"));
  PodOutcome oom =
      ClassifyPod(Pod("Failed", {{"terminated", {{"exitCode", 137}, {"reason", "OOMKilled"}}}}));
  EXPECT_EQ(oom.reason, "OOMKilled");
  EXPECT_THAT(oom.message, HasSubstr("memory"));
  PodOutcome evicted = ClassifyPod(
      Pod("Failed", json::object(),
          {{"reason", "Evicted"}, {"message", "The node was low on resource: memory."}}));
  EXPECT_EQ(evicted.reason, "Evicted");
  EXPECT_THAT(evicted.message, HasSubstr("low on resource"));
  PodOutcome failed =
      ClassifyPod(Pod("Failed", {{"terminated", {{"exitCode", 1}, {"reason", "Error"}}}}));
  EXPECT_EQ(failed.reason, "InstanceFailed");
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_THAT(failed.message, HasSubstr("on node n1"));
  EXPECT_EQ(ClassifyPod(Pod("Failed", {{"terminated", {{"exitCode", 124}}}})).reason, "Timeout");
  EXPECT_EQ(
      ClassifyPod(Pod("Pending", {{"waiting", {{"reason", "CreateContainerConfigError"}}}})).reason,
      "CreateContainerConfigError");
}

TEST(PvcMountsTest, AzureMlClaimsAreMountedAtTheirAnnotation) {
  absl::StatusOr<PvcMounts> m = PvcMountsFromList(testing::SamplePvcList());
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->mounts.size(), 1u);
  EXPECT_EQ(m->mounts[0].claim, "datasets");
  EXPECT_EQ(m->volumes.dump(),
            R"([{"name":"pvc-0","persistentVolumeClaim":{"claimName":"datasets"}}])");
  EXPECT_EQ(m->volume_mounts.dump(), R"([{"mountPath":"/mnt/data","name":"pvc-0"}])");
  EXPECT_NE(MountHolding(*m, "/mnt/data/x/y"), nullptr);
  EXPECT_EQ(MountHolding(*m, "/mnt/database"), nullptr);
}

json Claim(const std::string& name, const json& annotations, bool labelled = true,
           const json& extra_meta = json::object()) {
  json meta = {{"name", name}, {"annotations", annotations}};
  if (labelled) meta["labels"] = {{"ml.azure.com/pvc", "true"}};
  meta.update(extra_meta);
  return {{"metadata", meta}, {"status", {{"phase", "Bound"}}}};
}

TEST(PvcMountsTest, RulesAndErrors) {
  auto run = [](const json& claims) { return PvcMountsFromList(claims); };
  // Read-only, ordering by claim name.
  auto ok = run(json::array(
      {Claim("b", {{"ml.azure.com/mountpath", "/mnt/b"}}),
       Claim("a", {{"ml.azure.com/mountpath", "/mnt/a"}, {"ml.azure.com/readonly", "true"}})}));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->mounts[0].claim, "a");
  EXPECT_TRUE(ok->mounts[0].read_only);
  EXPECT_EQ(ok->volume_mounts[0]["readOnly"], true);
  // Missing annotation, relative path, reserved path, same path twice, nested paths.
  EXPECT_THAT(run(json::array({Claim("x", json::object())})).status().message(),
              HasSubstr("has no annotation ml.azure.com/mountpath"));
  EXPECT_THAT(
      run(json::array({Claim("x", {{"ml.azure.com/mountpath", "data"}})})).status().message(),
      HasSubstr("absolute"));
  EXPECT_THAT(
      run(json::array({Claim("x", {{"ml.azure.com/mountpath", "/dev/shm"}})})).status().message(),
      HasSubstr("overlaps /dev"));
  EXPECT_THAT(run(json::array({Claim("x", {{"ml.azure.com/mountpath", "/mnt/../etc"}})}))
                  .status()
                  .message(),
              HasSubstr("normalised"));
  EXPECT_THAT(run(json::array({Claim("x", {{"ml.azure.com/mountpath", "/mnt/d"}}),
                               Claim("y", {{"ml.azure.com/mountpath", "/mnt/d"}})}))
                  .status()
                  .message(),
              HasSubstr("both mounted at /mnt/d"));
  EXPECT_FALSE(run(json::array({Claim("x", {{"ml.azure.com/mountpath", "/mnt/d"}}),
                                Claim("y", {{"ml.azure.com/mountpath", "/mnt/d/e"}})}))
                   .ok());
  // Unlabelled claims are ignored; a claim being deleted is skipped with a warning.
  auto skipped = run(json::array({Claim("u", json::object(), false),
                                  Claim("gone", {{"ml.azure.com/mountpath", "/mnt/g"}}, true,
                                        {{"deletionTimestamp", "2024-01-01T00:00:00Z"}})}));
  ASSERT_TRUE(skipped.ok());
  EXPECT_TRUE(skipped->mounts.empty());
  ASSERT_EQ(skipped->warnings.size(), 1u);
  EXPECT_THAT(skipped->warnings[0], HasSubstr("being deleted"));
}

TEST(YamlOutTest, QuotesWhatYamlWouldRetype) {
  json v = {{"a", "0"}, {"b", "true"},           {"c", "plain"},       {"d", "x: y"}, {"e", ""},
            {"f", 3},   {"g", "line1\nline2\n"}, {"h", json::array()}, {"i", "1e3"},  {"j", "No"}};
  std::string y = ToYaml(v);
  EXPECT_THAT(y, HasSubstr("a: \"0\"\n"));
  EXPECT_THAT(y, HasSubstr("b: \"true\"\n"));
  EXPECT_THAT(y, HasSubstr("c: plain\n"));
  EXPECT_THAT(y, HasSubstr("d: \"x: y\"\n"));
  EXPECT_THAT(y, HasSubstr("e: \"\"\n"));
  EXPECT_THAT(y, HasSubstr("f: 3\n"));
  EXPECT_THAT(y, HasSubstr("g: |\n  line1\n  line2\n"));
  EXPECT_THAT(y, HasSubstr("i: \"1e3\"\n"));
  EXPECT_THAT(y, HasSubstr("j: \"No\"\n"));
  EXPECT_EQ(FromYaml(YAML::Load(y)), v);
}

}  // namespace
}  // namespace kubetrain::backends::kubernetes
