#include "server/web/static_files.hpp"

#include <array>
#include <cctype>
#include <chrono>
#include <ctime>
#include <system_error>
#include <utility>

#include "common/file_util.hpp"
#include "server/http/router.hpp"

namespace gpuhub::web {
namespace {

// Larger files are not served (the UI's are a few KB).
constexpr size_t kMaxFileBytes = 64 << 20;

namespace fs = std::filesystem;
using http::bhttp::field;

constexpr std::array<std::pair<std::string_view, std::string_view>, 14> kTypes{{
    {".html", "text/html; charset=utf-8"},
    {".htm", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".jpg", "image/jpeg"},
    {".webp", "image/webp"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
    {".map", "application/json"},
}};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// RFC 7231 IMF-fixdate ("Tue, 24 Nov 2026 12:00:00 GMT").
std::string HttpDate(fs::file_time_type t) {
  auto sys = std::chrono::file_clock::to_sys(t);
  std::time_t tt = std::chrono::system_clock::to_time_t(
      std::chrono::time_point_cast<std::chrono::system_clock::duration>(sys));
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

// A strong validator from the file's size and modification time.
std::string ETagFor(uintmax_t size, fs::file_time_type t) {
  char buf[64];
  auto ticks = static_cast<unsigned long long>(t.time_since_epoch().count());
  int n =
      std::snprintf(buf, sizeof buf, "\"%llx-%llx\"", static_cast<unsigned long long>(size), ticks);
  return std::string(buf, static_cast<size_t>(n));
}

// True when an If-None-Match header value lists `etag` (or is "*").
bool NoneMatchHits(std::string_view header, std::string_view etag) {
  while (!header.empty()) {
    size_t comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.starts_with("W/")) item.remove_prefix(2);
    if (item == "*" || item == etag) return true;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

http::Response NotFound() { return http::MessageResponse(http::Status::not_found, "Not found"); }

}  // namespace

std::string_view ContentTypeFor(std::string_view filename) {
  size_t dot = filename.rfind('.');
  size_t slash = filename.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash)) {
    return "application/octet-stream";
  }
  std::string ext = Lower(filename.substr(dot));
  for (const auto& [e, type] : kTypes) {
    if (e == ext) return type;
  }
  return "application/octet-stream";
}

std::optional<fs::path> ResolvePath(const fs::path& root, std::string_view path) {
  auto decoded = http::PercentDecode(path);
  if (!decoded || decoded->empty() || decoded->front() != '/') return std::nullopt;
  if (decoded->find('\0') != std::string::npos || decoded->find('\\') != std::string::npos) {
    return std::nullopt;
  }
  fs::path out = root;
  std::string_view rest(*decoded);
  while (!rest.empty()) {
    size_t i = rest.find_first_not_of('/');
    if (i == std::string_view::npos) break;
    rest.remove_prefix(i);
    std::string_view segment = rest.substr(0, rest.find('/'));
    rest.remove_prefix(segment.size());
    if (segment.front() == '.') return std::nullopt;  // ".", "..", hidden files
    out /= std::string(segment);
  }
  if (decoded->back() == '/') out /= "index.html";
  return out;
}

StaticFiles::StaticFiles(fs::path root) : root_(std::move(root)) {}

http::Response StaticFiles::Serve(const http::Request& request) const {
  using http::bhttp::verb;
  if (request.method() != verb::get && request.method() != verb::head) {
    http::Response res =
        http::MessageResponse(http::Status::method_not_allowed, "Method not allowed");
    res.set(field::allow, "GET, HEAD");
    return res;
  }
  auto file = ResolvePath(root_, http::SplitTarget(http::Sv(request.target())).first);
  if (!file) return NotFound();
  std::error_code ec;
  // A symbolic link may point anywhere: the real file must still be under the root.
  fs::path real = fs::canonical(*file, ec);
  if (ec) return NotFound();
  fs::path real_root = fs::canonical(root_, ec);
  if (ec) return NotFound();
  auto [root_end, real_it] =
      std::mismatch(real_root.begin(), real_root.end(), real.begin(), real.end());
  if (root_end != real_root.end() || !fs::is_regular_file(real, ec)) return NotFound();

  uintmax_t size = fs::file_size(real, ec);
  if (ec) return NotFound();
  fs::file_time_type mtime = fs::last_write_time(real, ec);
  if (ec) return NotFound();
  std::string etag = ETagFor(size, mtime);

  http::Response res{http::Status::ok, 11};
  res.set(field::cache_control, "no-cache");
  res.set(field::etag, etag);
  res.set(field::last_modified, HttpDate(mtime));
  res.set("X-Content-Type-Options", "nosniff");
  if (NoneMatchHits(http::Sv(request[field::if_none_match]), etag)) {
    res.result(http::Status::not_modified);
    return res;
  }
  res.set(field::content_type, std::string(ContentTypeFor(real.filename().string())));
  auto body = ReadFile(real.string(), kMaxFileBytes);
  if (!body.ok()) return NotFound();
  res.body() = std::move(body).value();
  return res;
}

}  // namespace gpuhub::web
