// gpuhub-agent: composes the inventory sampler, the server link, the
// container operations and the lease runner, and runs them until SIGINT or
// SIGTERM.
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <set>

#include "agent/config.hpp"
#include "agent/inventory/fake_gpus.hpp"
#include "agent/inventory/nvml.hpp"
#include "agent/inventory/sampler.hpp"
#include "agent/leases/lease_runner.hpp"
#include "agent/leases/lease_store.hpp"
#include "agent/link/link.hpp"
#include "agent/runtime/container_manager.hpp"
#include "agent/runtime/container_sync.hpp"
#include "agent/runtime/docker_client.hpp"
#include "common/clock.hpp"
#include "common/log.hpp"

namespace net = boost::asio;
using namespace gpuhub;

namespace {

std::unique_ptr<agent::GpuSource> OpenGpus(const agent::AgentConfig& config) {
  if (!config.fake_gpus.empty()) {
    spdlog::info("GPUs are simulated from {}", config.fake_gpus);
    return std::make_unique<agent::FakeGpuSource>(config.fake_gpus);
  }
  std::string why_not;
  auto nvml = agent::NvmlGpuSource::Open(&why_not);
  if (!nvml) spdlog::warn("no NVIDIA GPUs will be reported: {}", why_not);
  return nvml;
}

// The lease state directory's store and the leases of the previous run. Without a usable
// directory the agent still runs, keeping its leases in memory only (and says so).
std::unique_ptr<agent::leases::LeaseStore> OpenLeases(
    const agent::AgentConfig& config, std::vector<agent::leases::LeaseRecord>& out) {
  auto store = agent::leases::LeaseStore::Open(config.state_dir);
  if (!store.ok()) {
    spdlog::error("leases will not survive an agent restart: {}", store.error().message);
    return nullptr;
  }
  auto result = std::make_unique<agent::leases::LeaseStore>(std::move(store).value());
  auto loaded = result->Load();
  if (!loaded.ok() && loaded.error().code == ErrorCode::kInvalidArgument) {
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    auto moved = result->Quarantine(now);
    spdlog::error("the lease file is unreadable ({}); moved to {}; starting without its leases",
                  loaded.error().message, moved.ok() ? *moved : moved.error().message);
    if (!moved.ok()) return nullptr;
    return result;
  }
  if (!loaded.ok()) {
    spdlog::error("leases will not survive an agent restart: {}", loaded.error().message);
    return nullptr;
  }
  for (const auto& p : loaded->problems) spdlog::error("{}: skipped {}", result->path(), p);
  out = std::move(loaded->leases);
  spdlog::info("leases kept in {} ({} known)", result->path(), out.size());
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  auto invocation = agent::ParseAgentCommandLine(argc, argv);
  if (!invocation.ok()) {
    std::fprintf(stderr, "%s\n", invocation.error().message.c_str());
    return 2;
  }
  if (invocation->exit_now) return *invocation->exit_now;
  const agent::AgentConfig& config = invocation->config;
  if (auto s = SetupLogging(config.log_level); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.error().message.c_str());
    return 2;
  }
  auto url = agent::ParseServerUrl(config.server);
  if (!url.ok()) {
    std::fprintf(stderr, "%s\n", url.error().message.c_str());
    return 2;
  }

  agent::InventorySampler sampler(OpenGpus(config), config.disk_path);
  std::set<std::string> reported;  // each measuring problem is logged once
  auto sample = [&sampler, &reported] {
    std::vector<std::string> problems;
    proto::Inventory inv = sampler.Sample(&problems);
    for (auto& p : problems) {
      if (reported.insert(p).second) spdlog::warn("{}", p);
    }
    return inv;
  };

  net::io_context ioc(1);
  agent::AgentLink link(ioc, {.server = *url, .token = config.token, .heartbeat = config.heartbeat},
                        sample);

  std::unique_ptr<agent::runtime::DockerClient> docker;
  std::unique_ptr<agent::runtime::ContainerManager> containers;
  if (config.docker_host.empty()) {
    spdlog::warn(
        "no container runtime configured (--docker-host unix:///PATH): users cannot create "
        "containers on this machine");
  } else {
    auto socket = agent::runtime::ParseDockerHost(config.docker_host);
    if (!socket.ok()) {
      std::fprintf(stderr, "%s\n", socket.error().message.c_str());
      return 2;
    }
    docker = std::make_unique<agent::runtime::DockerClient>(*socket, std::chrono::seconds(30));
    containers = std::make_unique<agent::runtime::ContainerManager>(
        *docker, agent::runtime::RuntimeOptions{.port_min = config.port_min,
                                                .port_max = config.port_max,
                                                .home_root = config.home_root,
                                                .gpu_runtime = config.gpu_runtime});
    spdlog::info("containers through {} (host ports {}-{}, GPU runtime {})", config.docker_host,
                 config.port_min, config.port_max, config.gpu_runtime);
  }
  agent::runtime::ContainerSync sync(ioc, link, containers.get(), config.heartbeat);
  sync.Start();

  std::vector<agent::leases::LeaseRecord> previous;
  auto lease_store = OpenLeases(config, previous);
  SystemClock clock;
  agent::leases::LeaseRunner leases(ioc, clock, docker.get(), lease_store.get(),
                                    agent::leases::ProcessTree("/proc"),
                                    [&link](std::string_view type, nlohmann::json data) {
                                      return link.Send(type, std::move(data));
                                    });
  leases.Restore(std::move(previous));
  link.OnMessage([&leases](const std::string& type, const nlohmann::json& data) {
    leases.OnMessage(type, data);
  });
  link.OnConnected([&leases] { leases.OnConnected(); });
  leases.Start();

  net::signal_set signals(ioc, SIGINT, SIGTERM);
  net::steady_timer shutdown(ioc);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    spdlog::info("signal {} received; stopping", signal);
    leases.Stop();
    sync.Stop();
    link.Stop();
    // Reading a running command's output never ends by itself: the commands run on
    // without the agent (the next one resumes their leases).
    if (leases.Busy()) {
      shutdown.expires_after(std::chrono::seconds(1));
      shutdown.async_wait([&ioc](const boost::system::error_code&) { ioc.stop(); });
    }
  });
  spdlog::info("gpuhub-agent starting: server {}, heartbeat {} ms, {}", config.server,
               config.heartbeat.count(), sampler.DescribeGpus());
  link.Start();
  ioc.run();
  return 0;
}
