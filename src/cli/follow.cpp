#include "cli/follow.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <optional>

#include "cli/log_tail.hpp"
#include "client/http.hpp"
#include "common/percent_encode.hpp"

namespace gpuhub::cli {
namespace net = boost::asio;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr std::chrono::milliseconds kWsTimeout = 15s;
constexpr std::chrono::milliseconds kLogEvery = 300ms;

// What the WebSocket reader shares with the follower (one thread).
struct Shared {
  json task;             // the latest state pushed; null until one arrives
  bool ws_live = false;  // authenticated on /ws
  bool ws_done = false;  // the reader gave up or ended
};

json AuthMessage(const std::string& token) {
  return {{"type", "auth"}, {"data", {{"token", token}}}};
}

net::awaitable<void> ReadEvents(const Api& api, int64_t task_id, client::WebSocket& ws,
                                std::shared_ptr<Shared> s) {
  if ((co_await ws.Connect(api.server(), "/ws", kWsTimeout)).ok() &&
      (co_await ws.Write(AuthMessage(api.token()).dump())).ok()) {
    auto reply = co_await ws.Read();
    json r = reply.ok() ? json::parse(*reply, nullptr, false) : json();
    s->ws_live = r.is_object() && r.value("type", "") == "auth";
    while (s->ws_live) {
      auto text = co_await ws.Read();
      if (!text.ok()) break;
      json m = json::parse(*text, nullptr, false);
      if (!m.is_object() || m.value("type", "") != "task" || !m["data"].is_object()) continue;
      if (m["data"].value("taskId", int64_t{0}) == task_id) s->task = m["data"];
    }
  }
  s->ws_live = false;
  s->ws_done = true;
}

Result<json> ListedTask(const Api& api, int64_t task_id, const std::string& machine_id) {
  auto list = api.Get("/api/task/machine/" + PercentEncode(machine_id) + "?status=all");
  if (!list.ok()) return list.error();
  for (const auto& t : *list) {
    if (t.is_object() && t.value("taskId", int64_t{0}) == task_id) return t;
  }
  return Error{ErrorCode::kNotFound, "Task " + std::to_string(task_id) + " not found"};
}

std::string StateOf(const json& task) {
  return task.is_object() ? task.value("status", "") : std::string();
}

net::awaitable<Result<json>> Follow(const Api& api, int64_t task_id, const std::string& machine_id,
                                    std::ostream& out, std::ostream& err, client::WebSocket& ws,
                                    std::shared_ptr<Shared> s) {
  net::steady_timer timer(co_await net::this_coro::executor);
  auto sleep = [&timer](std::chrono::milliseconds d) {
    timer.expires_after(d);
    return timer.async_wait(net::use_awaitable);
  };
  // Wait (briefly) for the subscription, so that the list read below sees
  // every change made before it.
  for (int i = 0; i < 50 && !s->ws_live && !s->ws_done; ++i) co_await sleep(100ms);
  LogTail tail;
  const std::string log_target = "/api/task/" + std::to_string(task_id) + "/log";
  auto print_new = [&]() -> Result<bool> {
    auto log = api.GetText(log_target);
    if (!log.ok()) return log.error();
    auto update = tail.Next(*log);
    if (update.gap) err << "[gpuhub: some output was not kept by the server]\n";
    out << update.text << std::flush;
    return !update.text.empty();
  };
  json task;
  auto last_list = std::chrono::steady_clock::time_point{};
  for (;;) {
    if (auto printed = print_new(); !printed.ok()) co_return printed.error();
    if (!s->task.is_null()) task = s->task;
    // Poll the list: first time, and then every 5 s with the WebSocket (an
    // admin gets no events for others' tasks) or every 1 s without it.
    auto now = std::chrono::steady_clock::now();
    auto every = s->ws_live ? std::chrono::milliseconds(5s) : std::chrono::milliseconds(1s);
    if (!IsFinal(StateOf(task)) && now - last_list >= every) {
      auto listed = ListedTask(api, task_id, machine_id);
      if (!listed.ok()) co_return listed.error();
      if (!IsFinal(StateOf(task))) task = *listed;
      last_list = now;
    }
    if (IsFinal(StateOf(task))) break;
    co_await sleep(kLogEvery);
  }
  // The agent's last output may arrive after the final state: read until
  // the log has not changed for 3 reads in a row.
  for (int quiet = 0; quiet < 3;) {
    co_await sleep(kLogEvery);
    auto printed = print_new();
    if (!printed.ok()) co_return printed.error();
    quiet = *printed ? 0 : quiet + 1;
  }
  // The final record (exit code) as listed.
  auto listed = ListedTask(api, task_id, machine_id);
  ws.Close();
  if (listed.ok() && IsFinal(StateOf(*listed))) co_return *listed;
  co_return task;
}

}  // namespace

bool IsFinal(const std::string& status) {
  return status == "completed" || status == "failed" || status == "cancelled" ||
         status == "expired" || status == "lost";
}

Result<json> FollowTask(const Api& api, int64_t task_id, const std::string& machine_id,
                        std::ostream& out, std::ostream& err) {
  net::io_context ioc;
  client::WebSocket ws(ioc.get_executor());
  auto shared = std::make_shared<Shared>();
  net::co_spawn(ioc, ReadEvents(api, task_id, ws, shared), net::detached);
  std::optional<Result<json>> result;
  net::co_spawn(
      ioc,
      [&]() -> net::awaitable<void> {
        result.emplace(co_await Follow(api, task_id, machine_id, out, err, ws, shared));
        ioc.stop();  // the WebSocket reader may still be connecting
      },
      net::detached);
  ioc.run();
  return result ? std::move(*result) : Internal("following the task stopped");
}

}  // namespace gpuhub::cli
