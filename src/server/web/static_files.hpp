// StaticFiles: serves the files under one directory (the web UI) at "/".
//
// GET and HEAD only. A path resolves to a regular file under the root, never
// outside it: ".." and "." segments, hidden names (".git"), NUL bytes,
// backslashes and symbolic links that lead out of the root are 404. "/"
// and a directory path ending in "/" serve that directory's index.html;
// directories are never listed. Every file is sent with the Content-Type of
// its extension, `Cache-Control: no-cache`, an ETag and Last-Modified, so a
// browser revalidates each load (a deploy shows at once) and gets 304 when
// its If-None-Match still matches. Missing files are 404 with the API's JSON
// error. Reads the file system on each call; thread-safe (no mutable state).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "server/http/message.hpp"

namespace gpuhub::web {

// The Content-Type for a file name, from its extension (case-insensitive);
// application/octet-stream for an unknown one.
std::string_view ContentTypeFor(std::string_view filename);

// The file that URL path `path` (without the query, still percent-encoded)
// names under `root`, or nullopt when it is invalid or would leave `root`.
// Does not check that the file exists.
std::optional<std::filesystem::path> ResolvePath(const std::filesystem::path& root,
                                                 std::string_view path);

class StaticFiles {
 public:
  explicit StaticFiles(std::filesystem::path root);

  // The answer to `request` (GET or HEAD; other methods get 405 with Allow).
  // HEAD gets the GET answer's headers; the server sends no body for HEAD.
  http::Response Serve(const http::Request& request) const;

  const std::filesystem::path& root() const { return root_; }

 private:
  std::filesystem::path root_;
};

}  // namespace gpuhub::web
