// Kubernetes resource quantities ("100m", "2", "1.5", "2Gi", "1500Mi", "1G", "512k", "1e3").
//
// The grammar is Kubernetes' (k8s.io/apimachinery resource.Quantity):
//   quantity  ::= number suffix
//   number    ::= digits | digits "." digits | digits "." | "." digits   (an optional leading "+")
//   suffix    ::= "" | "m" | "k" | "M" | "G" | "T" | "P" | "E"           (decimal SI)
//               | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"                (binary SI)
//               | ("e" | "E") signed-integer                              (decimal exponent)
// kubetrain only uses quantities for resource requests and limits, so negative values are rejected
// (Kubernetes rejects them there too). Values are kept exactly, in thousandths of the base unit,
// and must fit in int64; anything finer than 1/1000 is rounded up, as Kubernetes' MilliValue()
// does.
//
// Thread-safety: pure functions.
#ifndef KUBETRAIN_COMMON_QUANTITY_H_
#define KUBETRAIN_COMMON_QUANTITY_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kubetrain::common {

struct ParsedQuantity {
  int64_t milli = 0;  // the value in thousandths of the base unit (millicores for cpu)

  // The value in whole base units (bytes for memory), rounded up.
  int64_t Ceil() const { return milli / 1000 + (milli % 1000 != 0 ? 1 : 0); }
};

// Parses `text`. On failure returns InvalidArgument with a message that quotes the text, says what
// was wrong and gives an example of a valid form (for "2GiB": did you mean "2Gi"?).
absl::StatusOr<ParsedQuantity> ParseQuantity(absl::string_view text);

// Formats millicores the way Kubernetes prints them: "500m", "2", "1500m".
std::string FormatMillicores(int64_t millicores);

// Formats bytes with the largest binary suffix not above them, exactly when it divides them and
// otherwise with one decimal: "2Gi", "512Mi", "1.5Gi" (approximate, for messages and tables).
std::string FormatBytes(int64_t bytes);

}  // namespace kubetrain::common

#endif  // KUBETRAIN_COMMON_QUANTITY_H_
