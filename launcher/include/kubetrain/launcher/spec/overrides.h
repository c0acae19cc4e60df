// `--set key=value` overrides, as `az ml job create --set` applies them: a dotted field path into
// the YAML document and a YAML value ("local", "2", "{type: uri_folder, path: ./data}").
//
// Thread-safety: pure function over the given document.
#ifndef KUBETRAIN_LAUNCHER_SPEC_OVERRIDES_H_
#define KUBETRAIN_LAUNCHER_SPEC_OVERRIDES_H_

#include <string>
#include <vector>

#include "kubetrain/launcher/spec/yaml_reader.h"
#include "yaml-cpp/yaml.h"

namespace kubetrain::spec {

// Applies each "path=value" to `root`, creating intermediate mappings as needed, and tells `reader`
// where the values came from. Malformed overrides (no "=", empty path, a path through a
// non-mapping) are recorded as errors naming the override.
void ApplyOverrides(const std::vector<std::string>& overrides, YAML::Node root, YamlReader& reader);

}  // namespace kubetrain::spec

#endif  // KUBETRAIN_LAUNCHER_SPEC_OVERRIDES_H_
