// ContainerManager: carries out the server's container operations on this
// machine's container runtime (Docker or Podman, through DockerClient) and
// reports the gpuhub containers it finds there.
//
// A container is named proto::RuntimeName(account, name) and labelled with
// its owner and the server's id. It is never privileged, mounts nothing but
// the owner's directory under home_root (when set), starts with
// CUDA_VISIBLE_DEVICES empty, reaches GPUs only as gpu_runtime says, and
// publishes each requested port on a free host port of the configured range.
//
// Runs on one thread (the agent's io_context); operations may interleave.
// The DockerClient must outlive the manager.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "agent/runtime/docker_client.hpp"
#include "proto/containers.hpp"

namespace gpuhub::agent::runtime {

struct RuntimeOptions {
  int port_min = 40000;
  int port_max = 49999;
  std::string home_root;             // empty: no per-user volume
  std::string gpu_runtime = "none";  // none, nvidia, cdi
};

class ContainerManager {
 public:
  ContainerManager(DockerClient& docker, RuntimeOptions options);

  // Carries out one operation; never fails as a coroutine: failures are
  // ContainerResults with ok false and a code (proto::ContainerResult).
  boost::asio::awaitable<proto::ContainerResult> Handle(proto::ContainerOp op);

  // Every container with a gpuhub.container label.
  boost::asio::awaitable<Result<std::vector<proto::ContainerState>>> List();

 private:
  boost::asio::awaitable<proto::ContainerResult> Create(const proto::ContainerOp& op);
  boost::asio::awaitable<proto::ContainerResult> CreateAndStart(const proto::ContainerOp& op,
                                                                const std::string& name,
                                                                const std::vector<int>& ports);
  // Host ports for `count` container ports, not used by any gpuhub container,
  // not being handed out to another create, and free to bind right now.
  Result<std::vector<int>> AllocatePorts(size_t count,
                                         const std::vector<ContainerSummary>& existing);

  DockerClient& docker_;
  const RuntimeOptions options_;
  std::set<int> reserved_;  // host ports of creates in progress
  int next_port_;
};

// The Engine API body that creates `op`'s container with `host_ports`
// (parallel to op.ports). Pure.
nlohmann::json CreateBody(const proto::ContainerOp& op, const std::vector<int>& host_ports,
                          const RuntimeOptions& options);

// The ContainerState of a runtime container that carries the gpuhub labels;
// nullopt for one without a valid gpuhub.container label.
std::optional<proto::ContainerState> StateOf(const ContainerSummary& c);

}  // namespace gpuhub::agent::runtime
