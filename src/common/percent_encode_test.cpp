#include "common/percent_encode.hpp"

#include <gtest/gtest.h>

namespace gpuhub {
namespace {

TEST(PercentEncode, KeepsUnreservedAndEncodesTheRest) {
  EXPECT_EQ(PercentEncode("aZ09-._~"), "aZ09-._~");
  EXPECT_EQ(PercentEncode("a b/c"), "a%20b%2Fc");
  EXPECT_EQ(PercentEncode("?&=%#"), "%3F%26%3D%25%23");
  EXPECT_EQ(PercentEncode("\xc3\xa9\x01"), "%C3%A9%01");
  EXPECT_EQ(PercentEncode(""), "");
}

}  // namespace
}  // namespace gpuhub
