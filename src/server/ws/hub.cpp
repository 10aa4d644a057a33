#include "server/ws/hub.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <deque>
#include <nlohmann/json.hpp>

#include "proto/inventory.hpp"

namespace gpuhub::ws {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using nlohmann::json;

namespace {

constexpr auto kAuthDeadline = std::chrono::seconds(10);
constexpr size_t kMaxQueuedMessages = 1024;
constexpr size_t kMaxMessageBytes = 1 << 20;

auto Redirect(beast::error_code& ec) { return net::redirect_error(net::use_awaitable, ec); }

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string ErrorMessage(std::string_view message) {
  return Dump({{"type", "error"}, {"data", {{"message", message}}}});
}

// A message's type and data, or an error text for the sender.
struct Message {
  std::string type;
  json data;
};
Result<Message> ParseMessage(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return InvalidArgument(R"(Invalid message: expected {"type": "...", "data": {...}})");
  }
  json data = j.value("data", json::object());
  return Message{j["type"].get<std::string>(), std::move(data)};
}

}  // namespace

// One WebSocket connection. Before authentication only Run writes; after it
// every write goes through the queue, one in flight at a time.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Hub& hub, beast::tcp_stream stream) : hub_(hub), ws_(std::move(stream)) {}
  virtual ~Session() { hub_.Untrack(this); }

  void Start(http::Request request) {
    hub_.Track(shared_from_this());
    net::co_spawn(
        ws_.get_executor(),
        [self = shared_from_this(),
         request = std::move(request)]() mutable -> net::awaitable<void> {
          try {
            co_await self->Serve(std::move(request));
          } catch (const std::exception& e) {
            spdlog::error("websocket session ended by an exception: {}", e.what());
          }
        },
        net::detached);
  }

  // Queues a text message (thread-safe). Dropped when not yet authenticated.
  void Send(std::string text) {
    net::post(ws_.get_executor(), [self = shared_from_this(), text = std::move(text)]() mutable {
      if (self->closed_ || !self->authenticated_) return;
      if (self->queue_.size() >= kMaxQueuedMessages) {
        spdlog::warn("websocket peer does not keep up; disconnecting it");
        self->CloseOnStrand();
        return;
      }
      self->queue_.push_back(std::move(text));
      if (!self->writing_) {
        self->writing_ = true;
        net::co_spawn(self->ws_.get_executor(), self->WriteQueue(), net::detached);
      }
    });
  }

  // Ends the connection (thread-safe).
  void Close() {
    net::post(ws_.get_executor(), [self = shared_from_this()] { self->CloseOnStrand(); });
  }

  virtual bool WantsEvents() const { return false; }

 protected:
  // Accepts the upgrade, authenticates, then serves messages until the end.
  virtual net::awaitable<void> Run() = 0;

  // The next text message, or nullopt when the connection ended.
  net::awaitable<std::optional<std::string>> Read() {
    beast::error_code ec;
    buffer_.clear();
    co_await ws_.async_read(buffer_, Redirect(ec));
    if (ec) co_return std::nullopt;
    co_return beast::buffers_to_string(buffer_.data());
  }

  // Before authentication: answers an error and closes.
  net::awaitable<void> Refuse(std::string_view message) {
    beast::error_code ec;
    std::string text = ErrorMessage(message);
    co_await ws_.async_write(net::buffer(text), Redirect(ec));
    if (!ec) co_await ws_.async_close(websocket::close_code::policy_error, Redirect(ec));
  }

  void Authenticated() { authenticated_ = true; }
  std::string PeerAddress() {
    beast::error_code ec;
    auto ep = beast::get_lowest_layer(ws_).socket().remote_endpoint(ec);
    return ec ? std::string() : ep.address().to_string();
  }

  Hub& hub_;

 private:
  net::awaitable<void> Serve(http::Request request) {
    beast::get_lowest_layer(ws_).expires_never();
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.read_message_max(kMaxMessageBytes);
    beast::error_code ec;
    co_await ws_.async_accept(request, Redirect(ec));
    if (ec) co_return;
    // Whoever has not authenticated in time is disconnected.
    auto deadline = std::make_shared<net::steady_timer>(ws_.get_executor(), kAuthDeadline);
    deadline->async_wait([weak = weak_from_this()](const beast::error_code& e) {
      auto self = weak.lock();
      if (!e && self && !self->authenticated_) self->CloseOnStrand();
    });
    co_await Run();
    deadline->cancel();
    CloseOnStrand();
  }

  net::awaitable<void> WriteQueue() {
    auto self = shared_from_this();
    while (!queue_.empty() && !closed_) {
      beast::error_code ec;
      co_await ws_.async_write(net::buffer(queue_.front()), Redirect(ec));
      if (ec) break;
      queue_.pop_front();
    }
    writing_ = false;
  }

  void CloseOnStrand() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    auto& socket = beast::get_lowest_layer(ws_).socket();
    socket.shutdown(net::ip::tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  std::deque<std::string> queue_;  // the members below are only touched on the strand
  bool writing_ = false;
  bool closed_ = false;
  bool authenticated_ = false;
};

namespace {

// /ws: a signed-in browser.
class BrowserSession final : public Session {
 public:
  using Session::Session;
  bool WantsEvents() const override { return true; }

 private:
  net::awaitable<void> Run() override {
    auto first = co_await Read();
    if (!first) co_return;
    auto msg = ParseMessage(*first);
    if (!msg.ok() || msg->type != "auth" || !msg->data.is_object() ||
        !msg->data.contains("token") || !msg->data["token"].is_string()) {
      co_await Refuse(R"(The first message must be {"type":"auth","data":{"token":"..."}})");
      co_return;
    }
    auto auth = hub_.accounts().Authenticate(msg->data["token"].get<std::string>());
    if (auto* e = std::get_if<accounts::TokenError>(&auth)) {
      co_await Refuse(accounts::TokenErrorMessage(*e));
      co_return;
    }
    Authenticated();
    const auto& principal = std::get<accounts::Principal>(auth);
    Send(Dump({{"type", "auth"}, {"data", {{"ok", true}, {"account", principal.account}}}}));
    while (auto text = co_await Read()) {
      auto m = ParseMessage(*text);
      Send(ErrorMessage(m.ok() ? "Unknown type: " + m->type.substr(0, 64) : m.error().message));
    }
  }
};

// /ws/agent: the agent of one machine.
class AgentSession final : public Session {
 public:
  using Session::Session;

 private:
  net::awaitable<void> Run() override {
    auto first = co_await Read();
    if (!first) co_return;
    auto msg = ParseMessage(*first);
    if (!msg.ok() || msg->type != "auth" || !msg->data.is_object()) {
      co_await Refuse(R"(The first message must be {"type":"auth","data":{"token","version"}})");
      co_return;
    }
    const json& version = msg->data.contains("version") ? msg->data["version"] : json();
    std::string version_text = version.is_string() ? version.get<std::string>() : version.dump();
    if (version_text != std::to_string(kAgentProtocolVersion)) {
      co_await Refuse("Incompatible agent protocol version " + version_text.substr(0, 32) +
                      ": this server speaks version " + std::to_string(kAgentProtocolVersion) +
                      "; install the gpuhub-agent that matches the server");
      co_return;
    }
    std::optional<std::string> id;
    if (msg->data.contains("token") && msg->data["token"].is_string()) {
      id = hub_.registry().MachineForToken(msg->data["token"].get<std::string>());
    }
    if (!id) {
      co_await Refuse("Invalid agent token");
      co_return;
    }
    auto generation = hub_.registry().Connect(*id, PeerAddress(), [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->Close();
    });
    if (!generation.ok()) {
      co_await Refuse("Invalid agent token");
      co_return;
    }
    Authenticated();
    auto heartbeat = std::chrono::duration<double>(hub_.registry().heartbeat()).count();
    Send(Dump({{"type", "auth"},
               {"data",
                {{"ok", true},
                 {"machine_id", *id},
                 {"heartbeat", heartbeat},
                 {"version", kAgentProtocolVersion}}}}));
    while (auto text = co_await Read()) {
      auto m = ParseMessage(*text);
      if (!m.ok()) {
        Send(ErrorMessage(m.error().message));
        continue;
      }
      Status s;
      if (m->type == "inventory") {
        auto inv = proto::InventoryFromJson(m->data);
        s = inv.ok() ? hub_.registry().Report(*id, *generation, std::move(inv).value())
                     : Status(inv.error());
      } else if (m->type == "heartbeat") {
        json changes = m->data.is_object() ? m->data.value("changes", json::object()) : json();
        s = changes.is_object() ? hub_.registry().Heartbeat(*id, *generation, changes)
                                : Status(InvalidArgument("heartbeat changes must be an object"));
      } else {
        s = InvalidArgument("Unknown type: " + m->type.substr(0, 64));
      }
      if (!s.ok() && s.error().code == ErrorCode::kNotFound) break;  // replaced or removed
      if (!s.ok()) Send(ErrorMessage(s.error().message));
    }
    hub_.registry().Disconnect(*id, *generation);
  }
};

}  // namespace

Hub::Hub(accounts::Accounts& accounts, machines::MachineRegistry& registry)
    : accounts_(accounts), registry_(registry) {}

Hub::~Hub() = default;

bool Hub::Accepts(std::string_view path) const { return path == "/ws" || path == "/ws/agent"; }

void Hub::Upgrade(beast::tcp_stream stream, http::Request request) {
  auto [path, query] = http::SplitTarget(http::Sv(request.target()));
  std::shared_ptr<Session> session;
  if (path == "/ws/agent") {
    session = std::make_shared<AgentSession>(*this, std::move(stream));
  } else {
    session = std::make_shared<BrowserSession>(*this, std::move(stream));
  }
  session->Start(std::move(request));
}

void Hub::Track(const std::shared_ptr<Session>& s) {
  std::lock_guard lock(mu_);
  sessions_[s.get()] = s;
}

void Hub::Untrack(const Session* s) {
  std::lock_guard lock(mu_);
  sessions_.erase(s);
}

size_t Hub::OpenSessions() const {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

void Hub::BroadcastMachine(const std::string& id, bool online) {
  std::string text = Dump({{"type", "machine"}, {"data", {{"id", id}, {"online", online}}}});
  std::vector<std::shared_ptr<Session>> targets;
  {
    std::lock_guard lock(mu_);
    for (const auto& [p, weak] : sessions_) {
      if (auto s = weak.lock(); s && s->WantsEvents()) targets.push_back(std::move(s));
    }
  }
  for (auto& s : targets) s->Send(text);
}

void Hub::CloseAll() {
  std::vector<std::shared_ptr<Session>> all;
  {
    std::lock_guard lock(mu_);
    for (const auto& [p, weak] : sessions_) {
      if (auto s = weak.lock()) all.push_back(std::move(s));
    }
  }
  for (auto& s : all) s->Close();
}

}  // namespace gpuhub::ws
