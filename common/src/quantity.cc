#include "kubetrain/common/quantity.h"

#include <cstdint>
#include <limits>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kubetrain::common {
namespace {

using int128 = __int128;
constexpr int128 kMax = std::numeric_limits<int64_t>::max();
// 19 significant digits keep the mantissa below 10^19 < 2^64, so scaling by 2^60 (Ei) stays inside
// int128 before the int64 check. Any value that needs more digits either overflows int64
// thousandths anyway or differs only in digits finer than 1/1000, which are rounded up.
constexpr int kMaxSignificantDigits = 19;

absl::Status Invalid(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid quantity \"", text, "\": ", why,
      " (expected a Kubernetes quantity such as \"500m\", \"2\", \"1.5\", \"4Gi\" or \"1e3\")"));
}

struct Suffix {
  int binary_shift = 0;  // multiply by 2^binary_shift
  int decimal_exp = 0;   // multiply by 10^decimal_exp
};

std::optional<Suffix> ParseSuffix(absl::string_view s) {
  if (s.empty()) return Suffix{};
  if (s.size() == 2 && s[1] == 'i') {
    switch (s[0]) {
      case 'K':
        return Suffix{10, 0};
      case 'M':
        return Suffix{20, 0};
      case 'G':
        return Suffix{30, 0};
      case 'T':
        return Suffix{40, 0};
      case 'P':
        return Suffix{50, 0};
      case 'E':
        return Suffix{60, 0};
      default:
        return std::nullopt;
    }
  }
  if (s.size() == 1) {
    switch (s[0]) {
      case 'm':
        return Suffix{0, -3};
      case 'k':
        return Suffix{0, 3};
      case 'M':
        return Suffix{0, 6};
      case 'G':
        return Suffix{0, 9};
      case 'T':
        return Suffix{0, 12};
      case 'P':
        return Suffix{0, 15};
      case 'E':
        return Suffix{0, 18};
      default:
        return std::nullopt;
    }
  }
  if (s[0] == 'e' || s[0] == 'E') {
    absl::string_view rest = s.substr(1);
    bool negative = false;
    if (!rest.empty() && (rest[0] == '+' || rest[0] == '-')) {
      negative = rest[0] == '-';
      rest.remove_prefix(1);
    }
    if (rest.empty() || rest.size() > 4) return std::nullopt;
    int exp = 0;
    for (char c : rest) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
      exp = exp * 10 + (c - '0');
    }
    return Suffix{0, negative ? -exp : exp};
  }
  return std::nullopt;
}

// A hint for common mistakes in the suffix.
std::string SuffixHint(absl::string_view number, absl::string_view suffix) {
  if (suffix.size() == 3 && suffix[1] == 'i' && (suffix[2] == 'B' || suffix[2] == 'b')) {
    return absl::StrCat("; did you mean \"", number, suffix.substr(0, 2), "\"?");
  }
  if (suffix.size() == 2 && (suffix[1] == 'B' || suffix[1] == 'b')) {
    return absl::StrCat("; did you mean \"", number, suffix.substr(0, 1), "i\" (binary) or \"",
                        number, suffix.substr(0, 1), "\" (decimal)?");
  }
  if (suffix == "ki") return absl::StrCat("; did you mean \"", number, "Ki\"?");
  return "";
}

}  // namespace

absl::StatusOr<ParsedQuantity> ParseQuantity(absl::string_view text) {
  if (text.empty()) return Invalid(text, "it is empty");
  absl::string_view s = text;
  if (s.front() == ' ' || s.back() == ' ' || s.front() == '\t' || s.back() == '\t') {
    return Invalid(text, "it has surrounding white space");
  }
  if (s.front() == '-') return Invalid(text, "resource quantities must not be negative");
  if (s.front() == '+') s.remove_prefix(1);

  // Number part.
  int128 mantissa = 0;
  int exp10 = 0;  // value = mantissa * 10^exp10
  int digits = 0, significant = 0;
  size_t i = 0;
  bool seen_dot = false;
  bool dropped_nonzero = false;  // a fraction digit beyond precision was not zero
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c == '.') {
      if (seen_dot) return Invalid(text, "it has more than one decimal point");
      seen_dot = true;
      continue;
    }
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) break;
    ++digits;
    if (significant < kMaxSignificantDigits) {
      if (mantissa != 0 || c != '0') ++significant;
      mantissa = mantissa * 10 + (c - '0');
      if (seen_dot) --exp10;
    } else if (!seen_dot) {
      ++exp10;  // an integer digit beyond precision still scales the value
      dropped_nonzero |= c != '0';
    } else {
      dropped_nonzero |= c != '0';
    }
  }
  absl::string_view number = s.substr(0, i);
  if (digits == 0) {
    return Invalid(text, i == 0 ? "it does not start with a number" : "it has no digits");
  }

  absl::string_view suffix_text = s.substr(i);
  std::optional<Suffix> suffix = ParseSuffix(suffix_text);
  if (!suffix) {
    return Invalid(text, absl::StrCat("unknown suffix \"", suffix_text,
                                      "\" (use m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or eN)",
                                      SuffixHint(number, suffix_text)));
  }

  // milli = mantissa * 10^(exp10 + decimal_exp + 3) * 2^binary_shift, rounded up.
  int e = exp10 + suffix->decimal_exp + 3;
  int128 value = mantissa;
  auto too_large = [&] {
    return Invalid(text, "it is too large (the limit is 9223372036854775807 thousandths)");
  };
  value <<= suffix->binary_shift;  // < 2^120
  bool remainder = dropped_nonzero;
  if (e >= 0) {
    for (int k = 0; k < e; ++k) {
      if (value > kMax) return too_large();
      value *= 10;
    }
    if (remainder && value != 0) value += 1;
  } else {
    for (int k = 0; k < -e && value != 0; ++k) {
      if (value % 10 != 0) remainder = true;
      value /= 10;
    }
    if (remainder) value += 1;  // round up, as MilliValue() does
  }
  if (value > kMax) return too_large();
  return ParsedQuantity{static_cast<int64_t>(value)};
}

std::string FormatMillicores(int64_t millicores) {
  if (millicores % 1000 == 0) return absl::StrCat(millicores / 1000);
  return absl::StrCat(millicores, "m");
}

std::string FormatBytes(int64_t bytes) {
  static constexpr const char* kSuffixes[] = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  for (int k = 5; k >= 0; --k) {
    int64_t unit = int64_t{1} << (10 * (k + 1));
    if (bytes < unit) continue;
    if (bytes % unit == 0) return absl::StrCat(bytes / unit, kSuffixes[k]);
    return absl::StrFormat("%.1f%s", static_cast<double>(bytes) / static_cast<double>(unit),
                           kSuffixes[k]);
  }
  return absl::StrCat(bytes);
}

}  // namespace kubetrain::common
