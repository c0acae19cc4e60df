#include "kubetrain/common/command_template.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace kubetrain::common {
namespace {

bool IsNameStart(char c) { return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; }

absl::string_view Trim(absl::string_view s) { return absl::StripAsciiWhitespace(s); }

}  // namespace

absl::StatusOr<std::vector<TemplateReference>> FindReferences(absl::string_view command) {
  std::vector<TemplateReference> refs;
  size_t pos = 0;
  while ((pos = command.find("${{", pos)) != absl::string_view::npos) {
    size_t close = command.find("}}", pos + 3);
    size_t next_open = command.find("${{", pos + 3);
    if (close == absl::string_view::npos ||
        (next_open != absl::string_view::npos && next_open < close)) {
      absl::string_view shown = command.substr(pos, 24);
      return absl::InvalidArgumentError(
          absl::StrCat("unclosed \"${{\" at offset ", pos, " (\"", shown,
                       "...\"): write ${{inputs.NAME}} or ${{outputs.NAME}}"));
    }
    absl::string_view text = command.substr(pos, close + 2 - pos);
    absl::string_view inner = Trim(command.substr(pos + 3, close - pos - 3));
    TemplateReference ref;
    ref.offset = pos;
    ref.length = text.size();
    ref.text = std::string(text);
    absl::string_view name;
    if (absl::ConsumePrefix(&inner, "inputs.")) {
      ref.kind = TemplateReference::Kind::kInput;
      name = inner;
    } else if (absl::ConsumePrefix(&inner, "outputs.")) {
      ref.kind = TemplateReference::Kind::kOutput;
      name = inner;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", text, "\" at offset ", pos,
          " is not a reference kubetrain knows: write ${{inputs.NAME}} or ${{outputs.NAME}}"));
    }
    bool valid = !name.empty() && IsNameStart(name[0]);
    for (char c : name) valid = valid && IsNameChar(c);
    if (!valid) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", text, "\" at offset ", pos,
                       " has no valid name after the dot (names are letters, digits and _)"));
    }
    ref.name = std::string(name);
    refs.push_back(std::move(ref));
    pos = close + 2;
  }
  return refs;
}

absl::StatusOr<std::string> Substitute(absl::string_view command,
                                       const std::map<std::string, std::string>& inputs,
                                       const std::map<std::string, std::string>& outputs) {
  absl::StatusOr<std::vector<TemplateReference>> refs = FindReferences(command);
  if (!refs.ok()) return refs.status();
  std::string out;
  size_t last = 0;
  for (const TemplateReference& ref : *refs) {
    const auto& values = ref.kind == TemplateReference::Kind::kInput ? inputs : outputs;
    auto it = values.find(ref.name);
    if (it == values.end()) {
      return absl::NotFoundError(
          absl::StrCat(ref.text, " refers to ",
                       ref.kind == TemplateReference::Kind::kInput ? "an input" : "an output",
                       " that the job does not declare: \"", ref.name, "\""));
    }
    absl::StrAppend(&out, command.substr(last, ref.offset - last), it->second);
    last = ref.offset + ref.length;
  }
  absl::StrAppend(&out, command.substr(last));
  return out;
}

}  // namespace kubetrain::common
