// Url: the parts of an http://, https://, ws:// or wss:// URL that gpuhub's
// clients (the agent's link, the gpuhub CLI) need to connect.
//
// Pure functions on plain values; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace gpuhub::client {

struct Url {
  std::string scheme;  // "http", "https", "ws" or "wss"
  bool tls = false;    // https or wss
  std::string host;    // without the brackets of an IPv6 literal
  std::string port;    // the URL's, else 443 with TLS, 80 without
  std::string path;    // the URL's path, or `default_path` when it has none (or "/")
};

// Parses "SCHEME://HOST[:PORT][/PATH]" for one of `schemes` (lowercase, e.g.
// {"ws", "wss"}). Errors are InvalidArgument with a message naming the problem.
Result<Url> ParseUrl(std::string_view url, const std::vector<std::string_view>& schemes,
                     std::string_view default_path);

// "host:port" (brackets around an IPv6 literal), for Host headers and messages.
std::string HostPort(const Url& url);

}  // namespace gpuhub::client
