// JSON → YAML for Kubernetes objects (`kubetrain job create --dry-run -o yaml`, golden files).
// Deterministic (keys in JSON order, which nlohmann keeps sorted), block style, and exact about
// types: a string that YAML would read as anything else ("0", "true", "1e3", "null", "~", "",
// text with ": " or a leading special character) is double-quoted, multi-line strings are literal
// blocks, so `kubectl apply -f` and any YAML reader get back exactly the JSON.
//
// Thread-safety: pure function.
#ifndef KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_YAML_OUT_H_
#define KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_YAML_OUT_H_

#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace kubetrain::backends::kubernetes {

// One YAML document (no leading "---").
std::string ToYaml(const nlohmann::json& value);

// Several documents separated by "---" lines.
std::string ToYamlDocuments(const std::vector<nlohmann::json>& values);

}  // namespace kubetrain::backends::kubernetes

#endif  // KUBETRAIN_LAUNCHER_BACKENDS_KUBERNETES_YAML_OUT_H_
