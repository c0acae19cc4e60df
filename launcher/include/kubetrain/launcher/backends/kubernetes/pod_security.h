// The Kubernetes Pod Security Standards, "Baseline" profile: what a pod may not do
// (https://kubernetes.io/docs/concepts/security/pod-security-standards/, policy version 1.29).
//
// CheckBaseline returns one line per violation (empty: the pod conforms). Checked, for the pod and
// every container, init container and ephemeral container:
//   HostProcess (windowsOptions.hostProcess), host namespaces (hostNetwork / hostPID / hostIPC),
//   privileged, capabilities added beyond the baseline list, hostPath volumes, hostPort, AppArmor
//   profiles (annotation and securityContext.appArmorProfile), SELinux type / user / role,
//   procMount, seccomp Unconfined, and sysctls outside the safe set.
// Every pod kubetrain renders is checked before it is created.
//
// Thread-safety: pure function.
#ifndef KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_POD_SECURITY_H_
#define KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_POD_SECURITY_H_

#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace kubetrain::backends::kubernetes {

// `pod` is a Pod object (apiVersion v1, kind Pod) as JSON.
std::vector<std::string> CheckBaseline(const nlohmann::json& pod);

}  // namespace kubetrain::backends::kubernetes

#endif  // KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_POD_SECURITY_H_
