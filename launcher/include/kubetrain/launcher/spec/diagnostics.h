// Diagnostics: every error and warning found in a user's file, each pointing at a place in it.
//
// A Diagnostic names the file, line and column (1-based), the field path
// ("resources.instance_count", "inputs.data.mode"), what was wrong and, when we can tell, what to
// write instead. Parsers collect all of them instead of stopping at the first, so a user fixes a
// file in one pass.
//
// Formatting follows compilers:
//   job.yml:12:3: error: resources.instance_count: expected a positive integer, found "two"
//   job.yml:4:1: error: comand: unknown key; did you mean `command`?
// A location with line 0 means "not from the file" (a --set override, or the file as a whole).
//
// Thread-safety: a Diagnostics object is not thread-safe; use one per parse.
#ifndef KUBETRAIN_LAUNCHER_SPEC_DIAGNOSTICS_H_
#define KUBETRAIN_LAUNCHER_SPEC_DIAGNOSTICS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace kubetrain::spec {

struct Location {
  std::string file;
  int line = 0;  // 1-based; 0 = no line (whole file, or a --set override)
  int column = 0;
  std::string origin;  // set instead of a line for values from elsewhere, e.g. "--set compute=x"
};

struct Diagnostic {
  enum class Severity { kError, kWarning };
  Severity severity = Severity::kError;
  Location location;
  std::string field;       // field path; empty for file-level problems
  std::string message;     // what was wrong: expected ..., found ...
  std::string suggestion;  // what to do, or empty

  std::string ToString() const;
};

class Diagnostics {
 public:
  void Error(Location where, std::string field, std::string message, std::string suggestion = "");
  void Warning(Location where, std::string field, std::string message, std::string suggestion = "");

  bool has_errors() const { return error_count_ > 0; }
  int error_count() const { return error_count_; }
  const std::vector<Diagnostic>& all() const { return items_; }

  // One line per diagnostic, in file order (line, then column), errors and warnings together.
  std::string Format() const;

  // OK when there are no errors; else InvalidArgument whose message is Format() of the errors.
  absl::Status ToStatus() const;

 private:
  std::vector<Diagnostic> items_;
  int error_count_ = 0;
};

}  // namespace kubetrain::spec

#endif  // KUBETRAIN_LAUNCHER_SPEC_DIAGNOSTICS_H_
