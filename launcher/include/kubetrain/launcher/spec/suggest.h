// "Did you mean ...?" for misspelt keys and names.
//
// Thread-safety: pure functions.
#ifndef KUBETRAIN_LAUNCHER_SPEC_SUGGEST_H_
#define KUBETRAIN_LAUNCHER_SPEC_SUGGEST_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace kubetrain::spec {

// Optimal string alignment distance (Levenshtein plus adjacent transpositions), case-insensitive.
int EditDistance(absl::string_view a, absl::string_view b);

// The candidate closest to `word`, if it is close enough to be a likely typo (distance at most
// max(1, length / 3)); otherwise empty.
std::string ClosestMatch(absl::string_view word, const std::vector<std::string>& candidates);

// "did you mean `x`?" when a close candidate exists, else "expected one of `a`, `b`, `c`".
std::string SuggestOneOf(absl::string_view word, const std::vector<std::string>& candidates);

}  // namespace kubetrain::spec

#endif  // KUBETRAIN_LAUNCHER_SPEC_SUGGEST_H_
