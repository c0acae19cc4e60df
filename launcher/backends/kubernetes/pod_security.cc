#include "kubetrain/launcher/backends/kubernetes/pod_security.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kubetrain::backends::kubernetes {
namespace {

using nlohmann::json;

const std::set<std::string>& BaselineCapabilities() {
  static const std::set<std::string> caps = {
      "AUDIT_WRITE",      "CHOWN",   "DAC_OVERRIDE", "FOWNER",  "FSETID", "KILL",      "MKNOD",
      "NET_BIND_SERVICE", "SETFCAP", "SETGID",       "SETPCAP", "SETUID", "SYS_CHROOT"};
  return caps;
}

const std::set<std::string>& SafeSysctls() {
  static const std::set<std::string> safe = {"kernel.shm_rmid_forced",
                                             "net.ipv4.ip_local_port_range",
                                             "net.ipv4.ip_unprivileged_port_start",
                                             "net.ipv4.tcp_syncookies",
                                             "net.ipv4.ping_group_range",
                                             "net.ipv4.ip_local_reserved_ports",
                                             "net.ipv4.tcp_keepalive_time",
                                             "net.ipv4.tcp_fin_timeout",
                                             "net.ipv4.tcp_keepalive_intvl",
                                             "net.ipv4.tcp_keepalive_probes"};
  return safe;
}

bool True(const json& obj, const char* key) {
  return obj.is_object() && obj.contains(key) && obj[key].is_boolean() && obj[key].get<bool>();
}

const json& Sub(const json& obj, const char* key) {
  static const json empty = json::object();
  return obj.is_object() && obj.contains(key) && obj[key].is_object() ? obj[key] : empty;
}

void CheckSecurityContext(const json& sc, const std::string& where, std::vector<std::string>& out) {
  if (True(Sub(sc, "windowsOptions"), "hostProcess")) {
    out.push_back(where + ": windowsOptions.hostProcess is true (HostProcess)");
  }
  const json& se = Sub(sc, "seLinuxOptions");
  if (se.contains("type")) {
    std::string t = se["type"].get<std::string>();
    if (!t.empty() && t != "container_t" && t != "container_init_t" && t != "container_kvm_t" &&
        t != "container_engine_t") {
      out.push_back(absl::StrCat(where, ": seLinuxOptions.type \"", t, "\" is not allowed"));
    }
  }
  for (const char* k : {"user", "role"}) {
    if (se.contains(k) && !se[k].get<std::string>().empty()) {
      out.push_back(absl::StrCat(where, ": seLinuxOptions.", k, " may not be set"));
    }
  }
  const json& seccomp = Sub(sc, "seccompProfile");
  if (seccomp.value("type", "") == "Unconfined") {
    out.push_back(where + ": seccompProfile.type Unconfined is not allowed");
  }
  const json& apparmor = Sub(sc, "appArmorProfile");
  if (apparmor.value("type", "") == "Unconfined") {
    out.push_back(where + ": appArmorProfile.type Unconfined is not allowed");
  }
}

void CheckContainer(const json& c, const std::string& kind, std::vector<std::string>& out) {
  std::string where = absl::StrCat(kind, " \"", c.value("name", "?"), "\"");
  const json& sc = Sub(c, "securityContext");
  if (True(sc, "privileged")) out.push_back(where + ": privileged is true");
  CheckSecurityContext(sc, where + " securityContext", out);
  const json& caps = Sub(sc, "capabilities");
  if (caps.contains("add") && caps["add"].is_array()) {
    for (const json& cap : caps["add"]) {
      std::string name = cap.get<std::string>();
      if (!BaselineCapabilities().count(name)) {
        out.push_back(absl::StrCat(where, ": capability ", name, " is added (not in Baseline)"));
      }
    }
  }
  if (sc.contains("procMount") && sc["procMount"] != "Default") {
    out.push_back(where + ": procMount must be Default");
  }
  if (c.contains("ports") && c["ports"].is_array()) {
    for (const json& p : c["ports"]) {
      if (p.value("hostPort", 0) != 0) {
        out.push_back(absl::StrCat(where, ": hostPort ", p["hostPort"].dump(), " is not allowed"));
      }
    }
  }
}

}  // namespace

std::vector<std::string> CheckBaseline(const json& pod) {
  std::vector<std::string> out;
  const json& spec = Sub(pod, "spec");
  for (const char* ns : {"hostNetwork", "hostPID", "hostIPC"}) {
    if (True(spec, ns)) out.push_back(absl::StrCat("pod: ", ns, " is true (host namespaces)"));
  }
  const json& psc = Sub(spec, "securityContext");
  CheckSecurityContext(psc, "pod securityContext", out);
  if (psc.contains("sysctls") && psc["sysctls"].is_array()) {
    for (const json& s : psc["sysctls"]) {
      std::string name = s.value("name", "");
      if (!SafeSysctls().count(name)) {
        out.push_back(absl::StrCat("pod: sysctl ", name, " is not in the safe set"));
      }
    }
  }
  if (spec.contains("volumes") && spec["volumes"].is_array()) {
    for (const json& v : spec["volumes"]) {
      if (v.contains("hostPath")) {
        out.push_back(absl::StrCat("pod: volume \"", v.value("name", "?"), "\" is a hostPath"));
      }
    }
  }
  const json& annotations = Sub(Sub(pod, "metadata"), "annotations");
  for (auto it = annotations.begin(); it != annotations.end(); ++it) {
    if (!absl::StartsWith(it.key(), "container.apparmor.security.beta.kubernetes.io/")) continue;
    std::string v = it.value().is_string() ? it.value().get<std::string>() : "";
    if (v != "runtime/default" && !absl::StartsWith(v, "localhost/")) {
      out.push_back(
          absl::StrCat("pod: AppArmor profile \"", v, "\" (", it.key(), ") is not allowed"));
    }
  }
  for (const char* kind : {"containers", "initContainers", "ephemeralContainers"}) {
    if (!spec.contains(kind) || !spec[kind].is_array()) continue;
    for (const json& c : spec[kind]) CheckContainer(c, kind, out);
  }
  return out;
}

}  // namespace kubetrain::backends::kubernetes
