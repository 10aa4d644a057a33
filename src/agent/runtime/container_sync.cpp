#include "agent/runtime/container_sync.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace gpuhub::agent::runtime {
namespace {

namespace net = boost::asio;
using nlohmann::json;

constexpr const char* kNoRuntime =
    "This machine's agent has no container runtime: start gpuhub-agent with --docker-host";

// The answer to a message that is not a valid operation (when it names its request).
std::optional<proto::ContainerResult> Refusal(const json& data, const std::string& message) {
  if (!data.is_object() || !data.contains("request_id") || !data["request_id"].is_string()) {
    return std::nullopt;
  }
  proto::ContainerResult r;
  r.request_id = data["request_id"].get<std::string>();
  r.code = "invalid";
  r.message = message;
  return r;
}

void LogRuntimeDown(const Error& e, bool& logged) {
  if (logged) return;
  logged = true;
  spdlog::warn("cannot list containers: {}", e.message);
}

}  // namespace

ContainerSync::ContainerSync(net::io_context& ioc, AgentLink& link, ContainerManager* manager,
                             std::chrono::milliseconds poll_interval)
    : ioc_(ioc), link_(link), manager_(manager), poll_interval_(poll_interval), timer_(ioc) {}

void ContainerSync::Start() {
  link_.OnMessage([this](const std::string& type, const json& data) { OnMessage(type, data); });
  link_.OnConnected([this] {
    sent_.reset();  // a new connection gets a full report at once
    timer_.cancel();
  });
  if (manager_ != nullptr) net::co_spawn(ioc_, Poll(), net::detached);
}

void ContainerSync::Stop() {
  net::post(ioc_, [this] {
    stopping_ = true;
    timer_.cancel();
  });
}

void ContainerSync::OnMessage(const std::string& type, const json& data) {
  if (type != "container") {
    spdlog::debug("ignoring a server message of type {}", type);
    return;
  }
  auto op = proto::ContainerOpFromJson(data);
  if (!op.ok()) {
    spdlog::warn("bad container operation from the server: {}", op.error().message);
    if (auto r = Refusal(data, op.error().message)) link_.Send("container_result", ToJson(*r));
    return;
  }
  net::co_spawn(ioc_, Run(std::move(op).value()), net::detached);
}

net::awaitable<void> ContainerSync::Run(proto::ContainerOp op) {
  proto::ContainerResult result;
  if (manager_ == nullptr) {
    result.request_id = op.request_id;
    result.code = "unavailable";
    result.message = kNoRuntime;
  } else {
    result = co_await manager_->Handle(std::move(op));
  }
  link_.Send("container_result", proto::ToJson(result));
  ++answered_;
}

net::awaitable<void> ContainerSync::Poll() {
  while (!stopping_) {
    if (link_.Connected()) {
      const uint64_t answered = answered_;
      auto list = co_await manager_->List();
      if (!list.ok()) {
        LogRuntimeDown(list.error(), runtime_down_logged_);
      } else {
        if (runtime_down_logged_) spdlog::info("the container runtime answers again");
        runtime_down_logged_ = false;
        if (!sent_ || *sent_ != *list || answered != answered_reported_) {
          if (link_.Send("containers", proto::ContainersReportJson(*list))) {
            sent_ = *list;
            answered_reported_ = answered;
          }
        }
      }
    }
    timer_.expires_after(poll_interval_);
    boost::system::error_code ec;
    co_await timer_.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
}

}  // namespace gpuhub::agent::runtime
