#include "common/time_util.hpp"

#include <gtest/gtest.h>

namespace gpuhub {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(FormatIso8601, UtcWithZ) {
  EXPECT_EQ(FormatIso8601(FromUnixSeconds(1795482123)), "2026-11-24T01:02:03Z");
  EXPECT_EQ(FormatIso8601(FromUnixSeconds(0)), "1970-01-01T00:00:00Z");
}

TEST(ParseDuration, Units) {
  EXPECT_EQ(ParseDuration("90m", seconds(1)).value(), minutes(90));
  EXPECT_EQ(ParseDuration("1h30m", seconds(1)).value(), minutes(90));
  EXPECT_EQ(ParseDuration("2d", seconds(1)).value(), hours(48));
  EXPECT_EQ(ParseDuration("1.5h", seconds(1)).value(), minutes(90));
  EXPECT_EQ(ParseDuration("45s", seconds(1)).value(), seconds(45));
}

TEST(ParseDuration, BareNumberTakesBareUnit) {
  EXPECT_EQ(ParseDuration("2", hours(1)).value(), hours(2));
  EXPECT_EQ(ParseDuration("0.5", hours(1)).value(), minutes(30));
  EXPECT_EQ(ParseDuration("15", seconds(1)).value(), seconds(15));
}

TEST(ParseDuration, RejectsGarbage) {
  for (const char* bad :
       {"", "h", "1x", "1h30", "-1h", "1..5h", ".", "1 h", "abc", "99999999999999999999d"}) {
    auto r = ParseDuration(bad, seconds(1));
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace gpuhub
