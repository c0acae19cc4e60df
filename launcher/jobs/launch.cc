#include "kubetrain/launcher/jobs/launch.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "kubetrain/common/status_macros.h"
#include "kubetrain/launcher/backends/kubernetes/kubernetes_backend.h"
#include "kubetrain/launcher/backends/local/local_backend.h"
#include "kubetrain/launcher/compute/targets.h"
#include "kubetrain/launcher/jobs/job_supervisor.h"
#include "kubetrain/launcher/placement/placement.h"
#include "kubetrain/storage/grpc_workspace.h"
#include "kubetrain/v1/job_state.h"

namespace kubetrain::jobs {
namespace {

namespace k8s = backends::kubernetes;

k8s::KubernetesBackendOptions KubernetesOptions(const v1::ComputeTarget& target,
                                                const BackendOptions& options) {
  k8s::KubernetesBackendOptions k;
  k.target = target;
  k.workspace_id = k8s::WorkspaceId(options.workspace_uri);
  k.workspace = options.workspace;
  k.warn = options.warn;
  return k;
}

}  // namespace

backends::LaunchRequest MakeLaunchRequest(const v1::JobRecord& job, const v1::InstanceType& type,
                                          const std::string& workspace_uri, absl::Duration grace) {
  backends::LaunchRequest request;
  request.job = job;
  request.attempt = job.status().attempt();
  request.workspace = workspace_uri;
  request.attempt_dir = absl::StrCat(job.job_dir(), "/attempt-", request.attempt);
  request.checkpoint_dir = absl::StrCat(job.job_dir(), "/checkpoints");
  request.grace = grace;
  request.memory_limit_bytes = type.limits().memory().value();
  request.instance_type = type;
  return request;
}

absl::StatusOr<std::unique_ptr<backends::Backend>> BackendFor(const v1::ComputeTarget& target,
                                                              const BackendOptions& options) {
  if (target.has_kubernetes()) {
    KT_ASSIGN_OR_RETURN(std::unique_ptr<k8s::KubernetesBackend> backend,
                        k8s::KubernetesBackend::Create(KubernetesOptions(target, options)));
    return std::unique_ptr<backends::Backend>(std::move(backend));
  }
  backends::local::LocalBackendOptions local;
  local.worker_binary = options.worker_binary;
  local.warn = options.warn;
  return std::unique_ptr<backends::Backend>(
      std::make_unique<backends::local::LocalBackend>(std::move(local)));
}

absl::StatusOr<std::vector<nlohmann::json>> DryRunObjects(v1::JobSpec spec,
                                                          const compute::ResolvedJob& resolved,
                                                          const BackendOptions& options) {
  if (!resolved.target.has_kubernetes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--dry-run prints the Kubernetes objects of a job; compute \"",
                     resolved.target.name(), "\" is not a kubernetes target"));
  }
  if (spec.name().empty()) spec.set_name("dry-run");
  if (spec.display_name().empty()) spec.set_display_name(spec.name());
  KT_ASSIGN_OR_RETURN(v1::Placement placed,
                      placement::PlaceGang(resolved.target, resolved.instance_type,
                                           spec.resources().instance_count(), {}));
  placed.set_compute(resolved.target.name());
  v1::JobRecord job;
  *job.mutable_spec() = std::move(spec);
  *job.mutable_placement() = std::move(placed);
  backends::LaunchRequest request =
      MakeLaunchRequest(job, resolved.instance_type, options.workspace_uri);
  // A workspace server issues each job a token at submit; a directory issues none.
  if (storage::IsRemoteWorkspace(options.workspace_uri)) request.workspace_token = "<issued>";
  KT_ASSIGN_OR_RETURN(k8s::RenderedJob rendered,
                      k8s::Preview(request, KubernetesOptions(resolved.target, options)));
  return rendered.All();
}

absl::StatusOr<v1::JobRecord> RunSupervisor(storage::Workspace& workspace, const std::string& name,
                                            const SupervisorRun& run) {
  KT_ASSIGN_OR_RETURN(v1::JobRecord job, workspace.GetJob(name));
  JobSupervisorOptions options;
  options.workspace_uri = run.backend.workspace_uri;
  options.stop = run.stop;
  absl::StatusOr<v1::ComputeTarget> target =
      compute::FindComputeTarget(workspace, job.spec().compute());
  // A target that is gone leaves the job to the local backend, whose placement then says why.
  absl::StatusOr<std::unique_ptr<backends::Backend>> backend =
      target.ok() ? BackendFor(*target, run.backend) : BackendFor(v1::ComputeTarget(), run.backend);
  if (!backend.ok()) {
    return workspace.UpdateJob(name, [&](const auto&, v1::JobRecord& r) {
      if (v1::IsTerminal(r.status().state())) return absl::OkStatus();
      r.mutable_status()->set_state(v1::JOB_STATE_FAILED);
      r.mutable_status()->set_reason("LaunchFailed");
      r.mutable_status()->set_message(std::string(backend.status().message()));
      r.mutable_status()->set_finished_unix_ms(NowMs());
      return absl::OkStatus();
    });
  }
  if (target.ok() && target->has_kubernetes()) {
    options.queue_poll = absl::Seconds(2);  // each placement try reads the cluster
    options.poll = absl::Milliseconds(200);
  }
  return SuperviseJob(workspace, name, **backend, options);
}

}  // namespace kubetrain::jobs
