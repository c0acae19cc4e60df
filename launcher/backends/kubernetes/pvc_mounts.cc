#include "kubetrain/launcher/backends/kubernetes/pvc_mounts.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kubetrain::backends::kubernetes {
namespace {

bool Inside(const std::string& path, const std::string& dir) {
  return path == dir || absl::StartsWith(path, dir == "/" ? dir : dir + "/");
}

absl::Status CheckPath(const std::string& claim, const std::string& path) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("PersistentVolumeClaim \"", claim,
                                                   "\": ", kPvcMountPathAnnotation, " \"", path,
                                                   "\" ", why));
  };
  if (path.empty() || path[0] != '/') return bad("must be an absolute path");
  if (path == "/") return bad("may not be the root folder");
  for (absl::string_view part : absl::StrSplit(path.substr(1), '/')) {
    if (part.empty() || part == "." || part == "..") {
      return bad("must be a normalised path (no empty, \".\" or \"..\" parts, no trailing /)");
    }
  }
  for (const char* reserved : {"/dev", "/proc", "/sys", "/etc/kubetrain", "/kubetrain"}) {
    if (Inside(path, reserved) || Inside(reserved, path)) {
      return bad(absl::StrCat("overlaps ", reserved,
                              ", which every job pod needs for itself; choose a path such as "
                              "/mnt/<name>"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PvcMounts> PvcMountsFromList(const nlohmann::json& list) {
  const nlohmann::json* items = &list;
  if (list.is_object()) {
    if (!list.contains("items") || !list["items"].is_array()) {
      return absl::InvalidArgumentError("expected a PersistentVolumeClaimList with items");
    }
    items = &list["items"];
  }
  if (!items->is_array()) return absl::InvalidArgumentError("expected a list of claims");
  std::vector<const nlohmann::json*> claims;
  for (const nlohmann::json& c : *items) claims.push_back(&c);
  std::sort(claims.begin(), claims.end(), [](const nlohmann::json* a, const nlohmann::json* b) {
    return (*a)["metadata"].value("name", "") < (*b)["metadata"].value("name", "");
  });

  PvcMounts out;
  for (const nlohmann::json* c : claims) {
    const nlohmann::json& meta = (*c)["metadata"];
    std::string name = meta.value("name", "");
    nlohmann::json labels = meta.value("labels", nlohmann::json::object());
    if (!labels.is_object() || labels.value(kPvcLabel, "") != "true") continue;
    nlohmann::json annotations = meta.value("annotations", nlohmann::json::object());
    if (meta.contains("deletionTimestamp")) {
      out.warnings.push_back(
          absl::StrCat("PersistentVolumeClaim \"", name, "\" is being deleted; not mounted"));
      continue;
    }
    if (c->contains("status") && (*c)["status"].value("phase", "") == "Lost") {
      out.warnings.push_back(absl::StrCat("PersistentVolumeClaim \"", name,
                                          "\" has lost its volume (phase Lost); not mounted"));
      continue;
    }
    if (!annotations.is_object() || !annotations.contains(kPvcMountPathAnnotation) ||
        !annotations[kPvcMountPathAnnotation].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("PersistentVolumeClaim \"", name, "\" is labelled ", kPvcLabel,
                       "=true but has no annotation ", kPvcMountPathAnnotation,
                       "; add one (e.g. kubectl annotate pvc ", name, " ", kPvcMountPathAnnotation,
                       "=/mnt/", name, ") or remove the label"));
    }
    PvcMount m;
    m.claim = name;
    m.mount_path = annotations[kPvcMountPathAnnotation].get<std::string>();
    m.read_only = annotations.value(kPvcReadOnlyAnnotation, "") == "true";
    if (absl::Status s = CheckPath(name, m.mount_path); !s.ok()) return s;
    for (const PvcMount& other : out.mounts) {
      if (Inside(m.mount_path, other.mount_path) || Inside(other.mount_path, m.mount_path)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "PersistentVolumeClaims \"", other.claim, "\" and \"", name, "\" are both mounted at ",
            other.mount_path == m.mount_path ? "" : "overlapping paths ", other.mount_path,
            other.mount_path == m.mount_path ? "" : absl::StrCat(" and ", m.mount_path), " (",
            kPvcMountPathAnnotation, "); give each its own folder"));
      }
    }
    std::string volume = absl::StrCat("pvc-", out.mounts.size());
    nlohmann::json source = {{"claimName", name}};
    if (m.read_only) source["readOnly"] = true;
    out.volumes.push_back({{"name", volume}, {"persistentVolumeClaim", source}});
    nlohmann::json mount = {{"name", volume}, {"mountPath", m.mount_path}};
    if (m.read_only) mount["readOnly"] = true;
    out.volume_mounts.push_back(mount);
    out.mounts.push_back(std::move(m));
  }
  return out;
}

const PvcMount* MountHolding(const PvcMounts& mounts, const std::string& path) {
  for (const PvcMount& m : mounts.mounts) {
    if (Inside(path, m.mount_path)) return &m;
  }
  return nullptr;
}

}  // namespace kubetrain::backends::kubernetes
