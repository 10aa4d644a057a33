#include "server/http/server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <limits>

namespace gpuhub::http {
namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

namespace {

auto Redirect(beast::error_code& ec) { return net::redirect_error(net::use_awaitable, ec); }

bool IsMalformed(const beast::error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category() &&
         ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
}

// The size of a request's header block as sent (field folding aside).
size_t HeaderBlockSize(const Request::header_type& h) {
  size_t n = h.method_string().size() + h.target().size() + sizeof(" HTTP/1.1\r\n") + 2;
  for (const auto& f : h) n += f.name_string().size() + f.value().size() + 4;
  return n;
}

void Count(ServerStats& stats, Status status) {
  unsigned code = static_cast<unsigned>(status);
  if (code >= 500) {
    ++stats.responses_5xx;
  } else if (code >= 400) {
    ++stats.responses_4xx;
  } else {
    ++stats.responses_2xx;
  }
}

}  // namespace

class HttpServer::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<Shared> shared, tcp::socket socket)
      : shared_(std::move(shared)), stream_(std::move(socket)) {
    ++shared_->stats.connections_total;
    ++shared_->stats.connections_open;
  }
  ~Connection() { --shared_->stats.connections_open; }

  net::any_io_executor Executor() { return stream_.get_executor(); }

  // Ends the connection after the request in flight, or now if idle.
  void Stop() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      self->stop_requested_ = true;
      if (!self->busy_) self->stream_.cancel();
    });
  }

  net::awaitable<void> Run() {
    beast::flat_buffer buffer;
    beast::error_code ec;
    const ServerLimits& lim = shared_->limits;
    while (!stop_requested_) {
      if (buffer.size() == 0) {  // idle: wait for the next request's first bytes
        stream_.expires_after(lim.idle_timeout);
        size_t n = co_await stream_.async_read_some(buffer.prepare(8192), Redirect(ec));
        if (ec) break;
        buffer.commit(n);
      }
      busy_ = true;
      stream_.expires_after(lim.read_timeout);
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<uint32_t>(lim.header_bytes));
      // The route's limit applies once the target is known. (Not boost::none:
      // Beast 1.74 then refuses every body.)
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      // Usually the idle read brought the whole request: parse it in place
      // rather than through async reads that would only complete at once.
      if (!ParseBuffered(parser, buffer, ec, /*header_only=*/true)) {
        co_await bhttp::async_read_header(stream_, buffer, parser, Redirect(ec));
      }
      // Beast checks header_limit per read, so a header block can outgrow it
      // by what one read brought in; measure the block itself as well.
      if (ec == bhttp::error::header_limit ||
          (!ec && HeaderBlockSize(parser.get()) > lim.header_bytes)) {
        co_await SendEarlyError(Status::request_header_fields_too_large,
                                "Request header fields too large");
        break;
      }
      if (ec) {
        if (IsMalformed(ec)) co_await SendEarlyError(Status::bad_request, "Malformed HTTP request");
        break;
      }
      Router::Match match = shared_->router.Find(Sv(parser.get().target()));
      size_t limit = match.BodyLimit(lim.body_bytes);
      if (parser.content_length() && *parser.content_length() > limit) {
        co_await SendEarlyError(Status::payload_too_large, "Payload too large");
        break;
      }
      parser.body_limit(limit);
      if (!parser.is_done()) {
        if (beast::iequals(parser.get()[bhttp::field::expect], "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          co_await net::async_write(stream_, net::buffer(kContinue), Redirect(ec));
          if (ec) break;
        }
        if (!ParseBuffered(parser, buffer, ec, /*header_only=*/false)) {
          co_await bhttp::async_read(stream_, buffer, parser, Redirect(ec));
        }
      }
      if (ec == bhttp::error::body_limit) {
        co_await SendEarlyError(Status::payload_too_large, "Payload too large");
        break;
      }
      if (ec) {
        if (IsMalformed(ec)) co_await SendEarlyError(Status::bad_request, "Malformed HTTP request");
        break;
      }
      Request request = parser.release();
      ++shared_->stats.requests_total;
      if (shared_->upgrader && boost::beast::websocket::is_upgrade(request) &&
          shared_->upgrader->Accepts(SplitTarget(Sv(request.target())).first)) {
        stream_.expires_never();
        stream_.socket().non_blocking(false, ec);
        shared_->upgrader->Upgrade(std::move(stream_), std::move(request));
        co_return;
      }
      Response response = co_await shared_->router.Dispatch(request, std::move(match));
      bool keep_alive = request.keep_alive() && !stop_requested_;
      bool head = request.method() == bhttp::verb::head;
      if (!co_await Write(std::move(response), request.version(), keep_alive, head) ||
          !keep_alive) {
        break;
      }
      busy_ = false;
    }
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
  }

 private:
  // `head`: the answer to HEAD, the GET answer's headers (Content-Length
  // included) without the body.
  net::awaitable<bool> Write(Response response, unsigned version, bool keep_alive,
                             bool head = false) {
    Count(shared_->stats, response.result());
    response.version(version);
    response.keep_alive(keep_alive);
    response.prepare_payload();
    if (head) {
      auto length = response.body().view().size();
      response.body() = std::string();
      if (response.result() != Status::not_modified) response.content_length(length);
    }
    // Write what the socket takes at once (usually all of it) without a
    // round through the reactor; wait for the rest. The socket is in
    // non-blocking mode, so the synchronous write never blocks.
    bhttp::serializer<false, ResponseBody> sr{response};
    beast::error_code ec;
    while (!sr.is_done()) {
      bhttp::write_some(stream_.socket(), sr, ec);
      if (ec) break;
    }
    if (!ec) co_return true;
    if (ec != net::error::would_block && ec != net::error::try_again) co_return false;
    ec = {};
    stream_.expires_after(shared_->limits.write_timeout);
    co_await bhttp::async_write(stream_, sr, Redirect(ec));
    co_return !ec;
  }

  // Feeds what `buffer` holds to the parser: up to the end of the header
  // (`header_only`), or of the message. True when that end was reached or an
  // error found (in `ec`); false when more bytes must be read.
  static bool ParseBuffered(bhttp::request_parser<bhttp::string_body>& parser,
                            beast::flat_buffer& buffer, beast::error_code& ec, bool header_only) {
    auto reached = [&] { return header_only ? parser.is_header_done() : parser.is_done(); };
    while (buffer.size() > 0 && !reached()) {
      size_t n = parser.put(buffer.data(), ec);
      buffer.consume(n);
      if (ec == bhttp::error::need_more) {
        ec = {};
        return false;
      }
      if (ec) return true;
      if (n == 0) break;
    }
    return reached();
  }

  // Answers a request that was not read to its end, then reads and discards a
  // bounded amount so that closing does not reset the connection before the
  // client has read the answer.
  net::awaitable<void> SendEarlyError(Status status, std::string_view message) {
    if (!co_await Write(MessageResponse(status, message), 11, false)) co_return;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(2));
    size_t drained = 0;
    char scratch[16384];
    while (!ec && drained < shared_->limits.drain_bytes) {
      drained += co_await stream_.async_read_some(net::buffer(scratch), Redirect(ec));
    }
  }

  std::shared_ptr<Shared> shared_;
  beast::tcp_stream stream_;
  bool busy_ = false;            // a request is being read, handled or answered
  bool stop_requested_ = false;  // both only touched on the strand
};

HttpServer::HttpServer(net::io_context& ioc, const Router& router, ServerLimits limits,
                       Upgrader* upgrader)
    : ioc_(ioc), acceptor_(ioc), shared_(std::make_shared<Shared>(router, limits, upgrader)) {}

HttpServer::~HttpServer() = default;

Result<tcp::endpoint> HttpServer::Start(const tcp::endpoint& endpoint) {
  beast::error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Error{ErrorCode::kUnavailable, "cannot listen on " + endpoint.address().to_string() +
                                              ":" + std::to_string(endpoint.port()) + ": " +
                                              ec.message()};
  }
  tcp::endpoint bound = acceptor_.local_endpoint(ec);
  net::co_spawn(acceptor_.get_executor(), Accept(), net::detached);
  return bound;
}

net::awaitable<void> HttpServer::Accept() {
  for (;;) {
    beast::error_code ec;
    tcp::socket socket(net::make_strand(ioc_));
    co_await acceptor_.async_accept(socket, Redirect(ec));
    if (shared_->stopping) co_return;
    if (ec) {
      if (ec == net::error::operation_aborted || ec == net::error::bad_descriptor) co_return;
      spdlog::warn("accept failed: {}", ec.message());
      net::steady_timer pause(acceptor_.get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(Redirect(ec));  // e.g. out of file descriptors
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    socket.non_blocking(true, ec);  // for Connection::Write's first, synchronous try
    auto connection = std::make_shared<Connection>(shared_, std::move(socket));
    {
      std::lock_guard lock(shared_->mu);
      std::erase_if(shared_->connections, [](const auto& w) { return w.expired(); });
      shared_->connections.insert(connection);
    }
    net::co_spawn(
        connection->Executor(),
        [connection]() -> net::awaitable<void> {
          try {
            co_await connection->Run();
          } catch (const std::exception& e) {
            spdlog::error("connection ended by an exception: {}", e.what());
          }
        },
        net::detached);
  }
}

void HttpServer::Shutdown() {
  if (shared_->stopping.exchange(true)) return;
  net::post(acceptor_.get_executor(), [this] {
    beast::error_code ec;
    acceptor_.close(ec);
  });
  std::lock_guard lock(shared_->mu);
  for (const auto& weak : shared_->connections) {
    if (auto c = weak.lock()) c->Stop();
  }
}

}  // namespace gpuhub::http
