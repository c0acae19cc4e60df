// Rendering one attempt of a job into the Kubernetes objects that run it, as JSON:
//   - a Secret "<base>" (job-token: the per-job token that authenticates mpirun's launches between
//     pods; workspace-token: the workspace server's token for the job, when there is one): the
//     owner of everything else;
//   - a ConfigMap "<base>-config": the job spec (job.json), the hostfile, and each instance's
//     InstanceLaunch plan (instance-<i>.plan, protobuf text format);
//   - a headless Service "<base>" (clusterIP None, publishNotReadyAddresses) so that each pod is
//     reachable as "<base>-<i>.<base>" for rank discovery (MASTER_ADDR, the hostfile);
//   - one Pod "<base>-<i>" per instance, bound to its placed node (spec.nodeName), running
//     `kubetrain-worker --plan-text /etc/kubetrain/instance-<i>.plan` in the job's image with the
//     instance type's requests / limits, `shm_size` as a memory-backed emptyDir at /dev/shm, the
//     namespace's Azure ML PVC mounts, and a scratch emptyDir at /kubetrain for the job folder,
//     outputs and checkpoints.
// <base> is "<job name as a DNS label>-<attempt>" (lower case, [a-z0-9-], with a short hash of the
// real name when it had to change). Every object carries the labels
//   app.kubernetes.io/managed-by=kubetrain, kubetrain.io/job, kubetrain.io/attempt,
//   kubetrain.io/workspace (and kubetrain.io/instance on pods)
// and the annotations kubetrain.io/job-name (exact), kubetrain.io/launch-id,
// kubetrain.io/workspace; every object but the Secret has an ownerReference to the Secret, so
// deleting the Secret removes them all. Every pod passes the Baseline Pod Security Standard
// (pod_security.h) or rendering fails.
//
// Thread-safety: pure functions.
#ifndef KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_RENDER_H_
#define KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_RENDER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kubetrain/launcher/backends/backend.h"
#include "kubetrain/launcher/backends/kubernetes/pvc_mounts.h"
#include "kubetrain/v1/instance_type.pb.h"
#include "kubetrain/v1/job_record.pb.h"
#include "nlohmann/json.hpp"

namespace kubetrain::backends::kubernetes {

inline constexpr char kLabelManagedBy[] = "app.kubernetes.io/managed-by";
inline constexpr char kLabelJob[] = "kubetrain.io/job";
inline constexpr char kLabelAttempt[] = "kubetrain.io/attempt";
inline constexpr char kLabelInstance[] = "kubetrain.io/instance";
inline constexpr char kLabelWorkspace[] = "kubetrain.io/workspace";
inline constexpr char kAnnotationLaunchId[] = "kubetrain.io/launch-id";
inline constexpr char kContainerName[] = "worker";
inline constexpr char kConfigDir[] = "/etc/kubetrain";
inline constexpr char kScratchDir[] = "/kubetrain";

struct RenderInput {
  v1::JobRecord job;  // spec and this attempt's placement (nodes by instance)
  int attempt = 0;
  v1::InstanceType instance_type;
  std::string namespace_;
  std::string workspace_url;  // what the pods report to; empty: workers run with --no-workspace
  std::string worker_image;   // used when the job names no environment.image
  std::string workspace_id;   // value of the kubetrain.io/workspace label
  std::string job_token;      // the per-job token (dry runs pass a placeholder)
  // The workspace server's token for this job (Workspace::IssueJobToken of the workspace server
  // issue); empty for a workspace that needs none. In the Secret as workspace-token and in the
  // pods as KUBETRAIN_WORKSPACE_TOKEN only when set.
  std::string workspace_token;
  std::string launch_id;  // identifies this launch's objects (409 handling)
  PvcMounts pvc;          // the namespace's Azure ML PVC mounts
  int master_port = 29500;
  absl::Duration grace = kDefaultGrace;  // terminationGracePeriodSeconds (LaunchRequest.grace)
};

struct RenderedJob {
  std::string base;  // the name prefix
  nlohmann::json secret, config_map, service;
  std::vector<nlohmann::json> pods;  // by instance index
  // In creation order: Secret, ConfigMap, Service, Pods.
  std::vector<nlohmann::json> All() const;
};

// "<job>-<attempt>" as a DNS-1123 label (<= 47 characters, starts with a letter).
std::string BaseName(const std::string& job_name, int attempt);

// A label value for the job name (<= 63 characters, hashed when it had to change).
std::string JobLabel(const std::string& job_name);

// The selector that finds this attempt's objects ("k=v,k=v").
std::string AttemptSelector(const std::string& job_name, int attempt,
                            const std::string& workspace_id);

// Renders every object. InvalidArgument when the job cannot run on Kubernetes as written (no
// image, local data or code not on a mounted PVC, a ConfigMap over 1 MiB, a pod that would break
// the Baseline standard), with what to do.
absl::StatusOr<RenderedJob> RenderJob(const RenderInput& input);

// Sets every dependent's ownerReferences to the created Secret (its uid is known only then).
void SetOwner(const nlohmann::json& created_secret, RenderedJob& job);

}  // namespace kubetrain::backends::kubernetes

#endif  // KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_RENDER_H_
