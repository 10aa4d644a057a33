// HTTP requests and a WebSocket client for programs that talk to gpuhubd
// (the gpuhub CLI): Beast over TCP or TLS (client/connect.hpp).
//
// Every failure to reach the server (resolve, connect, TLS, a timeout, a
// broken connection) is an Error with ErrorCode::kUnavailable; an HTTP answer,
// whatever its status, is a value. A WebSocket is used by one coroutine at a
// time (one read and one write may be in flight together), on one thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "client/url.hpp"
#include "common/result.hpp"

namespace gpuhub::client {

struct HttpRequest {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string target;  // "/api/...", appended to the server URL's path
  std::string body;    // sent with Content-Type application/json when not empty
  std::string token;   // sent as "Authorization: Bearer <token>" when not empty
};

struct HttpResponse {
  unsigned status = 0;
  std::string body;
};

// One request on a fresh connection, within `timeout` in all.
boost::asio::awaitable<Result<HttpResponse>> AsyncFetch(const Url& server, HttpRequest request,
                                                        std::chrono::milliseconds timeout);

// AsyncFetch run to completion on a private io_context (blocks the caller).
Result<HttpResponse> Fetch(const Url& server, HttpRequest request,
                           std::chrono::milliseconds timeout);

// The server URL's path joined with an absolute `target` ("/base" + "/api/x").
std::string JoinPath(const Url& server, std::string_view target);

class WebSocket {
 public:
  explicit WebSocket(boost::asio::any_io_executor executor);
  ~WebSocket();
  WebSocket(const WebSocket&) = delete;
  WebSocket& operator=(const WebSocket&) = delete;

  // Connects to the server URL's path joined with `target`, within `timeout`.
  boost::asio::awaitable<Status> Connect(const Url& server, std::string_view target,
                                         std::chrono::milliseconds timeout);
  // The next text message.
  boost::asio::awaitable<Result<std::string>> Read();
  boost::asio::awaitable<Status> Write(std::string text);
  // Closes the socket at once; a pending Read ends with an error.
  void Close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gpuhub::client
