// `${{inputs.NAME}}` / `${{outputs.NAME}}` references in a job's command.
//
// The spec validator uses FindReferences to check every reference names a declared input or output;
// the worker agent uses Substitute to replace them with paths (or literal values) at launch.
// Grammar, as in Azure ML: "${{" optional-spaces ("inputs" | "outputs") "." NAME optional-spaces
// "}}" where NAME is [A-Za-z_][A-Za-z0-9_]*. Any other "${{...}}" is an error.
//
// Thread-safety: pure functions.
#ifndef KUBETRAIN_COMMON_COMMAND_TEMPLATE_H_
#define KUBETRAIN_COMMON_COMMAND_TEMPLATE_H_

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kubetrain::common {

struct TemplateReference {
  enum class Kind { kInput, kOutput };
  Kind kind;
  std::string name;
  size_t offset = 0;  // byte offset of "${{" in the command
  size_t length = 0;  // through the closing "}}"
  std::string text;   // the reference exactly as written
};

// Returns the references in order, or InvalidArgument naming the byte offset and the malformed text
// (an unclosed "${{", an unknown namespace such as "${{params.x}}", a missing or invalid name).
absl::StatusOr<std::vector<TemplateReference>> FindReferences(absl::string_view command);

// Replaces every reference by its value from `inputs` / `outputs` (name → value). NotFound names
// the reference when a value is missing; errors of FindReferences pass through.
absl::StatusOr<std::string> Substitute(absl::string_view command,
                                       const std::map<std::string, std::string>& inputs,
                                       const std::map<std::string, std::string>& outputs);

}  // namespace kubetrain::common

#endif  // KUBETRAIN_COMMON_COMMAND_TEMPLATE_H_
