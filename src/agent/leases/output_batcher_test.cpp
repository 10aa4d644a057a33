#include "agent/leases/output_batcher.hpp"

#include <gtest/gtest.h>

namespace gpuhub::agent::leases {
namespace {

TEST(OutputBatcher, ASmallBatchWaits200Ms) {
  OutputBatcher b;
  EXPECT_TRUE(b.empty());
  EXPECT_FALSE(b.Take(0, false));
  b.Append("hello ", 1000);
  b.Append("world\n", 1050);
  EXPECT_FALSE(b.Take(1100, false));
  EXPECT_FALSE(b.Take(1199, false));
  EXPECT_EQ(b.Take(1200, false), "hello world\n");
  EXPECT_TRUE(b.empty());
  EXPECT_FALSE(b.Take(5000, false));
}

TEST(OutputBatcher, SixteenKiBGoAtOnceButNotTwiceIn100Ms) {
  OutputBatcher b;
  b.Append(std::string(OutputBatcher::kBatchBytes, 'a'), 1000);
  EXPECT_EQ(b.Take(1000, false)->size(), OutputBatcher::kBatchBytes);
  b.Append(std::string(OutputBatcher::kBatchBytes, 'b'), 1010);
  EXPECT_FALSE(b.Take(1050, false));
  EXPECT_FALSE(b.Take(1099, false));
  EXPECT_EQ(b.Take(1100, false)->size(), OutputBatcher::kBatchBytes);
}

TEST(OutputBatcher, TheLastBatchGoesAtOnce) {
  OutputBatcher b;
  b.Append("a", 1000);
  EXPECT_EQ(b.Take(1000, false), std::nullopt);
  EXPECT_EQ(b.Take(1001, true), "a");
  b.Append("b", 1002);
  EXPECT_EQ(b.Take(1003, true), "b");  // even right after another batch
}

TEST(OutputBatcher, KeepsTheNewest64KiBAndSaysWhatItDropped) {
  OutputBatcher b;
  b.Append(std::string(40 * 1024, 'o'), 0);
  b.Append(std::string(40 * 1024, 'n'), 10);
  EXPECT_EQ(b.held(), OutputBatcher::kMaxBytes);
  auto out = b.Take(10, false);
  ASSERT_TRUE(out);
  const std::string note = "[gpuhub-agent: 16384 bytes of output dropped]\n";
  ASSERT_EQ(out->substr(0, note.size()), note);
  EXPECT_EQ(out->size(), note.size() + OutputBatcher::kMaxBytes);
  EXPECT_EQ(out->substr(note.size(), 24 * 1024), std::string(24 * 1024, 'o'));
  EXPECT_EQ(out->back(), 'n');
  EXPECT_TRUE(b.empty());
}

TEST(OutputBatcher, DroppingNeverCutsACharacter) {
  OutputBatcher b;
  const std::string e_acute = "\xC3\xA9";
  std::string text;
  for (size_t i = 0; i < OutputBatcher::kMaxBytes / 2 + 1; ++i) text += e_acute;
  text += "y";  // 3 bytes too many: the cut would fall inside a character
  b.Append(text, 0);
  auto out = b.Take(0, true);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->substr(0, 42), "[gpuhub-agent: 4 bytes of output dropped]\n");
  std::string kept = out->substr(out->find('\n') + 1);
  EXPECT_EQ(kept.size(), OutputBatcher::kMaxBytes - 1);
  EXPECT_EQ(kept.substr(0, 2), e_acute);
  EXPECT_EQ(kept.back(), 'y');
}

TEST(OutputBatcher, ABatchNeverEndsInsideACharacter) {
  OutputBatcher b;
  b.Append("a\xE2\x82", 0);  // "a" and the start of a euro sign
  EXPECT_EQ(b.Take(200, false), "a");
  EXPECT_FALSE(b.Take(300, false));  // an incomplete character alone waits
  b.Append("\xAC!", 310);
  EXPECT_EQ(b.Take(500, false), "\xE2\x82\xAC!");
  b.Append("z\xF0\x9F", 600);
  EXPECT_EQ(b.Take(601, true), "z\xF0\x9F");  // the last batch takes everything
}

TEST(CompleteUtf8Prefix, Cases) {
  EXPECT_EQ(CompleteUtf8Prefix(""), 0u);
  EXPECT_EQ(CompleteUtf8Prefix("abc"), 3u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xC3"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xC3\xA9"), 4u);
  EXPECT_EQ(CompleteUtf8Prefix("\xE2\x82"), 0u);
  EXPECT_EQ(CompleteUtf8Prefix("\xF0\x9F\x98"), 0u);
  EXPECT_EQ(CompleteUtf8Prefix("\xF0\x9F\x98\x80"), 4u);
  EXPECT_EQ(CompleteUtf8Prefix("a\xFF"), 2u);                 // invalid bytes are not held back
  EXPECT_EQ(CompleteUtf8Prefix("\x80\x80\x80\x80\x80"), 5u);  // nor stray continuations
}

}  // namespace
}  // namespace gpuhub::agent::leases
