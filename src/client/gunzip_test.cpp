#include "client/gunzip.hpp"

#include <gtest/gtest.h>

namespace gpuhub::client {
namespace {

// gzip.compress(b'{"hello":"gzip"}', mtime=0) in Python.
const unsigned char kGzip[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
                               0x03, 0xab, 0x56, 0xca, 0x48, 0xcd, 0xc9, 0xc9, 0x57,
                               0xb2, 0x52, 0x4a, 0xaf, 0xca, 0x2c, 0x50, 0xaa, 0x05,
                               0x00, 0xf6, 0x4f, 0x05, 0x6f, 0x10, 0x00, 0x00, 0x00};

std::string_view Bytes(size_t n = sizeof(kGzip)) {
  return {reinterpret_cast<const char*>(kGzip), n};
}

TEST(GunzipTest, DecodesAGzipBody) {
  auto out = Gunzip(Bytes(), 1 << 20);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(*out, R"({"hello":"gzip"})");
}

TEST(GunzipTest, RefusesWhatIsNotGzipCutShortOrTooLarge) {
  EXPECT_EQ(Gunzip(R"({"hello":"gzip"})", 1 << 20).error().message,
            "the server sent a bad gzip body");
  EXPECT_EQ(Gunzip(Bytes(20), 1 << 20).error().message, "the server's gzip body is cut short");
  EXPECT_EQ(Gunzip(Bytes(), 8).error().message, "the server's gzip body is too large");
  EXPECT_EQ(Gunzip("", 8).error().message, "the server's gzip body is cut short");
}

}  // namespace
}  // namespace gpuhub::client
