#include "kubetrain/launcher/spec/overrides.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kubetrain::spec {

// YAML::Node is a shared handle: the overrides are written into the caller's tree through it.
// NOLINTNEXTLINE(performance-unnecessary-value-param)
void ApplyOverrides(const std::vector<std::string>& overrides, YAML::Node root,
                    YamlReader& reader) {
  for (const std::string& text : overrides) {
    std::string origin = absl::StrCat("--set ", text);
    Location where{reader.file(), 0, 0, origin};
    size_t eq = text.find('=');
    if (eq == std::string::npos || eq == 0) {
      reader.diagnostics().Error(where, "", "an override must look like key=value",
                                 "for example --set compute=local");
      continue;
    }
    std::string path = text.substr(0, eq);
    std::vector<std::string> parts = absl::StrSplit(path, '.');
    YAML::Node value;
    try {
      value = YAML::Load(text.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      reader.diagnostics().Error(where, path, absl::StrCat("the value is not valid YAML: ", e.msg));
      continue;
    }
    YAML::Node cur = root;
    bool ok = true;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      if (parts[i].empty()) {
        ok = false;
        break;
      }
      YAML::Node next = cur[parts[i]];
      if (!next.IsDefined() || next.IsNull()) {
        cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
      } else if (!next.IsMap()) {
        // A scalar input such as `epochs: 1` becomes {value} when a sub-field is set: not allowed;
        // replace the whole value instead.
        reader.diagnostics().Error(
            where, path,
            absl::StrCat("`", parts[i], "` is ", YamlReader::Describe(next),
                         ", not a mapping, so it has no field `", parts[i + 1], "`"),
            absl::StrCat("set the whole value, e.g. --set ", parts[i], "=..."));
        ok = false;
        break;
      }
      cur.reset(cur[parts[i]]);
    }
    if (!ok) continue;
    if (parts.back().empty()) {
      reader.diagnostics().Error(where, path, "the field path has an empty part");
      continue;
    }
    cur[parts.back()] = value;
    reader.AddOrigin(path, origin);
  }
}

}  // namespace kubetrain::spec
