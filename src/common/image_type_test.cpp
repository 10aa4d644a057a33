#include "common/image_type.hpp"

#include <gtest/gtest.h>

#include <string>

namespace gpuhub {
namespace {

using namespace std::string_literals;

TEST(SniffImageTypeTest, Png) {
  EXPECT_EQ(SniffImageType("\x89PNG\r\n\x1a\n\0\0\0\rIHDR"s), "image/png");
  EXPECT_EQ(SniffImageType("\x89PNG\r\n\x1a\n"), "image/png");
}

TEST(SniffImageTypeTest, Jpeg) {
  EXPECT_EQ(SniffImageType("\xff\xd8\xff\xe0\0\x10JFIF"s), "image/jpeg");
  EXPECT_EQ(SniffImageType("\xff\xd8\xff"), "image/jpeg");
}

TEST(SniffImageTypeTest, Gif) {
  EXPECT_EQ(SniffImageType("GIF87a\x01\0\x01\0"s), "image/gif");
  EXPECT_EQ(SniffImageType("GIF89a"), "image/gif");
}

TEST(SniffImageTypeTest, Webp) {
  EXPECT_EQ(SniffImageType("RIFF\x24\0\0\0WEBPVP8 "s), "image/webp");
  EXPECT_EQ(SniffImageType("RIFFxxxxWEBP"), "image/webp");
}

TEST(SniffImageTypeTest, NearMisses) {
  for (const std::string& data : {
           ""s,
           "\x89PNG\r\n\x1a"s,                              // short signature
           "\x89PNG\n\r\x1a\n"s,                            // line ends swapped
           "\x88PNG\r\n\x1a\n"s,                            // first byte
           "PNG\r\n\x1a\n"s,                                // no high byte
           "\xff\xd8"s,                                     // short JPEG
           "\xff\xd8\xfe"s,                                 // third byte
           "\xd8\xff\xff"s,                                 //
           "GIF88a"s,                                       // unknown GIF version
           "GIF8"s,                                         //
           "gif89a"s,                                       // case matters
           "RIFF\x24\0\0\0WAVEfmt "s,                       // RIFF but not WebP
           "RIFFxxxxWEB"s,                                  // short WebP
           "RIFFxxxWEBP"s,                                  // size field one byte short
           "riffxxxxWEBP"s,                                 //
           "<svg xmlns=\"http://www.w3.org/2000/svg\"/>"s,  // SVG is never sniffed
           "BM\x36\0\0\0"s,                                 // BMP
           "\0\0\0\x18"
           "ftypavif"s,  // AVIF
       }) {
    EXPECT_EQ(SniffImageType(data), std::nullopt) << testing::PrintToString(data);
  }
}

TEST(SniffImageTypeTest, OnlyPrefixMatters) {
  EXPECT_EQ(SniffImageType("GIF89a" + std::string(1000, '\0')), "image/gif");
  EXPECT_EQ(SniffImageType("xGIF89a"), std::nullopt);
}

TEST(ImageExtensionTest, KnownTypes) {
  EXPECT_EQ(ImageExtension("image/png"), "png");
  EXPECT_EQ(ImageExtension("image/jpeg"), "jpg");
  EXPECT_EQ(ImageExtension("image/gif"), "gif");
  EXPECT_EQ(ImageExtension("image/webp"), "webp");
  EXPECT_EQ(ImageExtension("image/svg+xml"), "svg");
  EXPECT_EQ(ImageExtension("Image/PNG"), "png");
}

TEST(ImageExtensionTest, UnknownTypes) {
  EXPECT_EQ(ImageExtension(""), "");
  EXPECT_EQ(ImageExtension("image/bmp"), "");
  EXPECT_EQ(ImageExtension("image/png; x=y"), "");
  EXPECT_EQ(ImageExtension("text/plain"), "");
}

TEST(ImageExtensionTest, SniffedTypesAllHaveExtensions) {
  for (const std::string& data :
       {"\x89PNG\r\n\x1a\n"s, "\xff\xd8\xff"s, "GIF87a"s, "RIFFxxxxWEBP"s}) {
    auto type = SniffImageType(data);
    ASSERT_TRUE(type.has_value());
    EXPECT_FALSE(ImageExtension(*type).empty());
  }
}

}  // namespace
}  // namespace gpuhub
