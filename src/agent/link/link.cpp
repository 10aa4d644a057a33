#include "agent/link/link.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <nlohmann/json.hpp>
#include <random>

#include "client/connect.hpp"

namespace gpuhub::agent {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using nlohmann::json;

namespace {

constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr size_t kMaxOutbox = 1024;

auto Redirect(beast::error_code& ec) { return net::redirect_error(net::use_awaitable, ec); }

Error LinkError(std::string_view what, const beast::error_code& ec) {
  return {ErrorCode::kUnavailable, std::string(what) + ": " + ec.message()};
}

// Messages and logging live outside the coroutine template: GCC 12 fails on
// braced JSON initializers with string literals inside it.
json Message(std::string_view type, json data) {
  return {{"type", type}, {"data", std::move(data)}};
}
json AuthMessage(const LinkOptions& o) {
  return Message("auth", {{"token", o.token},
                          {"version", std::to_string(kProtocolVersion)},
                          {"agent", o.agent_version}});
}
json HeartbeatData(const proto::Inventory& before, const proto::Inventory& now) {
  return {{"changes", proto::Diff(before, now)}};
}

// Logging lives outside the coroutine template: GCC 12 fails on string
// literals passed to spdlog inside it ("array used as initializer").
// The heartbeat interval to use when the server accepted the agent (the
// configured one, or the server's when that is shorter, so that the server's
// offline rule never fires on a healthy agent); else the server's reason.
Result<std::chrono::milliseconds> CheckAuthReply(const ServerUrl& s, const std::string& text,
                                                 std::chrono::milliseconds configured) {
  json reply = json::parse(text, nullptr, false);
  const json* data = reply.is_object() && reply.contains("data") && reply["data"].is_object()
                         ? &reply["data"]
                         : nullptr;
  if (!data || reply.value("type", std::string()) != "auth") {
    std::string why = data ? data->value("message", std::string("no reason given"))
                           : std::string("unreadable reply");
    return Error{ErrorCode::kUnauthenticated, "server refused the agent: " + why};
  }
  auto heartbeat = configured;
  if (data->contains("heartbeat") && (*data)["heartbeat"].is_number()) {
    auto server =
        std::chrono::milliseconds(static_cast<int64_t>((*data)["heartbeat"].get<double>() * 1000));
    if (server.count() > 0 && server < configured) {
      spdlog::warn("the server expects a heartbeat every {} ms; using that instead of {} ms",
                   server.count(), configured.count());
      heartbeat = server;
    }
  }
  spdlog::info("connected to {}:{} as machine {}", s.host, s.port,
               data->value("machine_id", std::string("?")));
  return heartbeat;
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

bool AgentLink::Dispatch(const std::string& text) {
  json m = json::parse(text, nullptr, false);
  if (!m.is_object() || !m.contains("type") || !m["type"].is_string()) {
    spdlog::warn("ignoring an unreadable message from the server");
    return true;
  }
  std::string type = m["type"].get<std::string>();
  json data = m.contains("data") ? m["data"] : json::object();
  if (type == "error") {
    spdlog::warn("server says: {}",
                 data.is_object() ? data.value("message", std::string("?")) : data.dump());
    return false;
  }
  for (const auto& handler : on_message_) handler(type, data);
  return true;
}

bool AgentLink::Send(std::string_view type, json data) {
  if (!enqueue_) return false;
  enqueue_(Dump(Message(type, std::move(data))));
  return true;
}

Result<ServerUrl> ParseServerUrl(std::string_view url) {
  return client::ParseUrl(url, {"ws", "wss"}, "/ws/agent");
}

std::chrono::milliseconds Backoff(int attempt, std::chrono::milliseconds initial,
                                  std::chrono::milliseconds max, double unit) {
  double base = static_cast<double>(initial.count());
  for (int i = 0; i < attempt && base < static_cast<double>(max.count()); ++i) base *= 2;
  base = std::min(base, static_cast<double>(max.count()));
  return std::chrono::milliseconds(static_cast<int64_t>(base * (0.5 + 0.5 * unit)));
}

AgentLink::AgentLink(net::io_context& ioc, LinkOptions options,
                     std::function<proto::Inventory()> sample)
    : ioc_(ioc), options_(std::move(options)), sample_(std::move(sample)), wait_(ioc) {}

void AgentLink::Start() { net::co_spawn(ioc_, Run(), net::detached); }

void AgentLink::Stop() {
  net::post(ioc_, [this] {
    stopping_ = true;
    wait_.cancel();
    if (close_current_) close_current_();
  });
}

net::awaitable<void> AgentLink::Run() {
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  int attempt = 0;
  const auto& s = options_.server;
  while (!stopping_) {
    Status status;
    try {
      beast::tcp_stream stream(ioc_);
      beast::error_code ec = co_await client::AsyncConnect(stream, s, kConnectTimeout);
      if (ec) {
        status = LinkError("cannot connect to " + s.host + ":" + s.port, ec);
      } else if (!s.tls) {
        websocket::stream<beast::tcp_stream> ws(std::move(stream));
        status = co_await Converse(ws);
      } else {
        websocket::stream<client::TlsStream> ws(std::move(stream), client::ClientTlsContext());
        ec = co_await client::AsyncTlsHandshake(ws.next_layer(), s.host);
        if (ec) {
          status = LinkError("TLS handshake with " + s.host, ec);
        } else {
          status = co_await Converse(ws);
        }
      }
    } catch (const std::exception& e) {
      status = Internal(e.what());
    }
    if (connected_.exchange(false)) attempt = 0;
    close_current_ = nullptr;
    if (stopping_) break;
    auto delay = Backoff(attempt++, options_.backoff_initial, options_.backoff_max, unit(rng));
    spdlog::warn("server link down ({}); reconnecting in {} ms",
                 status.ok() ? "closed" : status.error().message, delay.count());
    wait_.expires_after(delay);
    beast::error_code ec;
    co_await wait_.async_wait(Redirect(ec));
  }
  spdlog::info("server link stopped");
}

template <class Ws>
net::awaitable<Status> AgentLink::Converse(Ws& ws) {
  const auto& s = options_.server;
  beast::error_code ec;
  beast::get_lowest_layer(ws).expires_after(kConnectTimeout);
  co_await ws.async_handshake(client::HostPort(s), s.path, Redirect(ec));
  if (ec) co_return LinkError("WebSocket handshake with " + s.host + s.path, ec);
  close_current_ = [&ws] { beast::get_lowest_layer(ws).close(); };

  auto send = [&ws](const json& message) -> net::awaitable<beast::error_code> {
    beast::error_code e;
    std::string text = Dump(message);
    co_await ws.async_write(net::buffer(text), Redirect(e));
    co_return e;
  };
  beast::flat_buffer buffer;
  if ((ec = co_await send(AuthMessage(options_)))) {
    co_return LinkError("sending auth", ec);
  }
  co_await ws.async_read(buffer, Redirect(ec));  // still under the connect deadline
  if (ec) co_return LinkError("waiting for the server's auth reply", ec);
  beast::get_lowest_layer(ws).expires_never();
  ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
  auto heartbeat = CheckAuthReply(s, beast::buffers_to_string(buffer.data()), options_.heartbeat);
  if (!heartbeat.ok()) co_return heartbeat.error();
  connected_ = true;

  proto::Inventory last = sample_();
  if ((ec = co_await send(Message("inventory", proto::ToJson(last))))) {
    co_return LinkError("sending inventory", ec);
  }

  // From here on every write goes through the outbox, one in flight.
  std::deque<std::string> outbox;
  bool writing = false;
  net::steady_timer writer_finished(ioc_, net::steady_timer::time_point::max());
  auto writer = [&]() -> net::awaitable<void> {
    while (!outbox.empty()) {
      beast::error_code e;
      co_await ws.async_write(net::buffer(outbox.front()), Redirect(e));
      if (e) {
        beast::get_lowest_layer(ws).close();  // the reader notices and ends the session
        break;
      }
      outbox.pop_front();
    }
    writing = false;
    writer_finished.cancel();
  };
  enqueue_ = [&](std::string text) {
    if (outbox.size() >= kMaxOutbox) {
      spdlog::warn("the server does not read our messages; closing the connection");
      beast::get_lowest_layer(ws).close();
      return;
    }
    outbox.push_back(std::move(text));
    if (!writing) {
      writing = true;
      net::co_spawn(ioc_, writer, net::detached);
    }
  };

  // The reader runs beside the heartbeat loop; whichever ends first ends both.
  bool reader_done = false;
  bool resend_full = false;
  Status reader_status;
  net::steady_timer reader_finished(ioc_, net::steady_timer::time_point::max());
  net::co_spawn(
      ioc_,
      [&]() -> net::awaitable<void> {
        beast::flat_buffer in;
        for (;;) {
          beast::error_code e;
          in.clear();
          co_await ws.async_read(in, Redirect(e));
          if (e) {
            reader_status = LinkError("connection closed", e);
            break;
          }
          // After a refused report the server's copy may be stale: resend it whole.
          if (!Dispatch(beast::buffers_to_string(in.data()))) resend_full = true;
        }
        reader_done = true;
        wait_.cancel();
        reader_finished.cancel();
      },
      net::detached);
  for (const auto& f : on_connected_) f();

  while (!reader_done && !stopping_) {
    wait_.expires_after(*heartbeat);
    co_await wait_.async_wait(Redirect(ec));
    if (reader_done || stopping_) break;
    proto::Inventory now = sample_();
    // No conditional expression here: GCC 12 mishandles temporaries in them
    // inside coroutines.
    json message;
    if (resend_full) {
      message = Message("inventory", proto::ToJson(now));
    } else {
      message = Message("heartbeat", HeartbeatData(last, now));
    }
    resend_full = false;
    enqueue_(Dump(message));
    last = std::move(now);
  }
  enqueue_ = nullptr;
  beast::get_lowest_layer(ws).close();
  if (!reader_done) co_await reader_finished.async_wait(Redirect(ec));
  if (writing) co_await writer_finished.async_wait(Redirect(ec));
  co_return reader_status;
}

}  // namespace gpuhub::agent
