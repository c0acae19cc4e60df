#include "kubetrain/launcher/backends/kubernetes/yaml_out.h"

#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace kubetrain::backends::kubernetes {
namespace {

using nlohmann::json;

bool Plain(const std::string& s) {
  static const std::regex kSafe("^[A-Za-z_/][A-Za-z0-9_./@+-]*( [A-Za-z0-9_./@+()-]+)*$");
  if (!std::regex_match(s, kSafe)) return false;
  std::string l = absl::AsciiStrToLower(s);
  for (const char* word : {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"}) {
    if (l == word) return false;
  }
  return true;
}

std::string Scalar(const json& v) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    return Plain(s) ? s : json(s).dump();
  }
  if (v.is_null()) return "null";
  return v.dump();
}

bool MultiLine(const json& v) {
  if (!v.is_string()) return false;
  const std::string& s = v.get_ref<const std::string&>();
  if (s.find('\n') == std::string::npos) return false;
  // A literal block keeps text exactly when no line has trailing spaces or tabs / CRs.
  for (absl::string_view line : absl::StrSplit(s, '\n')) {
    if (!line.empty() && (line.back() == ' ' || line.back() == '\t')) return false;
    if (line.find('\r') != absl::string_view::npos || line.find('\t') != absl::string_view::npos) {
      return false;
    }
  }
  return s.front() != ' ';
}

void Block(const std::string& s, const std::string& indent, std::string& out) {
  bool trailing = !s.empty() && s.back() == '\n';
  bool extra = s.size() >= 2 && s.substr(s.size() - 2) == "\n\n";
  out += trailing ? (extra ? "|+\n" : "|\n") : "|-\n";
  std::string body = trailing ? s.substr(0, s.size() - 1) : s;
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (line.empty()) {
      out += "\n";
    } else {
      out += indent;
      out.append(line.data(), line.size());
      out += "\n";
    }
  }
}

bool Empty(const json& v) { return (v.is_object() || v.is_array()) && v.empty(); }

void Emit(const json& v, const std::string& indent, std::string& out);

void EmitValueAfterKey(const json& v, const std::string& indent, std::string& out) {
  if (Empty(v)) {
    out += v.is_object() ? " {}\n" : " []\n";
  } else if (v.is_object()) {
    out += "\n";
    Emit(v, indent + "  ", out);
  } else if (v.is_array()) {
    out += "\n";
    Emit(v, indent, out);  // sequences under a key are not indented further (kubectl style)
  } else if (MultiLine(v)) {
    out += " ";
    Block(v.get<std::string>(), indent + "  ", out);
  } else {
    out += " " + Scalar(v) + "\n";
  }
}

void Emit(const json& v, const std::string& indent, std::string& out) {
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      out += indent + Scalar(it.key()) + ":";
      EmitValueAfterKey(it.value(), indent, out);
    }
  } else if (v.is_array()) {
    for (const json& item : v) {
      if (item.is_object() && !item.empty()) {
        // "- " then the first key on the same line, the rest aligned under it.
        std::string inner;
        Emit(item, indent + "  ", inner);
        out += indent + "- " + inner.substr(indent.size() + 2);
      } else if (item.is_array() && !item.empty()) {
        out += indent + "-\n";
        Emit(item, indent + "  ", out);
      } else if (Empty(item)) {
        out += indent + (item.is_object() ? "- {}\n" : "- []\n");
      } else if (MultiLine(item)) {
        out += indent + "- ";
        Block(item.get<std::string>(), indent + "  ", out);
      } else {
        out += indent + "- " + Scalar(item) + "\n";
      }
    }
  } else {
    out += indent + Scalar(v) + "\n";
  }
}

}  // namespace

std::string ToYaml(const json& value) {
  std::string out;
  if (Empty(value)) return value.is_object() ? "{}\n" : "[]\n";
  Emit(value, "", out);
  return out;
}

std::string ToYamlDocuments(const std::vector<json>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += "---\n";
    out += ToYaml(values[i]);
  }
  return out;
}

}  // namespace kubetrain::backends::kubernetes
