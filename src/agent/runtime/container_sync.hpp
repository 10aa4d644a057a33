// ContainerSync: connects the agent's server link to its ContainerManager.
//
// Carries out the server's "container" messages and answers each with a
// "container_result"; sends a "containers" report of every gpuhub container
// on this machine after each (re)connection, whenever a poll of the runtime
// finds the set or a status changed, and on the first poll after it answered
// an operation (the answer may contradict the last report). A poll that cannot reach the
// runtime sends nothing (the server keeps what it knew) and is logged once.
// Without a manager (no --docker-host) every operation is refused with a
// message saying so.
//
// Runs on the link's io_context (one thread). The link and the manager must
// outlive it; Start once, before the link starts.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <optional>
#include <vector>

#include "agent/link/link.hpp"
#include "agent/runtime/container_manager.hpp"

namespace gpuhub::agent::runtime {

class ContainerSync {
 public:
  ContainerSync(boost::asio::io_context& ioc, AgentLink& link, ContainerManager* manager,
                std::chrono::milliseconds poll_interval);

  void Start();
  void Stop();

 private:
  void OnMessage(const std::string& type, const nlohmann::json& data);
  boost::asio::awaitable<void> Run(proto::ContainerOp op);
  boost::asio::awaitable<void> Poll();

  boost::asio::io_context& ioc_;
  AgentLink& link_;
  ContainerManager* manager_;
  const std::chrono::milliseconds poll_interval_;
  boost::asio::steady_timer timer_;
  std::optional<std::vector<proto::ContainerState>> sent_;  // last report on this connection
  // Operations answered so far, and how many had been when the list of the
  // last report was taken. An answer tells the server a container's state
  // that the last report may contradict (a container created and removed by
  // hand between two polls never shows in a list), so the first list taken
  // after an answer is reported even when it equals the last report.
  uint64_t answered_ = 0;
  uint64_t answered_reported_ = 0;
  bool runtime_down_logged_ = false;
  bool stopping_ = false;
};

}  // namespace gpuhub::agent::runtime
