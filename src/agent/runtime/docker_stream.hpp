// MultiplexedStreamDemuxer: splits the Docker Engine's multiplexed exec/attach stream.
//
// With Tty false the engine sends frames of an 8-byte header (stream id: 0 stdin, 1 stdout,
// 2 stderr; three zero bytes; big-endian uint32 payload length) and the payload. Bytes may be fed
// split at any position. Payloads are passed on as they arrive, so one frame split across reads
// reaches `out` in pieces (never mixed with another stream's bytes) and no frame is buffered
// whole; empty payloads produce no call. Not thread-safe: one stream, one owner.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string_view>

#include "common/result.hpp"

namespace gpuhub::agent::runtime {

class MultiplexedStreamDemuxer {
 public:
  using Output = std::function<void(int stream, std::string_view data)>;

  // Passes the payload bytes in `bytes` to `out`. A bad header (a stream id other than 0, 1, 2 or
  // non-zero padding, as raw TTY output would give) is an InvalidArgument error, and every later
  // Feed returns it again.
  Status Feed(std::string_view bytes, const Output& out);

  // True when no partial header or payload is pending (the stream may end here).
  bool Clean() const { return header_size_ == 0 && remaining_ == 0 && !failed_; }

 private:
  std::array<unsigned char, 8> header_{};
  size_t header_size_ = 0;  // header bytes collected so far
  uint32_t remaining_ = 0;  // payload bytes of the current frame still to come
  int stream_ = 0;
  bool failed_ = false;
};

}  // namespace gpuhub::agent::runtime
