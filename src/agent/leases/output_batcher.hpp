// OutputBatcher: one lease's command output on its way to the server, cut
// into task_output messages so that a chatty command cannot flood the link.
//
// A batch is due once it holds 16 KiB or its oldest byte waited 200 ms, but
// never sooner than 100 ms after the previous batch; the last batch (the
// command ended) is due at once. At most 64 KiB wait: when more arrives the
// oldest bytes are dropped and the next batch starts with a line saying how
// many ("[gpuhub-agent: 1234 bytes of output dropped]"). The server keeps only
// the last 64 KiB anyway. A batch never ends inside a UTF-8 sequence (the rest
// waits for its next bytes), except the last one.
//
// Plain data driven by the caller's clock (milliseconds): not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace gpuhub::agent::leases {

class OutputBatcher {
 public:
  static constexpr size_t kBatchBytes = 16 * 1024;
  static constexpr size_t kMaxBytes = 64 * 1024;
  static constexpr int64_t kMaxWaitMs = 200;
  static constexpr int64_t kMinGapMs = 100;

  void Append(std::string_view bytes, int64_t now_ms);
  // The data of the batch due at `now_ms` (`last`: everything held), or
  // nullopt when none is due.
  std::optional<std::string> Take(int64_t now_ms, bool last);
  bool empty() const { return held_.empty() && dropped_ == 0; }
  size_t held() const { return held_.size(); }

 private:
  std::string held_;
  int64_t oldest_ms_ = 0;
  int64_t sent_ms_ = std::numeric_limits<int64_t>::min() / 2;
  uint64_t dropped_ = 0;
};

// The length of the longest prefix of `bytes` that does not end inside an
// incomplete UTF-8 sequence. Pure.
size_t CompleteUtf8Prefix(std::string_view bytes);

}  // namespace gpuhub::agent::leases
