#include "client/gunzip.hpp"

#include <zlib.h>

#include <array>
#include <memory>

namespace gpuhub::client {

Result<std::string> Gunzip(std::string_view data, size_t limit) {
  z_stream z{};
  // 16 + MAX_WBITS: a gzip wrapper, not zlib's.
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return Internal("cannot start gzip decoding");
  std::unique_ptr<z_stream, decltype(&inflateEnd)> end(&z, &inflateEnd);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  std::string out;
  std::array<char, 64 * 1024> chunk;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    z.next_out = reinterpret_cast<Bytef*>(chunk.data());
    z.avail_out = static_cast<uInt>(chunk.size());
    rc = inflate(&z, Z_NO_FLUSH);
    // No progress with all input used: the stream ends before its end.
    if (rc == Z_BUF_ERROR && z.avail_in == 0) {
      return Internal("the server's gzip body is cut short");
    }
    if (rc != Z_OK && rc != Z_STREAM_END) return Internal("the server sent a bad gzip body");
    out.append(chunk.data(), chunk.size() - z.avail_out);
    if (out.size() > limit) return Internal("the server's gzip body is too large");
    if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
      return Internal("the server's gzip body is cut short");
    }
  }
  return out;
}

}  // namespace gpuhub::client
