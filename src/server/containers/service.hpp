// ContainerService: users' containers on the machines (contract section 6)
// and the image catalog they are created from (section 5).
//
// The service checks input and ownership, keeps the container records in the
// Store, and forwards each operation to the machine's agent through an
// AgentCaller, answering once the agent has answered. A record's status
// follows what the agent reports: its answers, and its full reports of the
// machine's containers (Reconcile), where a container missing from the
// runtime becomes "gone" (unless its create is still waiting for the agent).
//
// Thread-safe. The Store and the AgentCaller must outlive it.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/result.hpp"
#include "proto/containers.hpp"
#include "server/accounts/accounts.hpp"
#include "server/containers/types.hpp"
#include "store/store.hpp"

namespace gpuhub::containers {

// How the service reaches agents (the WebSocket hub implements it).
class AgentCaller {
 public:
  virtual ~AgentCaller() = default;
  // Whether the machine's agent is connected now.
  virtual bool Connected(const std::string& machine_id) const = 0;
  // Sends `op` (its request_id is filled in) and waits for the agent's answer:
  // kUnavailable "Machine <id> is offline" when no agent is connected, or
  // "Machine <id> did not answer in time" after `timeout`.
  virtual boost::asio::awaitable<Result<proto::ContainerResult>> Call(
      const std::string& machine_id, proto::ContainerOp op, std::chrono::milliseconds timeout) = 0;
};

class ContainerService {
 public:
  ContainerService(store::Store& store, AgentCaller& agents, const Clock& clock,
                   std::chrono::milliseconds agent_timeout);

  // Creates and starts a container. 400 bad name/ports, 404 "Machine not
  // found"/"Image not found", 409 "Container name already taken", 503 when
  // the machine is offline or does not answer; the agent's own refusals keep
  // their code (a taken runtime name is 409).
  boost::asio::awaitable<Result<store::Container>> Create(const accounts::Principal& caller,
                                                          CreateRequest request);
  // start, stop, restart or delete (kCreate is not allowed here). 404
  // "Container not found", 403 "Permission denied" unless owner or admin.
  // Deleting a container the runtime no longer has ("gone") needs no agent.
  // A deleted container comes back with status "deleted".
  boost::asio::awaitable<Result<store::Container>> Act(const accounts::Principal& caller,
                                                       int64_t id, proto::ContainerOp::Kind op);
  // The caller's containers, or with `all` (admins only, else 403) everyone's.
  Result<std::vector<store::Container>> List(const accounts::Principal& caller, bool all);

  // An agent's full report of the gpuhub containers on its machine.
  void Reconcile(const std::string& machine_id,
                 const std::vector<proto::ContainerState>& containers);

  Result<std::vector<store::Image>> ListImages();
  // 400 for an empty or overlong field or an image reference with spaces.
  Result<store::Image> AddImage(const NewImage& image);
  // 404 "Image not found", 409 "Image is used by containers".
  Status RemoveImage(int64_t id);

 private:
  bool CreateInFlight(int64_t id) const;

  store::Store& store_;
  AgentCaller& agents_;
  const Clock& clock_;
  const std::chrono::milliseconds timeout_;
  mutable std::mutex mu_;
  std::set<int64_t> creating_;  // ids whose create awaits the agent; guarded by mu_
};

// Container names: 1-32 of a-z, 0-9 and '-', starting with a letter or digit
// (the name is also the container's host name).
Status ValidateContainerName(std::string_view name);
// 0-16 distinct ports 1-65535.
Status ValidatePorts(const std::vector<int>& ports);

// {"id","name","account","machine_id","image_id","image","status","ports":[{"container","host"}],"created_at"}
nlohmann::json ContainerJson(const store::Container& c);
// {"id","name","image","description"}
nlohmann::json ImageJson(const store::Image& image);

}  // namespace gpuhub::containers
