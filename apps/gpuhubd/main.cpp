// gpuhubd: composes the store, accounts, API and HTTP server, and runs them
// until SIGINT or SIGTERM.
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <utility>  // before asio: boost 1.74's awaitable uses std::exchange
#include <vector>

#include "common/file_util.hpp"
#include "common/log.hpp"
#include "common/time_util.hpp"
#include "server/accounts/accounts.hpp"
#include "server/accounts/password.hpp"
#include "server/api/api.hpp"
#include "server/config.hpp"
#include "server/containers/service.hpp"
#include "server/http/server.hpp"
#include "server/machines/registry.hpp"
#include "server/tasks/service.hpp"
#include "server/web/static_files.hpp"
#include "server/ws/hub.hpp"
#include "store/store.hpp"

#ifndef GPUHUB_WEB_ROOT
#define GPUHUB_WEB_ROOT "web"
#endif

namespace net = boost::asio;
using namespace gpuhub;

namespace {

int Fail(const std::string& message) {
  spdlog::critical("{}", message);
  return 1;
}

// `gpuhubd machine ...`: prints results on stdout; the token alone on the last line.
int RunMachineCommand(machines::MachineRegistry& registry, const server::MachineCommand& cmd) {
  if (cmd.verb == "list") {
    for (const auto& m : registry.List()) {
      std::printf("%s\t%s\t%s\n", m.id.c_str(), m.ip.empty() ? "-" : m.ip.c_str(),
                  m.last_seen ? FormatIso8601(*m.last_seen).c_str() : "never seen");
    }
    return 0;
  }
  if (cmd.verb == "remove") {
    auto s = registry.Remove(cmd.id);
    if (!s.ok()) return Fail(s.error().message);
    std::printf("removed machine %s\n", cmd.id.c_str());
    return 0;
  }
  auto token = cmd.verb == "add" ? registry.Add(cmd.id) : registry.RotateToken(cmd.id);
  if (!token.ok()) return Fail(token.error().message);
  std::printf("agent token for machine %s (shown once; start its agent with --token-file):\n%s\n",
              cmd.id.c_str(), token->c_str());
  return 0;
}

// Marks machines offline that missed their heartbeats, and leases of
// machines long offline lost, every half heartbeat interval.
void Sweep(net::io_context& ioc, machines::MachineRegistry& registry, tasks::TaskService& tasks) {
  auto timer = std::make_shared<net::steady_timer>(ioc, registry.heartbeat() / 2);
  timer->async_wait([&ioc, &registry, &tasks, timer](const boost::system::error_code& ec) {
    if (ec) return;
    registry.Sweep();
    tasks.Sweep();
    Sweep(ioc, registry, tasks);
  });
}

// Waits (polling, bounded) for open connections to finish after Shutdown.
void DrainThenStop(net::io_context& ioc, const http::HttpServer& server,
                   std::chrono::steady_clock::time_point deadline) {
  auto timer = std::make_shared<net::steady_timer>(ioc, std::chrono::milliseconds(20));
  timer->async_wait([&ioc, &server, deadline, timer](const boost::system::error_code&) {
    if (server.OpenConnections() == 0 || std::chrono::steady_clock::now() >= deadline) {
      if (server.OpenConnections() > 0) {
        spdlog::warn("shutdown: closing {} connection(s) still open", server.OpenConnections());
      }
      ioc.stop();
      return;
    }
    DrainThenStop(ioc, server, deadline);
  });
}

}  // namespace

int main(int argc, char** argv) {
  auto invocation = server::ParseCommandLine(argc, argv, GPUHUB_WEB_ROOT);
  if (!invocation.ok()) {
    std::fprintf(stderr, "%s\n", invocation.error().message.c_str());
    return 2;
  }
  if (invocation->exit_now) return *invocation->exit_now;
  const server::ServerConfig& config = invocation->config;
  if (auto s = SetupLogging(config.log_level); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.error().message.c_str());
    return 2;
  }
  if (auto s = accounts::InitCrypto(); !s.ok()) return Fail(s.error().message);

  const std::filesystem::path data(config.data_dir);
  if (auto s = MakeDirs(data.string()); !s.ok()) return Fail(s.error().message);
  // One gpuhubd per data dir; the offline `machine` commands only without it,
  // since a running server would not see their changes.
  auto lock = FileLock::Acquire((data / "gpuhubd.lock").string());
  if (!lock.ok() && lock.error().code == ErrorCode::kConflict) {
    return Fail(invocation->machine
                    ? "gpuhubd is running on " + config.data_dir +
                          ": use the admin API (/api/admin/machines) or stop it first"
                    : "another gpuhubd is already using the data dir " + config.data_dir);
  }
  if (!lock.ok()) return Fail(lock.error().message);
  auto store = store::OpenSqliteStore((data / "gpuhub.db").string());
  if (!store.ok()) return Fail(store.error().message);
  SystemClock clock;
  auto registry = machines::MachineRegistry::Open(**store, clock, config.heartbeat);
  if (!registry.ok()) return Fail(registry.error().message);
  if (invocation->machine) return RunMachineCommand(**registry, *invocation->machine);

  auto secret = accounts::LoadOrCreateSecret((data / "jwt-secret").string());
  if (!secret.ok()) return Fail(secret.error().message);

  accounts::TokenCodec codec(
      std::move(secret).value(), clock,
      std::chrono::duration_cast<std::chrono::seconds>(config.token_lifetime));
  auto accounts = accounts::Accounts::Open(
      **store, std::move(codec), clock,
      {.photos_dir = (data / "photos").string(),
       .avatars_dir = (std::filesystem::path(config.web_root) / "avatars").string(),
       .login_max_failures = config.login_max_failures,
       .login_window = config.login_window});
  if (!accounts.ok()) return Fail(accounts.error().message);
  auto admin =
      (*accounts)->EnsureAdmin(config.admin_password, (data / "initial-admin-password").string());
  if (!admin.ok()) return Fail(admin.error().message);

  ws::Hub hub(**accounts, **registry);  // before the io_context: sessions refer to it
  containers::ContainerService container_service(**store, hub, clock, config.agent_timeout);
  hub.SetContainers(&container_service);
  auto task_service = tasks::TaskService::Open(**store, hub, clock,
                                               {.max_duration = config.max_duration,
                                                .kill_grace = config.kill_grace,
                                                .lost_grace = config.lost_grace,
                                                .log_dir = (data / "task-logs").string()});
  if (!task_service.ok()) return Fail(task_service.error().message);
  hub.SetTasks(task_service->get());
  (*task_service)
      ->OnHoldersChanged(
          [&registry](const std::string& id, const tasks::TaskService::GpuHolders& holders) {
            (*registry)->SetGpuHolders(id, holders);
          });
  (*registry)->SetListener(
      [&hub](const std::string& id, bool online) { hub.BroadcastMachine(id, online); });
  (*registry)->SetChangeListener([&hub](const std::string& id) { hub.BroadcastMachineInfo(id); });
  net::io_context ioc(config.io_threads);
  net::thread_pool workers(static_cast<size_t>(config.worker_threads));
  http::Router router;
  api::ApiDeps deps{**accounts,          **registry, &container_service,
                    task_service->get(), workers,    clock,
                    config.photo_bytes,  nullptr,    clock.Now()};
  api::AddAuthRoutes(router, deps);
  api::AddUserRoutes(router, deps);
  api::AddAdminRoutes(router, deps);
  api::AddMachineRoutes(router, deps);
  api::AddContainerRoutes(router, deps);
  api::AddTaskRoutes(router, deps);
  api::AddSystemRoutes(router, deps);
  // The web UI: every other path is a file under web_root (small files, read
  // on the I/O thread).
  web::StaticFiles web_files(config.web_root);
  router.SetFallback([&web_files](http::Context& ctx) -> boost::asio::awaitable<http::Response> {
    co_return web_files.Serve(ctx.request);
  });

  http::HttpServer server(ioc, router,
                          {.body_bytes = config.body_bytes,
                           .header_bytes = config.header_bytes,
                           .idle_timeout = config.idle_timeout,
                           .read_timeout = config.read_timeout,
                           .write_timeout = config.write_timeout},
                          &hub);
  deps.server = &server;
  auto host_port = server::SplitHostPort(config.listen);
  boost::system::error_code ec;
  auto address = net::ip::make_address(host_port->first, ec);
  if (ec) return Fail("invalid listen address " + host_port->first + ": " + ec.message());
  auto bound = server.Start({address, host_port->second});
  if (!bound.ok()) return Fail(bound.error().message);
  spdlog::info("listening on {}:{}", bound->address().to_string(), bound->port());
  spdlog::info("data dir {}; {} I/O threads, {} workers", config.data_dir, config.io_threads,
               config.worker_threads);

  Sweep(ioc, **registry, **task_service);

  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& error, int signal) {
    if (error) return;
    spdlog::info("shutdown: signal {} received; no longer accepting connections", signal);
    server.Shutdown();
    hub.CloseAll();
    DrainThenStop(ioc, server, std::chrono::steady_clock::now() + config.shutdown_timeout);
  });

  std::vector<std::thread> threads;
  for (int i = 1; i < config.io_threads; ++i) threads.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : threads) t.join();
  workers.join();
  store->reset();  // closes the database
  spdlog::info("shutdown complete");
  return 0;
}
