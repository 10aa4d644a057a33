#include "common/image_type.hpp"

#include <array>
#include <cstddef>

namespace gpuhub {
namespace {

constexpr std::string_view kPngSignature("\x89PNG\r\n\x1a\n", 8);
constexpr std::string_view kJpegSignature("\xff\xd8\xff", 3);

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (x != b[i]) return false;  // b is lower case
  }
  return true;
}

}  // namespace

std::optional<std::string_view> SniffImageType(std::string_view data) {
  if (data.starts_with(kPngSignature)) return "image/png";
  if (data.starts_with(kJpegSignature)) return "image/jpeg";
  if (data.starts_with("GIF87a") || data.starts_with("GIF89a")) return "image/gif";
  if (data.size() >= 12 && data.starts_with("RIFF") && data.substr(8, 4) == "WEBP") {
    return "image/webp";
  }
  return std::nullopt;
}

std::string_view ImageExtension(std::string_view mime) {
  struct Entry {
    std::string_view mime;
    std::string_view extension;
  };
  static constexpr std::array<Entry, 5> kEntries = {{
      {"image/png", "png"},
      {"image/jpeg", "jpg"},
      {"image/gif", "gif"},
      {"image/webp", "webp"},
      {"image/svg+xml", "svg"},
  }};
  for (const Entry& e : kEntries) {
    if (EqualsIgnoreCase(mime, e.mime)) return e.extension;
  }
  return {};
}

}  // namespace gpuhub
