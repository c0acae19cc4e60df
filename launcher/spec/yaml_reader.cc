#include "kubetrain/launcher/spec/yaml_reader.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "kubetrain/launcher/spec/suggest.h"

namespace kubetrain::spec {

std::string Field(absl::string_view prefix, absl::string_view key) {
  return prefix.empty() ? std::string(key) : absl::StrCat(prefix, ".", key);
}

std::optional<std::string> ReadUserFile(const std::string& path, Diagnostics& diagnostics) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    diagnostics.Error({path, 0, 0, ""}, "",
                      absl::StrCat("cannot read the file: ", std::strerror(errno)),
                      "check the path given to -f");
    return std::nullopt;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::optional<YAML::Node> YamlReader::Load() {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text_));
  } catch (const YAML::Exception& e) {
    Location where{file_, e.mark.line + 1, e.mark.column + 1, ""};
    if (e.mark.is_null()) where.line = where.column = 0;
    diagnostics_.Error(where, "", absl::StrCat("not valid YAML: ", e.msg),
                       "check the indentation and quoting around this line");
    return std::nullopt;
  }
  if (!root.IsDefined() || root.IsNull()) {
    diagnostics_.Error({file_, 0, 0, ""}, "", "the file is empty");
    return std::nullopt;
  }
  return root;
}

Location YamlReader::At(const YAML::Node& node, absl::string_view field) const {
  // Values from --set (their nodes carry positions inside the override text, not the file): the
  // longest recorded prefix of the field names their origin.
  std::string best;
  for (const auto& [prefix, origin] : origins_) {
    if ((field == prefix || absl::StartsWith(field, prefix + ".")) &&
        prefix.size() >= best.size()) {
      best = prefix;
    }
  }
  if (!best.empty()) return {file_, 0, 0, origins_.at(best)};
  if (node.IsDefined() && !node.Mark().is_null()) {
    return {file_, node.Mark().line + 1, node.Mark().column + 1, ""};
  }
  return {file_, 0, 0, ""};
}

Location YamlReader::FindText(const YAML::Node& node, absl::string_view field,
                              absl::string_view needle) const {
  Location base = At(node, field);
  if (base.line == 0 || node.Mark().pos < 0) return base;
  size_t start = static_cast<size_t>(node.Mark().pos);
  size_t found = text_.find(needle, start);
  if (found == absl::string_view::npos) return base;
  int line = 1, column = 1;
  for (size_t i = 0; i < found; ++i) {
    if (text_[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {file_, line, column, ""};
}

void YamlReader::Error(const YAML::Node& node, absl::string_view field, std::string message,
                       std::string suggestion) {
  diagnostics_.Error(At(node, field), std::string(field), std::move(message),
                     std::move(suggestion));
}

void YamlReader::Warning(const YAML::Node& node, absl::string_view field, std::string message,
                         std::string suggestion) {
  diagnostics_.Warning(At(node, field), std::string(field), std::move(message),
                       std::move(suggestion));
}

std::string YamlReader::Describe(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing";
  if (node.IsMap()) return "a mapping";
  if (node.IsSequence()) return "a list";
  return absl::StrCat("\"", node.Scalar(), "\"");
}

bool YamlReader::ExpectMap(const YAML::Node& node, absl::string_view field) {
  if (node.IsMap()) return true;
  Error(node, field, absl::StrCat("expected a mapping (key: value lines), found ", Describe(node)));
  return false;
}

void YamlReader::CheckKeys(const YAML::Node& node, absl::string_view prefix,
                           const std::vector<std::string>& known,
                           const std::vector<std::string>& ignored) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    YAML::Node key = it->first;  // a copy: `it->` returns a temporary proxy
    if (!key.IsScalar()) {
      Error(key, prefix, absl::StrCat("keys must be plain names, found ", Describe(key)));
      continue;
    }
    const std::string& name = key.Scalar();
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string field = Field(prefix, name);
    if (std::find(ignored.begin(), ignored.end(), name) != ignored.end()) {
      Warning(key, field,
              "accepted for Azure ML compatibility, but kubetrain cannot honour it; it is ignored");
      continue;
    }
    std::vector<std::string> all = known;
    all.insert(all.end(), ignored.begin(), ignored.end());
    Error(key, field, "unknown key", SuggestOneOf(name, all));
  }
}

std::optional<std::string> YamlReader::String(const YAML::Node& node, absl::string_view field) {
  if (node.IsScalar()) return node.Scalar();
  Error(node, field, absl::StrCat("expected a string, found ", Describe(node)));
  return std::nullopt;
}

std::optional<int64_t> YamlReader::Int(const YAML::Node& node, absl::string_view field, int64_t min,
                                       int64_t max) {
  std::string range = max == std::numeric_limits<int64_t>::max()
                          ? absl::StrCat("an integer >= ", min)
                          : absl::StrCat("an integer from ", min, " to ", max);
  int64_t value;
  if (!node.IsScalar() || !absl::SimpleAtoi(node.Scalar(), &value)) {
    Error(node, field, absl::StrCat("expected ", range, ", found ", Describe(node)));
    return std::nullopt;
  }
  if (value < min || value > max) {
    Error(node, field, absl::StrCat("expected ", range, ", found ", value));
    return std::nullopt;
  }
  return value;
}

std::optional<bool> YamlReader::Bool(const YAML::Node& node, absl::string_view field) {
  if (node.IsScalar()) {
    std::string v = absl::AsciiStrToLower(node.Scalar());
    if (v == "true" || v == "yes" || v == "on") return true;
    if (v == "false" || v == "no" || v == "off") return false;
  }
  Error(node, field, absl::StrCat("expected true or false, found ", Describe(node)));
  return std::nullopt;
}

std::optional<std::map<std::string, std::string>> YamlReader::StringMap(const YAML::Node& node,
                                                                        absl::string_view field) {
  if (node.IsNull()) return std::map<std::string, std::string>{};
  if (!ExpectMap(node, field)) return std::nullopt;
  std::map<std::string, std::string> out;
  bool ok = true;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) {
      Error(it->first, field,
            absl::StrCat("keys must be plain names, found ", Describe(it->first)));
      ok = false;
      continue;
    }
    std::string key = it->first.Scalar();
    if (it->second.IsNull()) {
      out[key] = "";
    } else if (it->second.IsScalar()) {
      out[key] = it->second.Scalar();
    } else {
      Error(it->second, Field(field, key),
            absl::StrCat("expected a string value, found ", Describe(it->second)),
            "quote the value if it should be text");
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

}  // namespace kubetrain::spec
