#include "kubetrain/common/quantity.h"

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kubetrain::common {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kKi = 1024, kMi = kKi * 1024, kGi = kMi * 1024;

struct Valid {
  const char* text;
  int64_t milli;
};

void PrintTo(const Valid& v, std::ostream* os) { *os << '"' << v.text << '"'; }

class QuantityValidTest : public ::testing::TestWithParam<Valid> {};

TEST_P(QuantityValidTest, ParsesToExactThousandths) {
  absl::StatusOr<ParsedQuantity> q = ParseQuantity(GetParam().text);
  ASSERT_TRUE(q.ok()) << GetParam().text << ": " << q.status();
  EXPECT_EQ(q->milli, GetParam().milli) << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(
    Kubernetes, QuantityValidTest,
    ::testing::Values(
        // The forms the foundation issue names.
        Valid{"100m", 100}, Valid{"2", 2000}, Valid{"1.5", 1500}, Valid{"2Gi", 2 * kGi * 1000},
        Valid{"1500Mi", 1500 * kMi * 1000}, Valid{"1G", int64_t{1000000000} * 1000},
        Valid{"512k", 512000 * 1000}, Valid{"1e3", 1000 * 1000},
        // Other spellings the Kubernetes grammar allows.
        Valid{"0", 0}, Valid{"0.5", 500}, Valid{".5", 500}, Valid{"5.", 5000}, Valid{"+3", 3000},
        Valid{"1E3", 1000000}, Valid{"1e+3", 1000000}, Valid{"1e-3", 1}, Valid{"250m", 250},
        Valid{"1Ki", kKi * 1000}, Valid{"1Ti", kGi * 1024 * 1000}, Valid{"1M", 1000000000},
        Valid{"0.5Gi", kGi / 2 * 1000}, Valid{"007", 7000}, Valid{"1k", 1000000},
        // Largest values that still fit: 8Ei would be 2^63 * 1000 thousandths and does not.
        Valid{"9223372036854775807m", INT64_C(9223372036854775807)},
        Valid{"8Pi", INT64_C(9007199254740992000)}));

TEST(QuantityTest, RoundsUpFinerThanOneThousandthLikeMilliValue) {
  EXPECT_EQ(ParseQuantity("0.0001")->milli, 1);
  EXPECT_EQ(ParseQuantity("1.0001")->milli, 1001);
  EXPECT_EQ(ParseQuantity("1e-7")->milli, 1);
  EXPECT_EQ(ParseQuantity("0.1Gi")->Ceil(), 107374183);  // 107374182.4 bytes, rounded up
}

TEST(QuantityTest, CeilGivesWholeUnits) {
  EXPECT_EQ(ParseQuantity("2Gi")->Ceil(), 2 * kGi);
  EXPECT_EQ(ParseQuantity("100m")->Ceil(), 1);
  EXPECT_EQ(ParseQuantity("0")->Ceil(), 0);
}

struct Invalid {
  const char* text;
  const char* message;  // a substring the error must contain
};

void PrintTo(const Invalid& v, std::ostream* os) { *os << '"' << v.text << '"'; }

class QuantityInvalidTest : public ::testing::TestWithParam<Invalid> {};

TEST_P(QuantityInvalidTest, RejectsWithClearError) {
  absl::StatusOr<ParsedQuantity> q = ParseQuantity(GetParam().text);
  ASSERT_FALSE(q.ok()) << GetParam().text << " parsed as " << q->milli;
  EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(q.status().message(), HasSubstr(GetParam().message));
  EXPECT_THAT(q.status().message(), HasSubstr(absl::StrCat("\"", GetParam().text, "\"")));
}

INSTANTIATE_TEST_SUITE_P(
    Kubernetes, QuantityInvalidTest,
    ::testing::Values(
        Invalid{"-1", "must not be negative"}, Invalid{"-100m", "must not be negative"},
        Invalid{"2GiB", "did you mean \"2Gi\""}, Invalid{"2GB", "did you mean \"2Gi\""},
        Invalid{"abc", "does not start with a number"}, Invalid{"", "empty"},
        Invalid{"8Ei", "too large"}, Invalid{"99999999999999999999", "too large"},
        Invalid{"1e400", "too large"}, Invalid{"1e19", "too large"},
        Invalid{"1.2.3", "more than one decimal point"}, Invalid{".", "no digits"},
        Invalid{"1 Gi", "unknown suffix"}, Invalid{" 1", "white space"},
        Invalid{"1ki", "did you mean \"1Ki\""}, Invalid{"1mi", "unknown suffix"},
        Invalid{"1e", "unknown suffix"}, Invalid{"1e+", "unknown suffix"},
        Invalid{"Gi", "does not start with a number"}, Invalid{"1Gii", "unknown suffix"}));

TEST(QuantityFormatTest, PrintsLikeKubernetes) {
  EXPECT_EQ(FormatMillicores(500), "500m");
  EXPECT_EQ(FormatMillicores(2000), "2");
  EXPECT_EQ(FormatMillicores(1500), "1500m");
  EXPECT_EQ(FormatBytes(2 * kGi), "2Gi");
  EXPECT_EQ(FormatBytes(1536 * kMi), "1.5Gi");
  EXPECT_EQ(FormatBytes(512 * kMi), "512Mi");
  EXPECT_EQ(FormatBytes(kGi + kGi / 2 + 1), "1.5Gi");
  EXPECT_EQ(FormatBytes(1000), "1000");
}

}  // namespace
}  // namespace kubetrain::common
