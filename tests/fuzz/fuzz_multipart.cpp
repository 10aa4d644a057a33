// libFuzzer target for the multipart/form-data parser (server/http/multipart).
//
// Input layout: byte 0 selects the mode.
//   bit 7 clear: the boundary is the fixed kBoundary and the body is bytes 1..;
//                bit 0 set selects small limits, to reach the limit checks.
//   bit 7 set:   the boundary is the next (byte0 & 0x3f) + 1 bytes, raw when
//                bit 6 is set (mostly invalid: exercises validation), otherwise
//                mapped onto valid boundary characters; the body follows.
// The whole input is also given to MultipartBoundary as a Content-Type.
//
// Oracles besides the sanitizers: limits hold, errors are InvalidArgument,
// and a parsed form written back out parses to the same parts.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "server/http/multipart.hpp"

namespace {

using gpuhub::http::MultipartPart;

constexpr std::string_view kBoundary = "----fuzzBoundary7MA4YWxk";
constexpr std::string_view kBoundaryChars =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ";

void Check(bool condition) {
  if (!condition) std::abort();
}

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string Serialize(const std::vector<MultipartPart>& parts, std::string_view boundary) {
  std::string out;
  for (const MultipartPart& p : parts) {
    out += "--";
    out += boundary;
    out += "\r\nContent-Disposition: form-data; name=" + Quote(p.name);
    if (p.filename) out += "; filename=" + Quote(*p.filename);
    out += "\r\nContent-Type: " + p.content_type + "\r\n\r\n" + p.data + "\r\n";
  }
  out += "--";
  out += boundary;
  out += "--\r\n";
  return out;
}

bool SameParts(const std::vector<MultipartPart>& a, const std::vector<MultipartPart>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].filename != b[i].filename ||
        a[i].content_type != b[i].content_type || a[i].data != b[i].data) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  auto header_boundary = gpuhub::http::MultipartBoundary(input);
  if (header_boundary.ok()) {
    Check(!header_boundary->empty() && header_boundary->size() <= 70);
  } else {
    Check(header_boundary.error().code == gpuhub::ErrorCode::kUnsupported ||
          header_boundary.error().code == gpuhub::ErrorCode::kInvalidArgument);
  }

  if (input.empty()) return 0;
  const auto mode = static_cast<unsigned char>(input[0]);
  std::string boundary;
  std::string_view body = input.substr(1);
  gpuhub::http::MultipartLimits limits;
  if ((mode & 0x80) == 0) {
    boundary = kBoundary;
    if ((mode & 0x01) != 0) {
      limits.max_parts = 3;
      limits.max_header_bytes = 64;
    }
  } else {
    const size_t n = std::min<size_t>((mode & 0x3f) + 1, body.size());
    boundary = body.substr(0, n);
    body = body.substr(n);
    if ((mode & 0x40) == 0 && !boundary.empty()) {
      for (char& c : boundary) {
        c = kBoundaryChars[static_cast<unsigned char>(c) % kBoundaryChars.size()];
      }
      if (boundary.back() == ' ') boundary.back() = '_';
    }
  }

  auto parts = gpuhub::http::ParseMultipart(body, boundary, limits);
  if (!parts.ok()) {
    Check(parts.error().code == gpuhub::ErrorCode::kInvalidArgument);
    Check(!parts.error().message.empty());
    return 0;
  }
  Check(parts->size() <= limits.max_parts);
  size_t total = 0;
  for (const MultipartPart& p : *parts) {
    Check(!p.content_type.empty());
    total += p.data.size();
  }
  Check(total <= body.size());

  gpuhub::http::MultipartLimits loose;
  loose.max_parts = parts->size();
  loose.max_header_bytes = static_cast<size_t>(-1);
  auto again = gpuhub::http::ParseMultipart(Serialize(*parts, boundary), boundary, loose);
  Check(again.ok() && SameParts(*parts, *again));
  return 0;
}
