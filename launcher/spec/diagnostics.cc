#include "kubetrain/launcher/spec/diagnostics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace kubetrain::spec {

std::string Diagnostic::ToString() const {
  std::string where = location.file.empty() ? "<input>" : location.file;
  if (location.line > 0) {
    absl::StrAppend(&where, ":", location.line, ":", location.column);
  } else if (!location.origin.empty()) {
    absl::StrAppend(&where, " (", location.origin, ")");
  }
  std::string out = absl::StrCat(where, ": ", severity == Severity::kError ? "error" : "warning",
                                 ": ", field.empty() ? "" : absl::StrCat(field, ": "), message);
  if (!suggestion.empty()) absl::StrAppend(&out, "; ", suggestion);
  return out;
}

void Diagnostics::Error(Location where, std::string field, std::string message,
                        std::string suggestion) {
  items_.push_back({Diagnostic::Severity::kError, std::move(where), std::move(field),
                    std::move(message), std::move(suggestion)});
  ++error_count_;
}

void Diagnostics::Warning(Location where, std::string field, std::string message,
                          std::string suggestion) {
  items_.push_back({Diagnostic::Severity::kWarning, std::move(where), std::move(field),
                    std::move(message), std::move(suggestion)});
}

std::string Diagnostics::Format() const {
  std::vector<const Diagnostic*> sorted;
  for (const Diagnostic& d : items_) sorted.push_back(&d);
  std::stable_sort(sorted.begin(), sorted.end(), [](const Diagnostic* a, const Diagnostic* b) {
    return std::tie(a->location.line, a->location.column) <
           std::tie(b->location.line, b->location.column);
  });
  std::string out;
  for (const Diagnostic* d : sorted) absl::StrAppend(&out, d->ToString(), "\n");
  return out;
}

absl::Status Diagnostics::ToStatus() const {
  if (!has_errors()) return absl::OkStatus();
  Diagnostics errors;
  for (const Diagnostic& d : items_) {
    if (d.severity == Diagnostic::Severity::kError) errors.items_.push_back(d);
  }
  std::string text = errors.Format();
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return absl::InvalidArgumentError(text);
}

}  // namespace kubetrain::spec
