#include "client/connect.hpp"

#include <openssl/ssl.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>

namespace gpuhub::client {
namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

namespace {
auto Redirect(beast::error_code& ec) { return net::redirect_error(net::use_awaitable, ec); }
}  // namespace

net::awaitable<beast::error_code> AsyncConnect(beast::tcp_stream& stream, const Url& url,
                                               std::chrono::milliseconds timeout) {
  tcp::resolver resolver(stream.get_executor());
  beast::error_code ec;
  auto endpoints = co_await resolver.async_resolve(url.host, url.port, Redirect(ec));
  if (ec) co_return ec;
  stream.expires_after(timeout);
  co_await stream.async_connect(endpoints, Redirect(ec));
  co_return ec;
}

net::ssl::context& ClientTlsContext() {
  static net::ssl::context tls = [] {
    net::ssl::context ctx(net::ssl::context::tls_client);
    ctx.set_default_verify_paths();
    ctx.set_verify_mode(net::ssl::verify_peer);
    return ctx;
  }();
  return tls;
}

net::awaitable<beast::error_code> AsyncTlsHandshake(TlsStream& stream, const std::string& host) {
  // SNI (SSL_set_tlsext_host_name is a macro with a C cast).
  SSL_ctrl(stream.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
           const_cast<char*>(host.c_str()));
  stream.set_verify_callback(net::ssl::host_name_verification(host));
  beast::error_code ec;
  co_await stream.async_handshake(net::ssl::stream_base::client, Redirect(ec));
  co_return ec;
}

}  // namespace gpuhub::client
