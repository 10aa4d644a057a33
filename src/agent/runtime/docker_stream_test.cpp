#include "agent/runtime/docker_stream.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace gpuhub::agent::runtime {
namespace {

std::string Frame(int stream, std::string_view payload) {
  std::string f(8, '\0');
  f[0] = static_cast<char>(stream);
  auto n = static_cast<uint32_t>(payload.size());
  f[4] = static_cast<char>(n >> 24);
  f[5] = static_cast<char>(n >> 16);
  f[6] = static_cast<char>(n >> 8);
  f[7] = static_cast<char>(n);
  return f + std::string(payload);
}

// What came out, per stream, with consecutive pieces of one stream joined.
struct Collected {
  std::vector<std::pair<int, std::string>> pieces;
  MultiplexedStreamDemuxer::Output Sink() {
    return [this](int stream, std::string_view data) {
      EXPECT_FALSE(data.empty());
      if (!pieces.empty() && pieces.back().first == stream) {
        pieces.back().second += data;
      } else {
        pieces.emplace_back(stream, std::string(data));
      }
    };
  }
};

using Pieces = std::vector<std::pair<int, std::string>>;

TEST(MultiplexedStreamDemuxer, StartsClean) {
  MultiplexedStreamDemuxer d;
  EXPECT_TRUE(d.Clean());
  Collected c;
  EXPECT_TRUE(d.Feed("", c.Sink()).ok());
  EXPECT_TRUE(d.Clean());
  EXPECT_TRUE(c.pieces.empty());
}

TEST(MultiplexedStreamDemuxer, WholeFrames) {
  MultiplexedStreamDemuxer d;
  Collected c;
  ASSERT_TRUE(d.Feed(Frame(1, "out\n") + Frame(2, "err\n") + Frame(0, "in"), c.Sink()).ok());
  EXPECT_TRUE(d.Clean());
  EXPECT_EQ(c.pieces, (Pieces{{1, "out\n"}, {2, "err\n"}, {0, "in"}}));
}

// The exact bytes Podman 4.3 sent for `sh -c 'echo out; echo err >&2; exit 3'`.
TEST(MultiplexedStreamDemuxer, PodmanRecording) {
  const std::string recorded(
      "\x01\0\0\0\0\0\0\x04"
      "out\n"
      "\x02\0\0\0\0\0\0\x04"
      "err\n",
      24);
  MultiplexedStreamDemuxer d;
  Collected c;
  ASSERT_TRUE(d.Feed(recorded, c.Sink()).ok());
  EXPECT_TRUE(d.Clean());
  EXPECT_EQ(c.pieces, (Pieces{{1, "out\n"}, {2, "err\n"}}));
}

TEST(MultiplexedStreamDemuxer, SplitAtEveryBytePosition) {
  const std::string bytes = Frame(1, "hello ") + Frame(2, "") + Frame(2, "oops\n") +
                            Frame(1, "world\n") + Frame(1, std::string(300, 'x'));
  const Pieces want{{1, "hello "}, {2, "oops\n"}, {1, "world\n" + std::string(300, 'x')}};
  for (size_t i = 0; i <= bytes.size(); ++i) {
    MultiplexedStreamDemuxer d;
    Collected c;
    ASSERT_TRUE(d.Feed(std::string_view(bytes).substr(0, i), c.Sink()).ok()) << i;
    ASSERT_TRUE(d.Feed(std::string_view(bytes).substr(i), c.Sink()).ok()) << i;
    EXPECT_TRUE(d.Clean()) << i;
    EXPECT_EQ(c.pieces, want) << "split at " << i;
  }
}

TEST(MultiplexedStreamDemuxer, SplitAtEveryPairOfPositions) {
  const std::string bytes = Frame(2, "ab") + Frame(1, "") + Frame(1, "cde");
  const Pieces want{{2, "ab"}, {1, "cde"}};
  for (size_t i = 0; i <= bytes.size(); ++i) {
    for (size_t j = i; j <= bytes.size(); ++j) {
      MultiplexedStreamDemuxer d;
      Collected c;
      std::string_view all(bytes);
      ASSERT_TRUE(d.Feed(all.substr(0, i), c.Sink()).ok());
      ASSERT_TRUE(d.Feed(all.substr(i, j - i), c.Sink()).ok());
      ASSERT_TRUE(d.Feed(all.substr(j), c.Sink()).ok());
      EXPECT_TRUE(d.Clean());
      EXPECT_EQ(c.pieces, want) << i << "," << j;
    }
  }
}

TEST(MultiplexedStreamDemuxer, OneByteAtATime) {
  const std::string bytes = Frame(1, "abc") + Frame(2, "de");
  MultiplexedStreamDemuxer d;
  std::vector<std::pair<int, std::string>> calls;
  for (char ch : bytes) {
    ASSERT_TRUE(d.Feed(std::string_view(&ch, 1), [&](int s, std::string_view data) {
                   calls.emplace_back(s, std::string(data));
                 }).ok());
  }
  EXPECT_TRUE(d.Clean());
  // Payload bytes are passed on as they arrive, not held back until the frame is whole.
  EXPECT_EQ(calls, (Pieces{{1, "a"}, {1, "b"}, {1, "c"}, {2, "d"}, {2, "e"}}));
}

TEST(MultiplexedStreamDemuxer, EmptyFramesOnly) {
  MultiplexedStreamDemuxer d;
  Collected c;
  ASSERT_TRUE(d.Feed(Frame(1, "") + Frame(2, "") + Frame(0, ""), c.Sink()).ok());
  EXPECT_TRUE(d.Clean());
  EXPECT_TRUE(c.pieces.empty());
}

TEST(MultiplexedStreamDemuxer, LargeFrameFedInChunks) {
  std::string payload(3 * 1024 * 1024 + 7, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  const std::string bytes = Frame(2, payload) + Frame(1, "tail");
  MultiplexedStreamDemuxer d;
  Collected c;
  for (size_t i = 0; i < bytes.size(); i += 65536) {
    ASSERT_TRUE(d.Feed(std::string_view(bytes).substr(i, 65536), c.Sink()).ok());
    if (i + 65536 < bytes.size()) {
      EXPECT_FALSE(d.Clean());
    }
  }
  EXPECT_TRUE(d.Clean());
  ASSERT_EQ(c.pieces.size(), 2u);
  EXPECT_EQ(c.pieces[0].first, 2);
  EXPECT_TRUE(c.pieces[0].second == payload);
  EXPECT_EQ(c.pieces[1], (std::pair<int, std::string>(1, "tail")));
}

TEST(MultiplexedStreamDemuxer, LengthUsesAllFourBytesBigEndian) {
  // 0x00010002 = 65538 bytes: a little-endian or 16-bit reading would get it wrong.
  std::string payload(65538, 'z');
  MultiplexedStreamDemuxer d;
  Collected c;
  std::string bytes = Frame(1, payload);
  EXPECT_EQ(bytes.substr(4, 4), std::string("\0\x01\0\x02", 4));
  ASSERT_TRUE(d.Feed(bytes, c.Sink()).ok());
  EXPECT_TRUE(d.Clean());
  ASSERT_EQ(c.pieces.size(), 1u);
  EXPECT_EQ(c.pieces[0].second.size(), payload.size());
}

TEST(MultiplexedStreamDemuxer, PartialHeaderOrPayloadIsNotClean) {
  const std::string bytes = Frame(1, "abc");
  for (size_t i = 1; i < bytes.size(); ++i) {
    MultiplexedStreamDemuxer d;
    Collected c;
    ASSERT_TRUE(d.Feed(std::string_view(bytes).substr(0, i), c.Sink()).ok());
    EXPECT_FALSE(d.Clean()) << i;
  }
}

TEST(MultiplexedStreamDemuxer, BadStreamIdIsAnError) {
  for (int id : {3, 4, 0x7f, 0xff}) {
    MultiplexedStreamDemuxer d;
    Collected c;
    Status s = d.Feed(Frame(1, "ok") + Frame(id, "bad"), c.Sink());
    ASSERT_FALSE(s.ok()) << id;
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(s.error().message.find("frame header"), std::string::npos) << s.error().message;
    EXPECT_EQ(c.pieces, (Pieces{{1, "ok"}}));  // what came before the bad frame is passed on
    EXPECT_FALSE(d.Clean());
    // It stays failed.
    EXPECT_FALSE(d.Feed(Frame(1, "more"), c.Sink()).ok());
    EXPECT_EQ(c.pieces, (Pieces{{1, "ok"}}));
  }
}

TEST(MultiplexedStreamDemuxer, BadIdSplitAcrossFeeds) {
  std::string bytes = Frame(5, "x");
  MultiplexedStreamDemuxer d;
  Collected c;
  ASSERT_TRUE(d.Feed(bytes.substr(0, 3), c.Sink()).ok());  // not known to be bad yet
  EXPECT_FALSE(d.Feed(bytes.substr(3), c.Sink()).ok());
}

TEST(MultiplexedStreamDemuxer, NonZeroPaddingIsAnError) {
  for (int at : {1, 2, 3}) {
    std::string bytes = Frame(1, "x");
    bytes[static_cast<size_t>(at)] = '\x01';
    MultiplexedStreamDemuxer d;
    Collected c;
    EXPECT_FALSE(d.Feed(bytes, c.Sink()).ok()) << at;
  }
}

TEST(MultiplexedStreamDemuxer, RawTtyOutputIsAnError) {
  // What a Tty=true exec would send: plain text, not frames.
  MultiplexedStreamDemuxer d;
  Collected c;
  EXPECT_FALSE(d.Feed("hello world\n", c.Sink()).ok());
  EXPECT_TRUE(c.pieces.empty());
}

}  // namespace
}  // namespace gpuhub::agent::runtime
