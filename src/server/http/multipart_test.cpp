#include "server/http/multipart.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace gpuhub::http {
namespace {

using namespace std::string_literals;

// ---- MultipartBoundary ----

TEST(MultipartBoundaryTest, BrowserHeader) {
  auto b = MultipartBoundary("multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW");
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(*b, "----WebKitFormBoundary7MA4YWxkTrZu0gW");
}

TEST(MultipartBoundaryTest, MediaTypeAndParameterNamesAreCaseInsensitive) {
  auto b = MultipartBoundary("  Multipart/Form-Data;BOUNDARY=AbC  ");
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(*b, "AbC");  // the value keeps its case
}

TEST(MultipartBoundaryTest, QuotedBoundaryWithSpecials) {
  auto b = MultipartBoundary(R"x(multipart/form-data; charset=utf-8; boundary="a b:c=d?(e)")x");
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(*b, "a b:c=d?(e)");
}

TEST(MultipartBoundaryTest, UnquotedBoundaryWithBoundaryChars) {
  auto b = MultipartBoundary("multipart/form-data; boundary=----=_Part_0_1.2; x=y");
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(*b, "----=_Part_0_1.2");
}

TEST(MultipartBoundaryTest, LengthLimits) {
  const std::string b70(70, 'x');
  auto ok = MultipartBoundary("multipart/form-data; boundary=" + b70);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, b70);
  auto too_long = MultipartBoundary("multipart/form-data; boundary=" + b70 + "x");
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.error().code, ErrorCode::kInvalidArgument);
  auto empty = MultipartBoundary(R"(multipart/form-data; boundary="")");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, ErrorCode::kInvalidArgument);
}

TEST(MultipartBoundaryTest, NotMultipartFormData) {
  for (std::string_view ct : {"application/json", "", "multipart/mixed; boundary=x", "text/plain",
                              "multipart", "multipart/form-dataX; boundary=x", "form-data"}) {
    auto b = MultipartBoundary(ct);
    ASSERT_FALSE(b.ok()) << ct;
    EXPECT_EQ(b.error().code, ErrorCode::kUnsupported) << ct;
    EXPECT_EQ(b.error().message, "Body must be multipart/form-data");
  }
}

TEST(MultipartBoundaryTest, BadBoundary) {
  for (std::string_view ct : {
           "multipart/form-data",
           "multipart/form-data; charset=utf-8",
           "multipart/form-data; boundary=",
           "multipart/form-data; boundary=a@b",
           R"(multipart/form-data; boundary="abc ")",
           R"(multipart/form-data; boundary="a\"b")",
           R"(multipart/form-data; boundary="abc)",
           "multipart/form-data; boundary=a; boundary=b",
           "multipart/form-data boundary=abc",
           "multipart/form-data; boundary",
       }) {
    auto b = MultipartBoundary(ct);
    ASSERT_FALSE(b.ok()) << ct;
    EXPECT_EQ(b.error().code, ErrorCode::kInvalidArgument) << ct;
  }
}

// ---- ParseMultipart ----

Result<std::vector<MultipartPart>> Parse(std::string_view body, std::string_view boundary,
                                         const MultipartLimits& limits = {}) {
  return ParseMultipart(body, boundary, limits);
}

void ExpectError(const Result<std::vector<MultipartPart>>& r, std::string_view message) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message, message);
}

const std::string kPng = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR"s;

TEST(ParseMultipartTest, ChromeStyle) {
  const std::string b = "----WebKitFormBoundaryx8JmKQvXbLQ1RrOJ";
  const std::string body = "--" + b +
                           "\r\n"
                           "Content-Disposition: form-data; name=\"with_file\"\r\n"
                           "\r\n"
                           "true\r\n"
                           "--" +
                           b +
                           "\r\n"
                           "Content-Disposition: form-data; name=\"file\"; filename=\"me.png\"\r\n"
                           "Content-Type: image/png\r\n"
                           "\r\n" +
                           kPng + "\r\n--" + b + "--\r\n";
  auto r = Parse(body, b);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].name, "with_file");
  EXPECT_FALSE((*r)[0].filename.has_value());
  EXPECT_EQ((*r)[0].content_type, "text/plain");
  EXPECT_EQ((*r)[0].data, "true");
  EXPECT_EQ((*r)[1].name, "file");
  EXPECT_EQ((*r)[1].filename, "me.png");
  EXPECT_EQ((*r)[1].content_type, "image/png");
  EXPECT_EQ((*r)[1].data, kPng);
}

TEST(ParseMultipartTest, CurlStyle) {
  const std::string b = "------------------------d74496d66958873e";
  const std::string body = "--" + b +
                           "\r\n"
                           "Content-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\n"
                           "Content-Type: application/octet-stream\r\n"
                           "\r\n"
                           "hello\r\n"
                           "--" +
                           b + "--\r\n";
  auto r = Parse(body, b);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].filename, "x.bin");
  EXPECT_EQ((*r)[0].content_type, "application/octet-stream");
  EXPECT_EQ((*r)[0].data, "hello");
}

TEST(ParseMultipartTest, PythonRequestsStyle) {
  const std::string b = "3f0b2c8e1a9d4e7f8c6b5a4d3e2f1a0b";
  const std::string body =
      "--" + b +
      "\r\n"
      "Content-Disposition: form-data; name=\"with_file\"\r\n\r\n"
      "true\r\n--" +
      b +
      "\r\n"
      "Content-Disposition: form-data; name=\"file\"; filename=\"file\"\r\n\r\n" +
      kPng + "\r\n--" + b + "--\r\n";
  auto r = Parse(body, b);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1].filename, "file");
  EXPECT_EQ((*r)[1].content_type, "text/plain");
  EXPECT_EQ((*r)[1].data, kPng);
}

TEST(ParseMultipartTest, PreambleEpilogueAndTransportPadding) {
  const std::string body =
      "This is the preamble.\r\n--xyz \t\r\n"
      "Content-Disposition: form-data; name=a\r\n\r\n"
      "1\r\n--xyz\t\r\n"
      "Content-Disposition: form-data; name=b\r\n\r\n"
      "2\r\n--xyz--  \r\nThis is the epilogue\r\n--xyz\r\ngarbage";
  auto r = Parse(body, "xyz");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].name, "a");
  EXPECT_EQ((*r)[0].data, "1");
  EXPECT_EQ((*r)[1].name, "b");
  EXPECT_EQ((*r)[1].data, "2");
}

TEST(ParseMultipartTest, EmptyPreamble) {
  auto r = Parse("\r\n--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b--", "b");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].data, "v");
}

TEST(ParseMultipartTest, CloseDelimiterWithoutTrailingCrlf) {
  auto r = Parse("--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b--", "b");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
}

TEST(ParseMultipartTest, BinaryDataWithBoundaryFragments) {
  const std::string b = "boundary";
  std::string data;
  for (int i = 0; i < 256; ++i) data += static_cast<char>(i);
  data += "\r\n--boundar\r\n";        // a prefix of the delimiter
  data += "\r\n--boundaryX\r\n";      // boundary followed by a non-delimiter byte
  data += "\r\n--boundary-x";         // a single dash is not the close delimiter
  data += "--boundary\r\n";           // no CR LF before it
  data += "\n--boundary\r\n";         // bare LF before it
  data += "\r\n--boundary \tx\r\n";   // padding followed by something else
  data += "\r\r\n\r\n--\r\n--bound";  // CRs, and a prefix at the end of the data
  data += "\r\n";                     // data ending in CRLF
  const std::string body = "--" + b +
                           "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n"
                           "Content-Type: application/octet-stream\r\n\r\n" +
                           data + "\r\n--" + b + "--\r\n";
  auto r = Parse(body, b);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].data, data);
}

TEST(ParseMultipartTest, EmptyData) {
  // Blank line followed by the delimiter, and the delimiter sharing the blank line's CRLF.
  auto r = Parse(
      "--b\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n--b\r\n"
      "Content-Disposition: form-data; name=c\r\n\r\n--b--",
      "b");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].data, "");
  EXPECT_EQ((*r)[1].name, "c");
  EXPECT_EQ((*r)[1].data, "");
}

TEST(ParseMultipartTest, NoParts) {
  auto r = Parse("--b--\r\n", "b");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->empty());
}

TEST(ParseMultipartTest, HeaderSyntaxVariants) {
  const std::string body =
      "--b\r\n"
      "content-disposition:FORM-DATA ;NAME=plain ;  FileName=\"C:\\dir\\a \\\"q\\\" \\\\.png\"\r\n"
      "CONTENT-TYPE:  image/png; x=\"y\"  \r\n"
      "X-Ignored: whatever\r\n"
      "Content-Transfer-Encoding: binary\r\n"
      "\r\n"
      "d\r\n--b--";
  auto r = Parse(body, "b");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].name, "plain");
  EXPECT_EQ((*r)[0].filename, "C:\\dir\\a \"q\" \\.png");
  EXPECT_EQ((*r)[0].content_type, "image/png; x=\"y\"");
}

TEST(ParseMultipartTest, FoldedHeaderAndUtf8Filename) {
  const std::string body =
      "--b\r\n"
      "Content-Disposition: form-data;\r\n"
      "\tname=\"f\"; filename=\"\xc3\xa9t\xc3\xa9.png\"\r\n"
      "\r\n"
      "d\r\n--b--";
  auto r = Parse(body, "b");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ((*r)[0].name, "f");
  EXPECT_EQ((*r)[0].filename, "\xc3\xa9t\xc3\xa9.png");
}

TEST(ParseMultipartTest, ExtendedFilename) {
  auto r = Parse(
      "--b\r\nContent-Disposition: form-data; name=f; filename*=UTF-8''%E2%82%AC%20a.png\r\n\r\n"
      "d\r\n--b\r\n"
      "Content-Disposition: form-data; name=g; filename*=UTF-8''x.png; filename=\"y.png\"\r\n\r\n"
      "d\r\n--b\r\n"
      "Content-Disposition: form-data; name=h; filename*=latin1''x%ZZ\r\n\r\n"
      "d\r\n--b\r\n"
      "Content-Disposition: form-data; name=i; filename*=utf-8''a%0D%0Ab\r\n\r\n"
      "d\r\n--b--",
      "b");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[0].filename, "\xe2\x82\xac a.png");
  EXPECT_EQ((*r)[1].filename, "y.png");
  EXPECT_FALSE((*r)[2].filename.has_value());  // unknown charset, bad escape
  EXPECT_FALSE((*r)[3].filename.has_value());  // encoded control bytes
}

TEST(ParseMultipartTest, EmptyFilenameAndName) {
  auto r = Parse("--b\r\nContent-Disposition: form-data; name=\"\"; filename=\"\"\r\n\r\n\r\n--b--",
                 "b");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ((*r)[0].name, "");
  EXPECT_EQ((*r)[0].filename, "");
}

TEST(ParseMultipartTest, Truncated) {
  const std::string head = "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nvalue";
  ExpectError(Parse(head, "b"), "Truncated multipart body");
  ExpectError(Parse(head + "\r\n--b", "b"), "Truncated multipart body");
  ExpectError(Parse(head + "\r\n--b-", "b"), "Truncated multipart body");
  ExpectError(Parse(head + "\r\n--b\r\n", "b"), "Truncated multipart body");
  ExpectError(Parse("--b\r\n", "b"), "Truncated multipart body");
  ExpectError(Parse("--b\r\nContent-Disposition: form-data; name=a\r\n", "b"),
              "Truncated multipart body");
  ExpectError(Parse("--b\r\nContent-Disposition: form-data; name=a\r\n\r\n", "b"),
              "Truncated multipart body");
}

TEST(ParseMultipartTest, Garbage) {
  ExpectError(Parse("hello world", "b"), "Multipart body does not contain the boundary");
  ExpectError(Parse("--b", "b"), "Multipart body does not contain the boundary");
  ExpectError(Parse("--bx\r\n", "b"), "Multipart body does not contain the boundary");
  ExpectError(Parse("--b\n\nContent-Disposition: form-data; name=a\n\nv\n--b--\n", "b"),
              "Multipart body does not contain the boundary");
  ExpectError(Parse(std::string(1000, '\0'), "b"), "Multipart body does not contain the boundary");
}

TEST(ParseMultipartTest, EmptyBody) { ExpectError(Parse("", "b"), "Empty multipart body"); }

TEST(ParseMultipartTest, InvalidBoundaryArgument) {
  ExpectError(Parse("--\r\n", ""), "Invalid multipart boundary");
  ExpectError(Parse("--a\r\n", std::string(71, 'a')), "Invalid multipart boundary");
  ExpectError(Parse("--a\r\n", "a\r\nb"), "Invalid multipart boundary");
}

std::string Parts(int n) {
  std::string body;
  for (int i = 0; i < n; ++i) {
    body += "--b\r\nContent-Disposition: form-data; name=p" + std::to_string(i) + "\r\n\r\nv\r\n";
  }
  return body + "--b--\r\n";
}

TEST(ParseMultipartTest, TooManyParts) {
  MultipartLimits limits;
  limits.max_parts = 3;
  auto ok = Parse(Parts(3), "b", limits);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->size(), 3u);
  ExpectError(Parse(Parts(4), "b", limits), "Too many multipart parts");
  ExpectError(Parse(Parts(17), "b"), "Too many multipart parts");
  EXPECT_TRUE(Parse(Parts(16), "b").ok());
}

TEST(ParseMultipartTest, HeaderTooLong) {
  const std::string line = "Content-Disposition: form-data; name=a\r\n";
  const std::string fits = line + "X-Pad: 12\r\n";
  const std::string over = line + "X-Pad: 123\r\n";  // one byte more
  MultipartLimits limits;
  limits.max_header_bytes = fits.size();
  EXPECT_TRUE(Parse("--b\r\n" + fits + "\r\nv\r\n--b--", "b", limits).ok());
  ExpectError(Parse("--b\r\n" + over + "\r\nv\r\n--b--", "b", limits),
              "Multipart part headers too large");
  ExpectError(
      Parse("--b\r\n" + line + "X-Big: " + std::string(9000, 'a') + "\r\n\r\nv\r\n--b--", "b"),
      "Multipart part headers too large");
}

TEST(ParseMultipartTest, BadPartHeaders) {
  const std::string_view kNoName = "Multipart part lacks Content-Disposition form-data name";
  const auto one = [](std::string_view headers) {
    return Parse("--b\r\n" + std::string(headers) + "\r\nv\r\n--b--", "b");
  };
  ExpectError(Parse("--b\r\n\r\nv\r\n--b--", "b"), kNoName);
  ExpectError(one("Content-Type: text/plain\r\n"), kNoName);
  ExpectError(one("Content-Disposition: attachment; name=a\r\n"), kNoName);
  ExpectError(one("Content-Disposition: form-data\r\n"), kNoName);
  ExpectError(one("Content-Disposition: form-data; filename=a\r\n"), kNoName);
  ExpectError(one("Content-Disposition: form-data; name=a\r\nContent-Disposition: form-data; "
                  "name=b\r\n"),
              "Duplicate Content-Disposition in multipart part");
  ExpectError(one("Content-Disposition: form-data; name=a; name=b\r\n"),
              "Duplicate name in multipart Content-Disposition");
  ExpectError(one("Content-Disposition: form-data; name=a\r\nContent-Type: a/b\r\n"
                  "Content-Type: c/d\r\n"),
              "Duplicate Content-Type in multipart part");
  ExpectError(one("Content-Disposition: form-data; name=\"a\r\n"),
              "Malformed Content-Disposition in multipart part");
  ExpectError(one("Content-Disposition: form-data; name\r\n"),
              "Malformed Content-Disposition in multipart part");
  ExpectError(one("Content-Disposition form-data; name=a\r\n"), "Malformed multipart part header");
  ExpectError(one("Content-Disposition : form-data; name=a\r\n"),
              "Malformed multipart part header");
  ExpectError(one(" Content-Disposition: form-data; name=a\r\n"),
              "Malformed multipart part header");
  ExpectError(one("Content-Disposition: form-data; name=a\r\nX: a\rb\r\n"),
              "Malformed multipart part header");
  ExpectError(one("Content-Disposition: form-data; name=\"a\0b\"\r\n"s),
              "Malformed multipart part header");
  ExpectError(
      one("Content-Disposition: form-data; name=a\r\nContent-Transfer-Encoding: base64\r\n"),
      "Unsupported Content-Transfer-Encoding in multipart part");
}

TEST(ParseMultipartTest, AdversarialInputsFinish) {
  // Many near-delimiters: each is scanned once.
  const std::string b(70, 'b');
  std::string near;
  while (near.size() < (2u << 20)) near += "\r\n--" + b.substr(0, 69) + "\r";
  ExpectError(Parse("--" + b + "\r\nContent-Disposition: form-data; name=a\r\n\r\n" + near, b),
              "Truncated multipart body");
  std::string boundary_x;
  while (boundary_x.size() < (2u << 20)) boundary_x += "\r\n--" + b + "x";
  ExpectError(Parse(boundary_x, b), "Multipart body does not contain the boundary");
  // A huge header section without a blank line.
  MultipartLimits unlimited;
  unlimited.max_header_bytes = static_cast<size_t>(-1);
  std::string headers = "--b\r\n";
  while (headers.size() < (2u << 20)) headers += "X: y\r\n";
  ExpectError(Parse(headers, "b", unlimited), "Truncated multipart body");
  ExpectError(Parse(headers, "b"), "Multipart part headers too large");
}

}  // namespace
}  // namespace gpuhub::http
