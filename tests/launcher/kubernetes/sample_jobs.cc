#include "tests/launcher/kubernetes/sample_jobs.h"

#include "absl/strings/str_cat.h"
#include "kubetrain/launcher/compute/instance_types.h"
#include "kubetrain/launcher/spec/job_parser.h"

namespace kubetrain::testing {
namespace {

v1::JobSpec Parse(const std::string& yaml) {
  spec::JobParseResult r =
      spec::ParseJobYaml(yaml, KUBETRAIN_SOURCE_DIR "/tests/launcher/kubernetes/testdata/job.yml");
  if (r.diagnostics.has_errors()) {
    fprintf(stderr, "%s", r.diagnostics.Format().c_str());
    abort();
  }
  return r.spec;
}

v1::InstanceType GpuType() {
  compute::InstanceTypeParseResult r = compute::ParseInstanceTypesYaml(R"(
apiVersion: amlarc.azureml.com/v1alpha1
kind: InstanceType
metadata: {name: gpu-2}
spec:
  nodeSelector: {accelerator: nvidia-a100}
  resources:
    requests: {cpu: "4", memory: 16Gi}
    limits: {cpu: "8", memory: 32Gi, nvidia.com/gpu: 2}
)",
                                                                       "gpu.yml");
  return r.items.at(0);
}

v1::Placement Place(const std::vector<std::string>& nodes, int gpus) {
  v1::Placement p;
  p.set_compute("aks");
  for (size_t i = 0; i < nodes.size(); ++i) {
    v1::InstancePlacement* ip = p.add_instances();
    ip->set_instance_index(static_cast<int>(i));
    ip->set_node(nodes[i]);
    for (int g = 0; g < gpus; ++g) ip->add_gpu_ids(g + 2);  // the device plugin renumbers them
  }
  return p;
}

backends::kubernetes::RenderInput Base() {
  backends::kubernetes::RenderInput in;
  in.namespace_ = "team-a";
  in.workspace_id = "ws-0123456789ab";
  in.job_token = "golden-token";
  in.launch_id = "golden";
  in.pvc = *backends::kubernetes::PvcMountsFromList(SamplePvcList());
  return in;
}

}  // namespace

nlohmann::json SamplePvcList() {
  return nlohmann::json::parse(R"({
    "kind": "PersistentVolumeClaimList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
    "items": [
      {"metadata": {"name": "datasets", "namespace": "team-a",
                    "labels": {"ml.azure.com/pvc": "true"},
                    "annotations": {"ml.azure.com/mountpath": "/mnt/data"}},
       "spec": {"accessModes": ["ReadWriteMany"]}, "status": {"phase": "Bound"}},
      {"metadata": {"name": "unrelated", "namespace": "team-a"},
       "spec": {"accessModes": ["ReadWriteOnce"]}, "status": {"phase": "Bound"}}
    ]})");
}

std::vector<SampleJob> SampleJobs() {
  std::vector<SampleJob> out;
  {
    SampleJob j{"pytorch-2x2-gpu", Base()};
    *j.input.job.mutable_spec() = Parse(R"(
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
name: bert_pretrain_01
experiment_name: bert
command: python train.py --epochs ${{inputs.epochs}}
inputs:
  epochs: 3
environment: {image: myregistry.azurecr.io/kubetrain/pytorch:2.3}
compute: azureml:aks
resources: {instance_type: gpu-2, instance_count: 2, shm_size: 8Gi}
distribution: {type: pytorch, process_count_per_instance: 2}
kubetrain: {start_timeout: 900}
)");
    // On the cluster's PVC: the parser checks local paths exist here, so it is added after.
    v1::JobInput data;
    data.set_type(v1::DATA_TYPE_URI_FOLDER);
    data.set_path("/mnt/data/wiki");
    (*j.input.job.mutable_spec()->mutable_inputs())["data"] = data;
    j.input.job.mutable_spec()->set_command(
        "python train.py --data ${{inputs.data}} --epochs ${{inputs.epochs}}");
    *j.input.job.mutable_placement() = Place({"aks-gpu-0", "aks-gpu-1"}, 2);
    j.input.instance_type = GpuType();
    j.input.workspace_url = "grpc://kubetrain-workspace.ml.svc:7070";
    j.input.workspace_token = "golden-workspace-token";
    out.push_back(std::move(j));
  }
  {
    SampleJob j{"mpi-cpu", Base()};
    *j.input.job.mutable_spec() = Parse(R"(
type: command
name: allreduce-check
command: python3 allreduce.py
compute: aks
resources: {instance_count: 2}
distribution: {type: mpi, process_count_per_instance: 2}
)");
    *j.input.job.mutable_placement() = Place({"aks-cpu-0", "aks-cpu-0"}, 0);
    j.input.instance_type = compute::DefaultInstanceType();
    j.input.worker_image = "myregistry.azurecr.io/kubetrain/worker:0.1.0";
    out.push_back(std::move(j));
  }
  {
    SampleJob j{"command-code", Base()};
    *j.input.job.mutable_spec() = Parse(R"(
type: command
name: hello
code: code
command: python train.py
compute: aks
environment_variables: {STEPS: "10"}
)");
    *j.input.job.mutable_placement() = Place({"aks-cpu-1"}, 0);
    j.input.instance_type = compute::DefaultInstanceType();
    j.input.worker_image = "myregistry.azurecr.io/kubetrain/worker:0.1.0";
    j.input.pvc = backends::kubernetes::PvcMounts();
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace kubetrain::testing
