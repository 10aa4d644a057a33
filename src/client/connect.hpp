// Connecting to a gpuhub server: TCP (with a deadline), optional TLS that
// verifies the server's certificate and host name against the system's CA
// store, and the WebSocket handshake. Shared by gpuhub-agent's link and the
// gpuhub CLI.
//
// Coroutines on the caller's executor; one stream per coroutine (Beast's
// rules: no concurrent operations of one kind on a stream).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <chrono>
#include <string>

#include "client/url.hpp"

namespace gpuhub::client {

using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

// Resolves url.host:url.port and connects `stream` within `timeout`.
// The stream's deadline is left at `timeout` from the start; callers reset it.
boost::asio::awaitable<boost::beast::error_code> AsyncConnect(boost::beast::tcp_stream& stream,
                                                              const Url& url,
                                                              std::chrono::milliseconds timeout);

// The process's client TLS context (system CA store, peer verification on),
// made on first use and shared by every connection. Thread-safe.
boost::asio::ssl::context& ClientTlsContext();

// Sets SNI and host-name verification for `host`, then runs the client TLS
// handshake under the lowest layer's current deadline.
boost::asio::awaitable<boost::beast::error_code> AsyncTlsHandshake(TlsStream& stream,
                                                                   const std::string& host);

}  // namespace gpuhub::client
