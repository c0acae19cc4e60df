// The Kubernetes backend: one Pod per instance on the placed node, in the compute target's
// namespace, with a Secret, a ConfigMap and a headless Service per attempt (render.h).
//
// Launch: reads the namespace's Azure ML PVCs, renders, creates Secret → ConfigMap → Service →
// Pods (each create retried on 429 / 5xx / transport errors; a 409 for an object of this very
// launch is taken as created), and returns a Gang; if any create fails, everything created so far
// is deleted before the error is returned.
//
// The Gang watches the attempt's pods (watch.h: list + watch, resumed after disconnects, relisted
// on 410 Gone) and maps their state (pod_status.h):
//   - Running() once every pod is Running (or already finished);
//   - a pod that is not Running within the start timeout (spec.kubetrain.start_timeout, else
//     KubernetesBackendOptions::start_timeout) fails the gang with reason StartTimeout and what
//     each late pod waits for;
//   - the first failed pod fails the gang (ImagePullBackOff, OOMKilled, Evicted, Timeout,
//     InstanceFailed, PodDeleted...), with its last log lines;
//   - every pod Succeeded completes it.
// Each pod's log is followed through the API (resumed after a broken stream without duplicates);
// when the pods do not report to a workspace themselves (no workspace_url on the target), its
// lines (v1::LogLine JSON, the agent's `--output json`) and the pods' states go into the
// launcher's workspace, where `kubetrain job stream` reads them.
// Whatever the end (completed, failed, canceled, start timeout), every object the attempt created
// is deleted before Poll returns / Terminate returns.
//
// Ownership: the backend owns its API client; Gangs share it. The workspace is borrowed.
// Thread-safety: Launch from one thread at a time; a Gang from one thread (its own threads are
// internal).
#ifndef KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_KUBERNETES_BACKEND_H_
#define KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_KUBERNETES_BACKEND_H_

#include <functional>
#include <memory>
#include <string>

#include "kubetrain/launcher/backends/backend.h"
#include "kubetrain/launcher/backends/kubernetes/api_client.h"
#include "kubetrain/launcher/backends/kubernetes/render.h"
#include "kubetrain/storage/workspace.h"
#include "kubetrain/v1/compute.pb.h"

namespace kubetrain::backends::kubernetes {

struct KubernetesBackendOptions {
  v1::ComputeTarget target;  // a kubernetes target (namespace, kubeconfig, workspace_url)
  std::string workspace_id;  // the kubetrain.io/workspace label (WorkspaceId)
  storage::Workspace* workspace =
      nullptr;  // where pod logs / states go when pods have no workspace
  absl::Duration start_timeout = absl::Minutes(10);  // when the job sets no start_timeout
  absl::Duration watch_timeout = absl::Minutes(5);   // one watch request's timeoutSeconds
  int master_port = 29500;
  ApiClientOptions api;
  std::function<void(const std::string&)> warn;  // one line each
};

// A stable id for a workspace (FNV-1a of its location), used as a label value.
std::string WorkspaceId(const std::string& workspace_location);

// A random hex string of `bytes` bytes from /dev/urandom.
std::string RandomHex(int bytes);

// Connects with the target's kubeconfig and context.
absl::StatusOr<std::unique_ptr<ApiClient>> ConnectToTarget(const v1::ComputeTarget& target,
                                                           const ApiClientOptions& options = {});

// The Azure ML PVC mounts of `ns` (storage/pvc_mounts.h), read from the cluster.
absl::StatusOr<PvcMounts> ReadPvcMounts(const ApiClient& client, const std::string& ns);

// The secrets and ids of one launch: random for a real one, placeholders for a preview.
struct LaunchIds {
  std::string job_token;  // the per-job token (rsh launches, the workspace server's job access)
  std::string launch_id;  // identifies this launch's objects (409 handling)
};

// What RenderJob gets for `request` on `options.target` — the one builder behind Launch and
// Preview, so a dry run prints what a launch creates.
RenderInput MakeRenderInput(const LaunchRequest& request, const KubernetesBackendOptions& options,
                            PvcMounts pvc, LaunchIds ids);

// The objects Launch would create for `request`, created nowhere (`job create --dry-run`): ids and
// the workspace token are placeholders; the PVC mounts are read from the cluster when it answers,
// else left out with a warning through options.warn.
absl::StatusOr<RenderedJob> Preview(const LaunchRequest& request,
                                    const KubernetesBackendOptions& options);

class KubernetesBackend : public Backend {
 public:
  static absl::StatusOr<std::unique_ptr<KubernetesBackend>> Create(
      KubernetesBackendOptions options);

  absl::StatusOr<std::unique_ptr<Gang>> Launch(const LaunchRequest& request) override;
  // The attached nodes with their allocatable as the cluster reports it now (plus nodes that
  // joined since), and as held: other pods' requests, and all of a node that is no longer Ready
  // (so a job waits for it rather than failing as "can never fit").
  absl::StatusOr<Capacity> CurrentCapacity(const v1::ComputeTarget& target) override;
  // Deletes every object labelled with the job's current attempt (and this workspace).
  void Abandon(const v1::JobRecord& job) override;

 private:
  KubernetesBackend(KubernetesBackendOptions options, std::shared_ptr<ApiClient> client)
      : options_(std::move(options)), client_(std::move(client)) {}
  KubernetesBackendOptions options_;
  std::shared_ptr<ApiClient> client_;
};

}  // namespace kubetrain::backends::kubernetes

#endif  // KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_KUBERNETES_BACKEND_H_
