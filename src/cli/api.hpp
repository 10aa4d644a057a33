// Api: the gpuhub CLI's calls to gpuhubd over HTTP/JSON (spec/api.md), and
// how their failures map to the CLI's exit codes.
//
// Error codes in the CLI: kUnavailable: the server could not be reached
// (exit 3); kInvalidArgument: a usage error found before asking the server
// (exit 2); anything else: the server refused, with its message (exit 1);
// kUnauthenticated for a refused token. Not thread-safe (one per command).
#pragma once

#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "client/url.hpp"
#include "common/result.hpp"

namespace gpuhub::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;

int ExitCodeFor(const Error& error);

// Parses a server URL as the CLI accepts it: http:// or https://; a bare
// "host:port" means http://.
Result<client::Url> ParseServer(std::string_view text);

class Api {
 public:
  Api(client::Url server, std::string token)
      : server_(std::move(server)), token_(std::move(token)) {}

  const client::Url& server() const { return server_; }
  const std::string& token() const { return token_; }

  // The JSON answer of a 2xx response (null for an empty body), else an
  // error with the server's message; "Token expired" and the other token
  // errors get a hint to log in again.
  Result<nlohmann::json> Call(boost::beast::http::verb method, const std::string& target,
                              const nlohmann::json& body = nullptr) const;
  Result<nlohmann::json> Get(const std::string& target) const {
    return Call(boost::beast::http::verb::get, target);
  }
  Result<nlohmann::json> Post(const std::string& target,
                              const nlohmann::json& body = nullptr) const {
    return Call(boost::beast::http::verb::post, target, body);
  }
  Result<nlohmann::json> Delete(const std::string& target) const {
    return Call(boost::beast::http::verb::delete_, target);
  }
  // A text answer (the task log).
  Result<std::string> GetText(const std::string& target) const;

 private:
  client::Url server_;
  std::string token_;
};

}  // namespace gpuhub::cli
