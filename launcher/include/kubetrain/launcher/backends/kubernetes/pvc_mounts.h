// Azure ML "custom data storage" on Kubernetes: PersistentVolumeClaims in the job's namespace that
// carry the label `ml.azure.com/pvc: "true"` and the annotation `ml.azure.com/mountpath: /path`
// are mounted into every pod of every job at that path (as Azure ML's Kubernetes extension does).
//
// PvcMountsFromList turns the namespace's PersistentVolumeClaimList (the API's JSON) into the
// `volumes` and `volumeMounts` each job pod gets:
//   - claims without the label (or with another value) are ignored;
//   - a claim being deleted (metadata.deletionTimestamp) or whose status.phase is Lost is skipped
//     with a warning;
//   - the mount path must be absolute, normalised (no "." / ".." / "//"), and must not be "/" or
//     lie under a path the pod needs for itself (/dev, /proc, /sys, /etc/kubetrain, /kubetrain);
//     two claims may not use the same path, nor one inside another; each is an InvalidArgument
//     naming the claim and the annotation;
//   - a labelled claim without the annotation is an InvalidArgument;
//   - volumes are named "pvc-<n>" in claim-name order, so the output is deterministic;
//   - annotation `ml.azure.com/readonly: "true"` (a kubetrain addition) mounts it read-only.
//
// Thread-safety: pure function.
#ifndef KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_PVC_MOUNTS_H_
#define KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_PVC_MOUNTS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace kubetrain::backends::kubernetes {

inline constexpr char kPvcLabel[] = "ml.azure.com/pvc";
inline constexpr char kPvcMountPathAnnotation[] = "ml.azure.com/mountpath";
inline constexpr char kPvcReadOnlyAnnotation[] = "ml.azure.com/readonly";

struct PvcMount {
  std::string claim;       // the PVC's name
  std::string mount_path;  // where every pod sees it
  bool read_only = false;
};

struct PvcMounts {
  std::vector<PvcMount> mounts;                            // in claim-name order
  nlohmann::json volumes = nlohmann::json::array();        // pod.spec.volumes entries
  nlohmann::json volume_mounts = nlohmann::json::array();  // container volumeMounts entries
  std::vector<std::string> warnings;                       // one line each
};

// `pvc_list`: a PersistentVolumeClaimList (or a bare JSON array of claims).
absl::StatusOr<PvcMounts> PvcMountsFromList(const nlohmann::json& pvc_list);

// The mount whose path holds `path` (a file or folder inside a mounted claim), or nullptr.
const PvcMount* MountHolding(const PvcMounts& mounts, const std::string& path);

}  // namespace kubetrain::backends::kubernetes

#endif  // KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_PVC_MOUNTS_H_
