#include "agent/runtime/docker_stream.hpp"

#include <algorithm>
#include <cstddef>
#include <string>

namespace gpuhub::agent::runtime {
namespace {

Error BadHeader(const std::array<unsigned char, 8>& h) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : h) {
    hex += kHex[c >> 4];
    hex += kHex[c & 0xf];
  }
  return InvalidArgument("container runtime sent a bad multiplexed stream frame header " + hex);
}

}  // namespace

Status MultiplexedStreamDemuxer::Feed(std::string_view bytes, const Output& out) {
  if (failed_) return BadHeader(header_);
  while (!bytes.empty()) {
    if (remaining_ == 0) {
      size_t take = std::min(header_.size() - header_size_, bytes.size());
      std::copy_n(bytes.begin(), take, header_.begin() + static_cast<std::ptrdiff_t>(header_size_));
      header_size_ += take;
      bytes.remove_prefix(take);
      if (header_size_ < header_.size()) break;
      header_size_ = 0;
      if (header_[0] > 2 || header_[1] != 0 || header_[2] != 0 || header_[3] != 0) {
        failed_ = true;
        return BadHeader(header_);
      }
      stream_ = header_[0];
      remaining_ = static_cast<uint32_t>(header_[4]) << 24 |
                   static_cast<uint32_t>(header_[5]) << 16 |
                   static_cast<uint32_t>(header_[6]) << 8 | static_cast<uint32_t>(header_[7]);
      continue;
    }
    size_t take = std::min<size_t>(remaining_, bytes.size());
    remaining_ -= static_cast<uint32_t>(take);
    out(stream_, bytes.substr(0, take));
    bytes.remove_prefix(take);
  }
  return Status::Ok();
}

}  // namespace gpuhub::agent::runtime
