#include "client/url.hpp"

#include <algorithm>
#include <charconv>

namespace gpuhub::client {

Result<Url> ParseUrl(std::string_view url, const std::vector<std::string_view>& schemes,
                     std::string_view default_path) {
  Url u;
  size_t sep = url.find("://");
  std::string_view scheme = sep == std::string_view::npos ? "" : url.substr(0, sep);
  if (std::find(schemes.begin(), schemes.end(), scheme) == schemes.end()) {
    std::string names;
    for (auto s : schemes) names += (names.empty() ? "" : " or ") + std::string(s) + "://";
    return InvalidArgument("server URL must start with " + names + ", got \"" + std::string(url) +
                           "\"");
  }
  u.scheme = std::string(scheme);
  u.tls = scheme == "https" || scheme == "wss";
  url.remove_prefix(sep + 3);
  size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  u.path = slash == std::string_view::npos ? "" : std::string(url.substr(slash));
  if (u.path.empty() || u.path == "/") u.path = std::string(default_path);
  std::string_view port;
  if (authority.starts_with('[')) {  // [v6]:port
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return InvalidArgument("server URL: unclosed [ in host");
    u.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return InvalidArgument("server URL: bad port");
      port = authority.substr(close + 2);
    }
  } else {
    size_t colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return InvalidArgument("server URL has an empty port");
    }
  }
  if (u.host.empty()) return InvalidArgument("server URL has no host");
  unsigned value = 0;
  if (!port.empty()) {
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      return InvalidArgument("server URL has a bad port \"" + std::string(port) + "\"");
    }
  }
  u.port = port.empty() ? (u.tls ? "443" : "80") : std::string(port);
  return u;
}

std::string HostPort(const Url& url) {
  bool v6 = url.host.find(':') != std::string::npos;
  return (v6 ? "[" + url.host + "]" : url.host) + ":" + url.port;
}

}  // namespace gpuhub::client
