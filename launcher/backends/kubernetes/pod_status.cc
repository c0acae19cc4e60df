#include "kubetrain/launcher/backends/kubernetes/pod_status.h"

#include "absl/strings/str_cat.h"
#include "kubetrain/v1/launch.pb.h"

namespace kubetrain::backends::kubernetes {

using nlohmann::json;

PodOutcome ClassifyPod(const json& pod) {
  PodOutcome out;
  std::string name = pod["metadata"].value("name", "?");
  json spec = pod.value("spec", json::object());
  json status = pod.value("status", json::object());
  std::string node = spec.value("nodeName", "");
  std::string where = absl::StrCat("pod ", name, node.empty() ? "" : " on node " + node);
  std::string phase = status.value("phase", "Pending");
  json container = json::object();
  for (const json& c : status.value("containerStatuses", json::array())) {
    container = c;  // one container per pod
  }
  json state = container.value("state", json::object());
  json waiting = state.value("waiting", json::object());
  json terminated = state.value("terminated", json::object());
  std::string waiting_reason = waiting.value("reason", "");
  std::string waiting_message = waiting.value("message", "");

  auto fail = [&](std::string reason, std::string message) {
    out.state = v1::JOB_STATE_FAILED;
    out.reason = std::move(reason);
    out.message = std::move(message);
    return out;
  };
  if (!terminated.empty()) {
    out.exit_code = terminated.value("exitCode", 0);
    out.signal = terminated.value("signal", 0);
    if (out.signal == 0 && out.exit_code > 128) out.signal = out.exit_code - 128;
  }
  if (terminated.value("reason", "") == "OOMKilled") {
    return fail("OOMKilled",
                absl::StrCat(where,
                             ": the container was killed for using more memory than the "
                             "instance type's limit (OOMKilled); use an instance type with more "
                             "memory or use less"));
  }
  if (phase == "Failed" && status.value("reason", "") == "Evicted") {
    return fail("Evicted", absl::StrCat(where, " was evicted: ", status.value("message", ""),
                                        "; the node ran short of a resource"));
  }
  if (phase == "Failed" && status.value("reason", "") == "NodeLost") {
    return fail("NodeLost", absl::StrCat(where, ": the node stopped answering"));
  }
  if (waiting_reason == "ImagePullBackOff" || waiting_reason == "InvalidImageName" ||
      waiting_reason == "ErrImageNeverPull") {
    return fail("ImagePullBackOff",
                absl::StrCat(where, ": cannot pull image ", container.value("image", ""), " (",
                             waiting_reason, waiting_message.empty() ? "" : ": " + waiting_message,
                             "); check the image name and that the cluster may pull it "
                             "(imagePullSecrets, registry access)"));
  }
  if (waiting_reason == "CreateContainerConfigError" || waiting_reason == "CreateContainerError" ||
      waiting_reason == "RunContainerError") {
    return fail(waiting_reason,
                absl::StrCat(where, ": ", waiting_reason,
                             waiting_message.empty() ? "" : ": " + waiting_message));
  }
  if (phase == "Succeeded") {
    out.state = v1::JOB_STATE_COMPLETED;
    return out;
  }
  if (phase == "Failed") {
    if (out.exit_code == v1::AGENT_EXIT_TIMED_OUT) {
      return fail("Timeout",
                  absl::StrCat(where, ": limits.timeout expired; every rank was stopped"));
    }
    std::string how = out.signal != 0 && terminated.value("exitCode", 0) > 128
                          ? absl::StrCat("was killed by signal ", out.signal)
                          : absl::StrCat("exited with code ", out.exit_code);
    return fail("InstanceFailed", absl::StrCat(where, ": kubetrain-worker ", how,
                                               terminated.value("message", "").empty()
                                                   ? ""
                                                   : " (" + terminated.value("message", "") + ")"));
  }
  if (phase == "Running" && !state.contains("waiting")) {
    out.state = v1::JOB_STATE_RUNNING;
    return out;
  }
  out.state = v1::JOB_STATE_STARTING;
  out.message =
      absl::StrCat(where, " is ", phase, waiting_reason.empty() ? "" : " (" + waiting_reason + ")");
  return out;
}

}  // namespace kubetrain::backends::kubernetes
