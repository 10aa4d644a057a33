#include "agent/leases/output_batcher.hpp"

namespace gpuhub::agent::leases {
namespace {

bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// The length of the sequence a lead byte starts; 1 for ASCII and invalid bytes.
size_t SequenceLength(unsigned char c) {
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 1;
}

std::string DroppedNote(uint64_t n) {
  return "[gpuhub-agent: " + std::to_string(n) + " bytes of output dropped]\n";
}

}  // namespace

size_t CompleteUtf8Prefix(std::string_view bytes) {
  // Look back at most 3 bytes for the lead byte of the last sequence.
  size_t n = bytes.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    auto c = static_cast<unsigned char>(bytes[n - back]);
    if (IsContinuation(c)) continue;
    size_t need = SequenceLength(c);
    return need > back ? n - back : n;
  }
  return n;
}

void OutputBatcher::Append(std::string_view bytes, int64_t now_ms) {
  if (bytes.empty()) return;
  if (held_.empty()) oldest_ms_ = now_ms;
  held_.append(bytes);
  if (held_.size() <= kMaxBytes) return;
  size_t drop = held_.size() - kMaxBytes;
  while (drop < held_.size() && IsContinuation(static_cast<unsigned char>(held_[drop]))) ++drop;
  held_.erase(0, drop);
  dropped_ += drop;
}

std::optional<std::string> OutputBatcher::Take(int64_t now_ms, bool last) {
  if (empty()) return std::nullopt;
  if (!last) {
    bool due = held_.size() >= kBatchBytes || now_ms - oldest_ms_ >= kMaxWaitMs;
    if (!due || now_ms - sent_ms_ < kMinGapMs) return std::nullopt;
  }
  size_t n = last ? held_.size() : CompleteUtf8Prefix(held_);
  if (n == 0 && dropped_ == 0) return std::nullopt;
  std::string out;
  if (dropped_ > 0) out = DroppedNote(dropped_);
  dropped_ = 0;
  out.append(held_, 0, n);
  held_.erase(0, n);
  sent_ms_ = now_ms;
  oldest_ms_ = now_ms;
  return out;
}

}  // namespace gpuhub::agent::leases
