#include "client/http.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <optional>

#include "client/connect.hpp"
#include "client/gunzip.hpp"

namespace gpuhub::client {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace websocket = beast::websocket;

namespace {

constexpr size_t kMaxBody = 64 * 1024 * 1024;

auto Redirect(beast::error_code& ec) { return net::redirect_error(net::use_awaitable, ec); }

Error Unreachable(const Url& server, std::string_view what, const beast::error_code& ec) {
  return {ErrorCode::kUnavailable,
          "cannot reach " + HostPort(server) + ": " + std::string(what) + ": " + ec.message()};
}

template <class Stream>
net::awaitable<Result<HttpResponse>> Exchange(Stream& stream, const Url& server,
                                              const HttpRequest& request) {
  bhttp::request<bhttp::string_body> req{request.method, JoinPath(server, request.target), 11};
  req.set(bhttp::field::host, HostPort(server));
  req.set(bhttp::field::user_agent, "gpuhub-cli");
  req.set(bhttp::field::connection, "close");
  req.set(bhttp::field::accept_encoding, "gzip");  // machines/info: a tenth of the bytes
  if (!request.token.empty()) req.set(bhttp::field::authorization, "Bearer " + request.token);
  if (!request.body.empty()) req.set(bhttp::field::content_type, "application/json");
  req.body() = request.body;
  req.prepare_payload();
  beast::error_code ec;
  co_await bhttp::async_write(stream, req, Redirect(ec));
  if (ec) co_return Unreachable(server, "sending the request", ec);
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(kMaxBody);
  co_await bhttp::async_read(stream, buffer, parser, Redirect(ec));
  if (ec) co_return Unreachable(server, "reading the response", ec);
  auto& res = parser.get();
  if (beast::iequals(res[bhttp::field::content_encoding], "gzip")) {
    auto body = Gunzip(res.body(), kMaxBody);
    if (!body.ok()) co_return body.error();
    res.body() = std::move(body).value();
  }
  co_return HttpResponse{res.result_int(), std::move(res.body())};
}

}  // namespace

std::string JoinPath(const Url& server, std::string_view target) {
  std::string base = server.path;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + std::string(target);
}

net::awaitable<Result<HttpResponse>> AsyncFetch(const Url& server, HttpRequest request,
                                                std::chrono::milliseconds timeout) {
  auto executor = co_await net::this_coro::executor;
  beast::tcp_stream tcp(executor);
  auto ec = co_await AsyncConnect(tcp, server, timeout);
  if (ec) co_return Unreachable(server, "connect", ec);
  if (!server.tls) co_return co_await Exchange(tcp, server, request);
  TlsStream tls(std::move(tcp), ClientTlsContext());
  ec = co_await AsyncTlsHandshake(tls, server.host);
  if (ec) co_return Unreachable(server, "TLS handshake", ec);
  co_return co_await Exchange(tls, server, request);
}

Result<HttpResponse> Fetch(const Url& server, HttpRequest request,
                           std::chrono::milliseconds timeout) {
  net::io_context ioc;
  std::optional<Result<HttpResponse>> out;
  net::co_spawn(
      ioc,
      [&]() -> net::awaitable<void> {
        out.emplace(co_await AsyncFetch(server, std::move(request), timeout));
      },
      net::detached);
  ioc.run();
  return out ? std::move(*out) : Internal("the request ended without an answer");
}

struct WebSocket::Impl {
  explicit Impl(net::any_io_executor ex) : executor(std::move(ex)) {}
  net::any_io_executor executor;
  std::optional<websocket::stream<beast::tcp_stream>> plain;
  std::optional<websocket::stream<TlsStream>> tls;
  beast::flat_buffer buffer;

  template <class F>
  auto With(F&& f) {
    return plain ? f(*plain) : f(*tls);
  }
};

WebSocket::WebSocket(net::any_io_executor executor)
    : impl_(std::make_unique<Impl>(std::move(executor))) {}
WebSocket::~WebSocket() = default;

net::awaitable<Status> WebSocket::Connect(const Url& server, std::string_view target,
                                          std::chrono::milliseconds timeout) {
  beast::tcp_stream tcp(impl_->executor);
  auto ec = co_await AsyncConnect(tcp, server, timeout);
  if (ec) co_return Unreachable(server, "connect", ec);
  if (server.tls) {
    impl_->tls.emplace(std::move(tcp), ClientTlsContext());
    ec = co_await AsyncTlsHandshake(impl_->tls->next_layer(), server.host);
    if (ec) co_return Unreachable(server, "TLS handshake", ec);
  } else {
    impl_->plain.emplace(std::move(tcp));
  }
  const std::string path = JoinPath(server, target);
  ec = co_await impl_->With([&](auto& ws) -> net::awaitable<beast::error_code> {
    beast::error_code e;
    co_await ws.async_handshake(HostPort(server), path, Redirect(e));
    if (!e) {
      beast::get_lowest_layer(ws).expires_never();
      ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
    }
    co_return e;
  });
  if (ec) co_return Unreachable(server, "WebSocket handshake", ec);
  co_return Status::Ok();
}

net::awaitable<Result<std::string>> WebSocket::Read() {
  beast::error_code ec;
  impl_->buffer.clear();
  co_await impl_->With([&](auto& ws) { return ws.async_read(impl_->buffer, Redirect(ec)); });
  if (ec) co_return Error{ErrorCode::kUnavailable, "WebSocket read: " + ec.message()};
  co_return beast::buffers_to_string(impl_->buffer.data());
}

net::awaitable<Status> WebSocket::Write(std::string text) {
  beast::error_code ec;
  co_await impl_->With([&](auto& ws) { return ws.async_write(net::buffer(text), Redirect(ec)); });
  if (ec) co_return Error{ErrorCode::kUnavailable, "WebSocket write: " + ec.message()};
  co_return Status::Ok();
}

void WebSocket::Close() {
  beast::error_code ec;
  if (impl_->plain) beast::get_lowest_layer(*impl_->plain).socket().close(ec);
  if (impl_->tls) beast::get_lowest_layer(*impl_->tls).socket().close(ec);
}

}  // namespace gpuhub::client
