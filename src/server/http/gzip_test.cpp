#include "server/http/gzip.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "server/http/message.hpp"

namespace gpuhub::http {
namespace {

// Inflates a gzip member with zlib; nullopt unless it is exactly one valid member.
std::optional<std::string> Gunzip(std::string_view data) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) return std::nullopt;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  std::string out;
  int rc = Z_OK;
  char chunk[16384];
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof(chunk);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(chunk, sizeof(chunk) - zs.avail_out);
  }
  bool whole = rc == Z_STREAM_END && zs.avail_in == 0;
  inflateEnd(&zs);
  if (!whole) return std::nullopt;
  return out;
}

TEST(Gzip, RoundTripsThroughZlibInflate) {
  nlohmann::json doc = nlohmann::json::array();
  for (int i = 0; i < 2000; ++i) {
    doc.push_back(
        {{"id", "machine-" + std::to_string(i)}, {"online", i % 3 != 0}, {"util", i % 97}});
  }
  std::string big = doc.dump();
  std::string random(100000, '\0');
  for (size_t i = 0; i < random.size(); ++i) random[i] = static_cast<char>((i * 2654435761u) >> 13);
  for (const std::string& input : {big, random, std::string(), std::string("x")}) {
    for (int level : {1, 6, 9}) {
      std::string gz = GzipCompress(input, level);
      ASSERT_GE(gz.size(), 18u);  // header and trailer
      EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);
      EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
      auto back = Gunzip(gz);
      ASSERT_TRUE(back.has_value()) << "level " << level << ", " << input.size() << " bytes";
      EXPECT_EQ(*back, input);
    }
  }
  EXPECT_LT(GzipCompress(big, 1).size(), big.size() / 5);  // JSON compresses well
}

TEST(Gzip, AcceptEncoding) {
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("gzip, deflate, br"));
  EXPECT_TRUE(AcceptsGzip("br;q=1.0, GZip;q=0.5"));
  EXPECT_TRUE(AcceptsGzip(" deflate ,x-gzip"));
  EXPECT_TRUE(AcceptsGzip("*"));
  EXPECT_TRUE(AcceptsGzip("identity, *;q=0.1"));
  EXPECT_TRUE(AcceptsGzip("gzip;q=0.001"));
  EXPECT_FALSE(AcceptsGzip(""));
  EXPECT_FALSE(AcceptsGzip("identity"));
  EXPECT_FALSE(AcceptsGzip("deflate, br"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("gzip; q=0.000"));
  EXPECT_FALSE(AcceptsGzip("*, gzip;q=0"));  // named beats *
  EXPECT_FALSE(AcceptsGzip("*;q=0"));
  EXPECT_FALSE(AcceptsGzip("gzipx, xgzip"));
}

TEST(ResponseBody, SharedBufferIsSentWithoutCopyAndStringAssignmentDropsIt) {
  auto doc = std::make_shared<const std::string>(R"({"big":"document"})");
  Response res{Status::ok, 11};
  res.body() = "replaced";
  res.body().Share(doc);
  EXPECT_TRUE(res.body().empty());
  EXPECT_EQ(res.body().view(), *doc);
  EXPECT_EQ(res.body().view().data(), doc->data());  // the same bytes, not a copy
  res.prepare_payload();
  EXPECT_EQ(res[bhttp::field::content_length], std::to_string(doc->size()));
  std::ostringstream wire;
  wire << res;
  EXPECT_TRUE(wire.str().ends_with("\r\n\r\n" + *doc)) << wire.str();
  EXPECT_EQ(doc.use_count(), 2);

  res.body() = std::string("plain");
  EXPECT_EQ(res.body().shared(), nullptr);
  EXPECT_EQ(res.body().view(), "plain");
  EXPECT_EQ(doc.use_count(), 1);
  res.body() += "!";
  res.prepare_payload();
  std::ostringstream wire2;
  wire2 << res;
  EXPECT_TRUE(wire2.str().ends_with("\r\n\r\nplain!")) << wire2.str();
}

TEST(ResponseBody, ParsesLikeAString) {
  bhttp::response_parser<ResponseBody> parser;
  parser.eager(true);
  std::string_view wire = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(wire.data(), wire.size()), ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(parser.is_done());
  EXPECT_EQ(parser.get().body(), "hello");
}

TEST(AppendJsonString, WritesWhatNlohmannWrites) {
  using namespace std::string_literals;
  const std::string samples[] = {
      "",
      "plain ascii 123",
      "quote \" backslash \\ slash /",
      "controls \b\f\n\r\t \x01\x1f\x7f"s,
      "nul \0 inside"s,
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
      "bad \xff utf-8 \xc3",
      "\xe2\x82",
  };
  for (const auto& s : samples) {
    std::string out = "x";
    AppendJsonString(out, s);
    EXPECT_EQ(
        out, "x" + nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
        << s;
  }
}

}  // namespace
}  // namespace gpuhub::http
