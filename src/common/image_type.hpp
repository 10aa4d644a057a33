// Image type recognition for uploaded pictures (user photos).
//
// SniffImageType looks only at the leading magic bytes, never at a file name
// or a declared Content-Type. Pure functions: thread-safe, no I/O.
#pragma once

#include <optional>
#include <string_view>

namespace gpuhub {

// "image/png", "image/jpeg", "image/gif" or "image/webp" when `data` starts
// with that format's signature (PNG: the 8-byte signature; JPEG: FF D8 FF;
// GIF: "GIF87a" or "GIF89a"; WebP: "RIFF", a 4-byte size, "WEBP"); else
// nullopt. The returned view points at a static string.
std::optional<std::string_view> SniffImageType(std::string_view data);

// The file extension, without a dot, for an image MIME type: "png", "jpg",
// "gif", "webp", "svg" (image/svg+xml). Compared case-insensitively; an empty
// view for any other type.
std::string_view ImageExtension(std::string_view mime);

}  // namespace gpuhub
