// gpuhub-agent: composes the inventory sampler and the server link, and runs
// them until SIGINT or SIGTERM.
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <set>

#include "agent/config.hpp"
#include "agent/inventory/fake_gpus.hpp"
#include "agent/inventory/nvml.hpp"
#include "agent/inventory/sampler.hpp"
#include "agent/link/link.hpp"
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
  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    spdlog::info("signal {} received; stopping", signal);
    link.Stop();
  });
  spdlog::info("gpuhub-agent starting: server {}, heartbeat {} ms, {}", config.server,
               config.heartbeat.count(), sampler.DescribeGpus());
  link.Start();
  ioc.run();
  return 0;
}
