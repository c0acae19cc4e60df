#include "kubetrain/launcher/backends/kubernetes/render.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "kubetrain/common/quantity.h"
#include "kubetrain/launcher/backends/kubernetes/pod_security.h"
#include "kubetrain/launcher/backends/launch_plan.h"

namespace kubetrain::backends::kubernetes {
namespace {

using nlohmann::json;

constexpr size_t kConfigMapLimit = 1000 * 1000;  // etcd's object limit is ~1.5 MB; keep clear
constexpr char kPlaceholderUid[] = "00000000-0000-0000-0000-000000000000";

uint32_t Fnv1a(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

// Lower case [a-z0-9-], no leading/trailing '-', at most `max` characters; a hash suffix when the
// name had to change, so that two different names never map to one.
std::string DnsLabel(const std::string& name, size_t max) {
  std::string out;
  for (char c : name) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool ok = (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9');
    if (ok) {
      out += l;
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  if (out == name && out.size() <= max && !out.empty()) return out;
  std::string hash = absl::StrFormat("%06x", Fnv1a(name) & 0xffffff);
  if (out.size() > max - 7) out.resize(max - 7);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? absl::StrCat("job-", hash) : absl::StrCat(out, "-", hash);
}

std::string CpuText(const v1::Quantity& q) {
  return q.original().empty() ? common::FormatMillicores(q.value()) : q.original();
}
std::string MemoryText(const v1::Quantity& q) {
  return q.original().empty() ? absl::StrCat(q.value()) : q.original();
}

json Metadata(const RenderInput& in, const std::string& name, const json& extra_labels = {}) {
  json labels = {{kLabelManagedBy, "kubetrain"},
                 {kLabelJob, JobLabel(in.job.spec().name())},
                 {kLabelAttempt, absl::StrCat(in.attempt)},
                 {kLabelWorkspace, in.workspace_id}};
  if (extra_labels.is_object()) labels.update(extra_labels);
  json annotations = {{"kubetrain.io/job-name", in.job.spec().name()},
                      {kAnnotationLaunchId, in.launch_id},
                      {"kubetrain.io/instance-type", in.instance_type.name()}};
  if (!in.workspace_url.empty()) annotations["kubetrain.io/workspace"] = in.workspace_url;
  return {{"name", name},
          {"namespace", in.namespace_},
          {"labels", labels},
          {"annotations", annotations}};
}

bool IsRemote(const std::string& path) {
  return path.find("://") != std::string::npos || path.rfind("azureml:", 0) == 0;
}

// Local paths a job names must be on a PVC every pod mounts.
absl::Status CheckLocalPaths(const RenderInput& in) {
  const v1::JobSpec& spec = in.job.spec();
  auto need_pvc = [&](const std::string& what, const std::string& path) -> absl::Status {
    if (MountHolding(in.pvc, path) != nullptr) return absl::OkStatus();
    std::vector<std::string> mounts;
    for (const auto& m : in.pvc.mounts) mounts.push_back(m.mount_path);
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is the local path ", path,
                     ", which pods on the cluster cannot see; put it on a "
                     "PersistentVolumeClaim labelled ml.azure.com/pvc=true (mounted at its "
                     "ml.azure.com/mountpath",
                     mounts.empty() ? "; namespace \"" + in.namespace_ + "\" has none"
                                    : absl::StrCat(": ", absl::StrJoin(mounts, ", ")),
                     ") or use a remote URI"));
  };
  for (const auto& [name, input] : spec.inputs()) {
    if (input.type() == v1::DATA_TYPE_LITERAL || IsRemote(input.path())) continue;
    if (absl::Status s = need_pvc(absl::StrCat("input \"", name, "\""), input.path()); !s.ok()) {
      return s;
    }
  }
  for (const auto& [name, output] : spec.outputs()) {
    if (output.path().empty() || IsRemote(output.path())) continue;
    if (absl::Status s = need_pvc(absl::StrCat("output \"", name, "\""), output.path()); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// The `code:` folder, shipped in the ConfigMap (binaryData) unless it lies on a mounted PVC.
struct CodeFiles {
  json binary_data = json::object();
  json items = json::array();  // configMap volume items: key → relative path
  size_t bytes = 0;
};

absl::StatusOr<CodeFiles> ReadCode(const std::string& dir) {
  CodeFiles out;
  std::error_code ec;
  std::filesystem::recursive_directory_iterator it(dir, ec), end;
  if (ec)
    return absl::NotFoundError(absl::StrCat("cannot read code folder ", dir, ": ", ec.message()));
  std::vector<std::filesystem::path> files;
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    if (it->is_directory() && it->path().filename() == ".git") {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  for (size_t i = 0; i < files.size(); ++i) {
    std::ifstream in(files[i], std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::string key = absl::StrCat("code-", i);
    out.bytes += buffer.str().size();
    if (out.bytes > kConfigMapLimit * 3 / 4) {
      return absl::InvalidArgumentError(absl::StrCat(
          "code folder ", dir, " holds more than ", kConfigMapLimit * 3 / 4 / 1000,
          " kB, too much to ship in a ConfigMap; bake the code into the image or put it on a "
          "PersistentVolumeClaim labelled ml.azure.com/pvc=true and point `code:` there"));
    }
    out.binary_data[key] = absl::Base64Escape(buffer.str());
    out.items.push_back(
        {{"key", key}, {"path", std::filesystem::relative(files[i], dir).string()}});
  }
  return out;
}

json OwnerReference(const std::string& name, const std::string& uid) {
  return json::array({{{"apiVersion", "v1"},
                       {"kind", "Secret"},
                       {"name", name},
                       {"uid", uid},
                       {"controller", false},
                       {"blockOwnerDeletion", false}}});
}

}  // namespace

std::vector<json> RenderedJob::All() const {
  std::vector<json> all = {secret, config_map, service};
  all.insert(all.end(), pods.begin(), pods.end());
  return all;
}

std::string BaseName(const std::string& job_name, int attempt) {
  std::string label = DnsLabel(job_name, 40);
  if (label.empty() || !(label[0] >= 'a' && label[0] <= 'z')) label = "kt-" + label;
  return absl::StrCat(label, "-", attempt);
}

std::string JobLabel(const std::string& job_name) { return DnsLabel(job_name, 63); }

std::string AttemptSelector(const std::string& job_name, int attempt,
                            const std::string& workspace_id) {
  return absl::StrCat(kLabelManagedBy, "=kubetrain,", kLabelJob, "=", JobLabel(job_name), ",",
                      kLabelAttempt, "=", attempt, ",", kLabelWorkspace, "=", workspace_id);
}

void SetOwner(const json& created_secret, RenderedJob& job) {
  json refs = OwnerReference(created_secret["metadata"].value("name", ""),
                             created_secret["metadata"].value("uid", ""));
  job.config_map["metadata"]["ownerReferences"] = refs;
  job.service["metadata"]["ownerReferences"] = refs;
  for (json& pod : job.pods) pod["metadata"]["ownerReferences"] = refs;
}

absl::StatusOr<RenderedJob> RenderJob(const RenderInput& in) {
  const v1::JobSpec& spec = in.job.spec();
  const v1::Placement& placement = in.job.placement();
  const int count = placement.instances_size();
  if (count == 0) return absl::InvalidArgumentError("the job has no placement to render");
  std::string image =
      spec.environment().image().empty() ? in.worker_image : spec.environment().image();
  if (image.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "job \"", spec.name(),
        "\" names no container image: give `environment: {image: ...}` "
        "(an image built from docker/, with kubetrain-worker on PATH), or attach the compute "
        "with --worker-image"));
  }
  if (absl::Status s = CheckLocalPaths(in); !s.ok()) return s;
  bool code_on_pvc = !spec.code().local_path().empty() &&
                     MountHolding(in.pvc, spec.code().local_path()) != nullptr;
  CodeFiles code;
  if (!spec.code().local_path().empty() && !code_on_pvc) {
    absl::StatusOr<CodeFiles> read = ReadCode(spec.code().local_path());
    if (!read.ok()) return read.status();
    code = std::move(*read);
  }

  RenderedJob out;
  out.base = BaseName(spec.name(), in.attempt);
  const std::string& base = out.base;
  const std::string config_name = base + "-config";
  int procs = std::max(1, spec.distribution().process_count_per_instance());

  // Hosts: each pod's stable DNS name through the headless Service.
  std::vector<std::string> hosts;
  std::string hostfile;
  for (int i = 0; i < count; ++i) {
    hosts.push_back(absl::StrCat(base, "-", i, ".", base));
    absl::StrAppend(&hostfile, hosts.back(), " slots=", procs, "\n");
  }

  // Secret: the owner of the rest.
  json secret_data = {{"job-token", absl::Base64Escape(in.job_token)}};
  if (!in.workspace_token.empty()) {
    secret_data["workspace-token"] = absl::Base64Escape(in.workspace_token);
  }
  out.secret = {{"apiVersion", "v1"},
                {"kind", "Secret"},
                {"metadata", Metadata(in, base)},
                {"type", "Opaque"},
                {"data", secret_data}};

  // ConfigMap: job spec, hostfile, plans (and the code folder).
  LaunchRequest request;
  request.job = in.job;
  request.attempt = in.attempt;
  request.workspace = in.workspace_url;
  request.attempt_dir = absl::StrCat(kScratchDir, "/job");
  request.checkpoint_dir = absl::StrCat(kScratchDir, "/checkpoints");
  request.grace = in.grace;
  request.job.set_job_dir(kScratchDir);  // default outputs: /kubetrain/outputs/<name>
  // The spec as the pods see it: the code folder where the ConfigMap puts it, nothing that only
  // means something on the submitting machine (the YAML's path, field locations).
  v1::JobSpec pod_spec = spec;
  pod_spec.clear_source_file();
  pod_spec.clear_locations();
  if (!spec.code().local_path().empty() && !code_on_pvc) {
    pod_spec.mutable_code()->set_local_path(absl::StrCat(kConfigDir, "/code"));
  }
  *request.job.mutable_spec() = pod_spec;
  json data = {{"hostfile", hostfile}};
  {
    std::string spec_json;
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(pod_spec, &spec_json, options);
    data["job.json"] = json::parse(spec_json).dump(2) + "\n";  // sorted keys: deterministic
  }
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<v1::InstanceLaunch> plan =
        BuildInstanceLaunch(request, i, hosts, in.master_port);
    if (!plan.ok()) return plan.status();
    plan->set_job_dir(absl::StrCat(kScratchDir, "/job"));
    if (spec.distribution().type() == v1::DistributionSpec::TYPE_MPI) {
      plan->set_rsh_port(in.master_port + 1);  // mpirun's remote launches (agent/mpi/rsh_agent.h)
    }
    // Inside a pod the device plugin exposes the granted GPUs as 0..n-1; no cpu affinity.
    for (v1::InstancePlacement& p : *plan->mutable_placement()->mutable_instances()) {
      int gpus = p.gpu_ids_size();
      p.clear_gpu_ids();
      for (int g = 0; g < gpus; ++g) p.add_gpu_ids(g);
      p.clear_cpu_ids();
    }
    std::string text;
    google::protobuf::TextFormat::PrintToString(*plan, &text);
    data[absl::StrCat("instance-", i, ".plan")] = text;
  }
  out.config_map = {{"apiVersion", "v1"},
                    {"kind", "ConfigMap"},
                    {"metadata", Metadata(in, config_name)},
                    {"data", data}};
  if (!code.binary_data.empty()) out.config_map["binaryData"] = code.binary_data;
  size_t size = out.config_map.dump().size();
  if (size > kConfigMapLimit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the job's ConfigMap would be ", size / 1000, " kB, over Kubernetes' limit of about ",
        kConfigMapLimit / 1000, " kB; ship less code (bake it into the image or use a PVC)"));
  }

  // Headless Service: DNS names for the pods, before they are ready.
  json selector = {{kLabelJob, JobLabel(spec.name())},
                   {kLabelAttempt, absl::StrCat(in.attempt)},
                   {kLabelWorkspace, in.workspace_id}};
  out.service = {{"apiVersion", "v1"},
                 {"kind", "Service"},
                 {"metadata", Metadata(in, base)},
                 {"spec",
                  {{"clusterIP", "None"},
                   {"publishNotReadyAddresses", true},
                   {"selector", selector},
                   {"ports", json::array({{{"name", "rendezvous"},
                                           {"port", in.master_port},
                                           {"targetPort", in.master_port},
                                           {"protocol", "TCP"}}})}}}};

  // Pods.
  const v1::InstanceType& type = in.instance_type;
  json requests = json::object(), limits = json::object();
  const v1::ResourceList& req = type.requests();
  const v1::ResourceList& lim = type.limits();
  if (req.has_cpu()) requests["cpu"] = CpuText(req.cpu());
  if (req.has_memory()) requests["memory"] = MemoryText(req.memory());
  if (lim.has_cpu()) limits["cpu"] = CpuText(lim.cpu());
  if (lim.has_memory()) limits["memory"] = MemoryText(lim.memory());
  if (lim.gpu() > 0) limits["nvidia.com/gpu"] = absl::StrCat(lim.gpu());
  json resources = {{"limits", limits}};
  if (!requests.empty()) resources["requests"] = requests;

  int64_t grace_s = std::max<int64_t>(1, absl::ToInt64Seconds(in.grace));
  for (int i = 0; i < count; ++i) {
    const v1::InstancePlacement& p = placement.instances(i);
    std::string name = absl::StrCat(base, "-", i);
    json command = json::array({"kubetrain-worker", "--plan-text",
                                absl::StrCat(kConfigDir, "/instance-", i, ".plan"), "--log-level",
                                "info", "--output", "json"});
    if (in.workspace_url.empty()) command.push_back("--no-workspace");
    json env = json::array();
    if (!in.workspace_url.empty()) {
      env.push_back({{"name", "KUBETRAIN_WORKSPACE"}, {"value", in.workspace_url}});
    }
    if (!in.workspace_token.empty()) {
      env.push_back(
          {{"name", "KUBETRAIN_WORKSPACE_TOKEN"},
           {"valueFrom", {{"secretKeyRef", {{"name", base}, {"key", "workspace-token"}}}}}});
    }
    env.push_back({{"name", "KUBETRAIN_JOB_TOKEN"},
                   {"valueFrom", {{"secretKeyRef", {{"name", base}, {"key", "job-token"}}}}}});
    env.push_back({{"name", "KUBETRAIN_POD_NAME"},
                   {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}});
    json mounts = json::array({{{"name", "config"}, {"mountPath", kConfigDir}, {"readOnly", true}},
                               {{"name", "scratch"}, {"mountPath", kScratchDir}}});
    json volumes = json::array(
        {{{"name", "config"},
          {"configMap",
           {{"name", config_name},
            {"items", json::array({{{"key", "hostfile"}, {"path", "hostfile"}},
                                   {{"key", "job.json"}, {"path", "job.json"}},
                                   {{"key", absl::StrCat("instance-", i, ".plan")},
                                    {"path", absl::StrCat("instance-", i, ".plan")}}})}}}},
         {{"name", "scratch"}, {"emptyDir", json::object()}}});
    if (!code.items.empty()) {
      mounts.push_back(
          {{"name", "code"}, {"mountPath", absl::StrCat(kConfigDir, "/code")}, {"readOnly", true}});
      volumes.push_back(
          {{"name", "code"}, {"configMap", {{"name", config_name}, {"items", code.items}}}});
    }
    if (spec.resources().has_shm_size()) {
      mounts.push_back({{"name", "dshm"}, {"mountPath", "/dev/shm"}});
      volumes.push_back(
          {{"name", "dshm"},
           {"emptyDir",
            {{"medium", "Memory"}, {"sizeLimit", MemoryText(spec.resources().shm_size())}}}});
    }
    for (const json& m : in.pvc.volume_mounts) mounts.push_back(m);
    for (const json& v : in.pvc.volumes) volumes.push_back(v);

    json ports = json::array(
        {{{"name", "rendezvous"}, {"containerPort", in.master_port}, {"protocol", "TCP"}}});
    if (spec.distribution().type() == v1::DistributionSpec::TYPE_MPI) {
      ports.push_back(
          {{"name", "mpi-launch"}, {"containerPort", in.master_port + 1}, {"protocol", "TCP"}});
    }
    json container = {{"name", kContainerName},
                      {"image", image},
                      {"imagePullPolicy", "IfNotPresent"},
                      {"command", command},
                      {"env", env},
                      {"resources", resources},
                      {"ports", ports},
                      {"volumeMounts", mounts},
                      {"securityContext", {{"allowPrivilegeEscalation", false}}}};
    json pod_meta = Metadata(in, name, {{kLabelInstance, absl::StrCat(i)}});
    json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", pod_meta},
                {"spec",
                 {{"nodeName", p.node()},
                  {"restartPolicy", "Never"},
                  {"hostname", name},
                  {"subdomain", base},
                  {"enableServiceLinks", false},
                  {"automountServiceAccountToken", false},
                  {"terminationGracePeriodSeconds", grace_s},
                  {"containers", json::array({container})},
                  {"volumes", volumes}}}};
    std::vector<std::string> violations = CheckBaseline(pod);
    if (!violations.empty()) {
      return absl::InternalError(absl::StrCat(
          "pod ", name,
          " would break the Baseline Pod Security Standard: ", absl::StrJoin(violations, "; ")));
    }
    out.pods.push_back(std::move(pod));
  }
  SetOwner({{"metadata", {{"name", base}, {"uid", kPlaceholderUid}}}}, out);
  return out;
}

}  // namespace kubetrain::backends::kubernetes
