#include "server/ws/hub.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
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

#include "proto/containers.hpp"
#include "proto/inventory.hpp"
#include "proto/tasks.hpp"
#include "server/api/requests.hpp"

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

std::string TextMessage(std::string_view type, json data) {
  json j = json::object();
  j["type"] = type;
  j["data"] = std::move(data);
  return Dump(j);
}

Error Unavailable(std::string message) { return {ErrorCode::kUnavailable, std::move(message)}; }

// The reply to a browser's container message.
std::string ContainerReply(const json& opt, const json& request_id, const Status& status,
                           json payload_key, json payload) {
  json data = json::object();
  data["opt"] = opt;
  data["request_id"] = request_id;
  data["ok"] = status.ok();
  if (!status.ok()) {
    data["message"] = status.error().message;
  } else if (payload_key.is_string()) {
    data[payload_key.get<std::string>()] = std::move(payload);
  }
  return TextMessage("container", std::move(data));
}

std::string ContainerReply(const json& opt, const json& request_id,
                           const Result<store::Container>& r) {
  if (!r.ok()) return ContainerReply(opt, request_id, r.error(), nullptr, nullptr);
  return ContainerReply(opt, request_id, Status::Ok(), "container", containers::ContainerJson(*r));
}

std::string ContainerListReply(const json& opt, const json& request_id,
                               const Result<std::vector<store::Container>>& r) {
  if (!r.ok()) return ContainerReply(opt, request_id, r.error(), nullptr, nullptr);
  json list = json::array();
  for (const auto& c : *r) list.push_back(containers::ContainerJson(c));
  return ContainerReply(opt, request_id, Status::Ok(), "containers", std::move(list));
}

// What a browser's container message asks for.
struct ContainerCommand {
  json opt;
  json request_id;
  std::string opt_name;
  std::optional<proto::ContainerOp::Kind> kind;  // nullopt: create or list
  Result<int64_t> container_id = int64_t{0};
};

ContainerCommand ReadContainerCommand(const json& data) {
  ContainerCommand c;
  if (!data.is_object()) {
    c.container_id = InvalidArgument("data must be an object");
    return c;
  }
  c.opt = data.contains("opt") ? data["opt"] : json();
  c.request_id = data.contains("request_id") ? data["request_id"] : json();
  c.opt_name = c.opt.is_string() ? c.opt.get<std::string>() : std::string();
  if (c.opt_name == "list" || c.opt_name == "create") return c;
  c.kind = proto::ParseOpName(c.opt_name);
  if (!c.kind) {
    c.container_id =
        InvalidArgument("Field opt must be one of create, start, stop, restart, delete, list");
  } else if (!data.contains("container_id")) {
    c.container_id = InvalidArgument("Missing field: container_id");
  } else {
    c.container_id = api::IdFromJson("container_id", data["container_id"]);
  }
  return c;
}

// Why a command cannot run, or Ok.
Status CommandError(const ContainerCommand& c, const containers::ContainerService* service) {
  if (!c.container_id.ok()) return c.container_id.error();
  if (service == nullptr) return Unavailable("Containers are not available");
  return Status::Ok();
}

}  // namespace

// A container operation waiting for its agent's answer. The timer runs on the
// caller's strand; whoever delivers the outcome sets it under the hub's lock
// and cancels the timer on that strand.
struct Hub::PendingCall {
  PendingCall(net::any_io_executor ex, std::string machine)
      : timer(std::move(ex)), machine_id(std::move(machine)) {}
  net::steady_timer timer;
  std::string machine_id;
  std::optional<Result<proto::ContainerResult>> outcome;  // guarded by the hub's mu_

  static void Wake(std::shared_ptr<PendingCall> call) {
    auto ex = call->timer.get_executor();
    net::post(ex, [call = std::move(call)] { call->timer.cancel(); });
  }
};

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
  virtual bool WantsMachineInfo() const { return false; }
  // The signed-in user of a browser session; 0 for agents.
  virtual int64_t UserId() const { return 0; }

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
  net::any_io_executor GetExecutor() { return ws_.get_executor(); }
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
  bool WantsMachineInfo() const override { return machines_.load(); }
  int64_t UserId() const override { return user_id_.load(); }
  ~BrowserSession() override {
    if (machines_.load()) hub_.CountMachineSubscriber(false);
  }

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
    principal_ = std::get<accounts::Principal>(auth);
    user_id_ = principal_.user_id;
    Send(Dump({{"type", "auth"}, {"data", {{"ok", true}, {"account", principal_.account}}}}));
    while (auto text = co_await Read()) {
      auto m = ParseMessage(*text);
      if (m.ok() && m->type == "container") {
        // Each operation runs on its own so a slow agent holds up nothing else.
        net::co_spawn(GetExecutor(), Container(shared_from_this(), std::move(m->data)),
                      net::detached);
        continue;
      }
      if (m.ok() && m->type == "subscribe") {
        Subscribe(m->data);
        continue;
      }
      Send(ErrorMessage(m.ok() ? "Unknown type: " + m->type.substr(0, 64) : m.error().message));
    }
  }

  // {"type":"subscribe","data":{"machines":true|false}}: machine_info events
  // on or off; answered with the setting.
  void Subscribe(const json& data) {
    if (!data.is_object() || !data.contains("machines") || !data["machines"].is_boolean() ||
        data.size() != 1) {
      Send(ErrorMessage(R"(subscribe needs {"machines": true|false})"));
      return;
    }
    const bool on = data["machines"].get<bool>();
    if (machines_.exchange(on) != on) hub_.CountMachineSubscriber(on);
    Send(Dump({{"type", "subscribe"}, {"data", {{"machines", on}}}}));
  }

  net::awaitable<void> Container(std::shared_ptr<Session> keep, json data) {
    (void)keep;
    ContainerCommand c = ReadContainerCommand(data);
    containers::ContainerService* service = hub_.containers();
    if (Status s = CommandError(c, service); !s.ok()) {
      Send(ContainerReply(c.opt, c.request_id, s, nullptr, nullptr));
      co_return;
    }
    if (c.opt_name == "list") {
      bool all = data.contains("all") && data["all"] == true;
      Send(ContainerListReply(c.opt, c.request_id, service->List(principal_, all)));
      co_return;
    }
    Result<store::Container> result = NotFound("Container not found");
    if (c.opt_name == "create") {
      auto request = api::CreateContainerFromJson(data);
      if (!request.ok()) {
        Send(ContainerReply(c.opt, c.request_id, request.error(), nullptr, nullptr));
        co_return;
      }
      result = co_await service->Create(principal_, std::move(request).value());
    } else {
      result = co_await service->Act(principal_, *c.container_id, *c.kind);
    }
    Send(ContainerReply(c.opt, c.request_id, result));
  }

  accounts::Principal principal_;
  std::atomic<int64_t> user_id_{0};    // read by the hub from other threads
  std::atomic<bool> machines_{false};  // subscribed to machine_info
};

// /ws/agent: the agent of one machine.
class AgentSession final : public Session {
 public:
  using Session::Session;

 private:
  // task, tasks, task_output: to the TaskService.
  Status HandleTaskMessage(const std::string& machine_id, const std::string& type,
                           const json& data) {
    tasks::TaskService* service = hub_.tasks();
    if (type == "task") {
      auto r = proto::TaskReportFromJson(data);
      if (!r.ok()) return r.error();
      if (service != nullptr) service->OnReport(machine_id, *r);
    } else if (type == "tasks") {
      auto list = proto::TasksReportFromJson(data);
      if (!list.ok()) return list.error();
      if (service != nullptr) service->OnTasksReport(machine_id, *list);
    } else {
      auto out = proto::TaskOutputFromJson(data);
      if (!out.ok()) return out.error();
      if (service != nullptr) service->OnOutput(machine_id, *out);
    }
    return Status::Ok();
  }

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
    hub_.AttachAgent(*id, shared_from_this());
    if (hub_.tasks() != nullptr) hub_.tasks()->SetOnline(*id, true);
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
        int gpus = inv.ok() ? static_cast<int>(inv->gpus.size()) : 0;
        s = inv.ok() ? hub_.registry().Report(*id, *generation, std::move(inv).value())
                     : Status(inv.error());
        if (s.ok() && hub_.tasks() != nullptr) hub_.tasks()->SetGpuCount(*id, gpus);
      } else if (m->type == "heartbeat") {
        json changes = m->data.is_object() ? m->data.value("changes", json::object()) : json();
        s = changes.is_object() ? hub_.registry().Heartbeat(*id, *generation, changes)
                                : Status(InvalidArgument("heartbeat changes must be an object"));
        if (s.ok() && hub_.tasks() != nullptr && changes.contains("gpu")) {
          hub_.tasks()->SetGpuCount(*id, static_cast<int>(changes["gpu"].size()));
        }
      } else if (m->type == "task" || m->type == "tasks" || m->type == "task_output") {
        s = HandleTaskMessage(*id, m->type, m->data);
      } else if (m->type == "container_result") {
        auto result = proto::ContainerResultFromJson(m->data);
        if (result.ok()) hub_.Resolve(*id, std::move(result).value());
        s = result.ok() ? Status::Ok() : Status(result.error());
      } else if (m->type == "containers") {
        auto report = proto::ContainersReportFromJson(m->data);
        if (report.ok() && hub_.containers() != nullptr) hub_.containers()->Reconcile(*id, *report);
        s = report.ok() ? Status::Ok() : Status(report.error());
      } else {
        s = InvalidArgument("Unknown type: " + m->type.substr(0, 64));
      }
      if (!s.ok() && s.error().code == ErrorCode::kNotFound) break;  // replaced or removed
      if (!s.ok()) Send(ErrorMessage(s.error().message));
    }
    if (hub_.DetachAgent(*id, this) && hub_.tasks() != nullptr) {
      hub_.tasks()->SetOnline(*id, false);
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

void Hub::AttachAgent(const std::string& machine_id, const std::shared_ptr<Session>& s) {
  std::lock_guard lock(mu_);
  agents_[machine_id] = s;
}

bool Hub::DetachAgent(const std::string& machine_id, const Session* s) {
  {
    std::lock_guard lock(mu_);
    auto it = agents_.find(machine_id);
    if (it == agents_.end() || it->second.lock().get() != s) return false;  // replaced
    agents_.erase(it);
  }
  FailPending(machine_id, "Machine " + machine_id + " went offline before answering");
  return true;
}

bool Hub::SendToAgent(const std::string& machine_id, std::string_view type, json data) {
  std::shared_ptr<Session> agent;
  {
    std::lock_guard lock(mu_);
    auto it = agents_.find(machine_id);
    if (it != agents_.end()) agent = it->second.lock();
  }
  if (!agent) return false;
  agent->Send(TextMessage(type, std::move(data)));
  return true;
}

template <typename Pred>
void Hub::SendWhere(const std::string& text, Pred wanted) {
  std::vector<std::shared_ptr<Session>> targets;
  {
    std::lock_guard lock(mu_);
    for (const auto& [p, weak] : sessions_) {
      if (auto s = weak.lock(); s && wanted(*s)) targets.push_back(std::move(s));
    }
  }
  for (auto& s : targets) s->Send(text);
}

void Hub::SendToUser(int64_t user_id, const json& task) {
  SendWhere(TextMessage("task", task),
            [&](Session& s) { return s.WantsEvents() && s.UserId() == user_id; });
}

bool Hub::Connected(const std::string& machine_id) const {
  std::lock_guard lock(mu_);
  auto it = agents_.find(machine_id);
  return it != agents_.end() && !it->second.expired();
}

net::awaitable<Result<proto::ContainerResult>> Hub::Call(const std::string& machine_id,
                                                         proto::ContainerOp op,
                                                         std::chrono::milliseconds timeout) {
  auto call = std::make_shared<PendingCall>(co_await net::this_coro::executor, machine_id);
  std::shared_ptr<Session> agent;
  {
    std::lock_guard lock(mu_);
    auto it = agents_.find(machine_id);
    if (it != agents_.end()) agent = it->second.lock();
    if (agent) {
      op.request_id = "s-" + std::to_string(next_request_++);
      pending_[op.request_id] = call;
    }
  }
  if (!agent) co_return Unavailable("Machine " + machine_id + " is offline");
  agent->Send(TextMessage("container", proto::ToJson(op)));
  call->timer.expires_after(timeout);
  beast::error_code ec;
  co_await call->timer.async_wait(Redirect(ec));
  std::lock_guard lock(mu_);
  pending_.erase(op.request_id);
  if (call->outcome) co_return std::move(*call->outcome);
  co_return Unavailable("Machine " + machine_id + " did not answer in time");
}

void Hub::Resolve(const std::string& machine_id, proto::ContainerResult result) {
  std::shared_ptr<PendingCall> call;
  {
    std::lock_guard lock(mu_);
    auto it = pending_.find(result.request_id);
    // An answer for another machine's request is not this agent's to give.
    if (it == pending_.end() || it->second->machine_id != machine_id) return;
    call = it->second;
    pending_.erase(it);
    call->outcome = std::move(result);
  }
  PendingCall::Wake(std::move(call));
}

void Hub::FailPending(const std::string& machine_id, const std::string& message) {
  std::vector<std::shared_ptr<PendingCall>> failed;
  {
    std::lock_guard lock(mu_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (machine_id.empty() || it->second->machine_id == machine_id) {
        it->second->outcome = Unavailable(message);
        failed.push_back(it->second);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& call : failed) PendingCall::Wake(std::move(call));
}

void Hub::BroadcastMachine(const std::string& id, bool online) {
  SendWhere(Dump({{"type", "machine"}, {"data", {{"id", id}, {"online", online}}}}),
            [](Session& s) { return s.WantsEvents(); });
}

void Hub::BroadcastMachineInfo(const std::string& id) {
  if (machine_subscribers_.load() == 0) return;  // the usual case, and cheap
  auto machine = registry_.MachineJson(id);
  if (!machine) return;
  SendWhere(R"({"type":"machine_info","data":)" + *machine + "}",
            [](Session& s) { return s.WantsMachineInfo(); });
}

void Hub::CloseAll() {
  FailPending("", "gpuhubd is shutting down");
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
