// Hub: the WebSockets of gpuhubd, /ws for browsers and /ws/agent for agents.
//
// Browsers authenticate with their first message (a user token, within 10 s),
// then send container operations (answered with their request_id) and
// receive events: {"type":"machine","data":{"id","online"}} when a machine
// goes on or off line. Agents authenticate with their agent token and
// protocol version (docs/protocol.md), then send inventory and heartbeats
// (to the MachineRegistry), container reports (to the ContainerService) and
// the answers to the container operations the hub sends them (Call).
//
// Each session has a bounded write queue (one write in flight); a browser
// that does not keep up is disconnected rather than buffered without end.
// Thread-safe; sessions run on their own strands. Accounts and the registry
// must outlive the hub, and the hub must outlive the io_context its sessions
// run on (declare it first).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "server/accounts/accounts.hpp"
#include "server/containers/service.hpp"
#include "server/http/server.hpp"
#include "server/machines/registry.hpp"
#include "server/tasks/service.hpp"

namespace gpuhub::ws {

// The agent protocol version this server speaks (docs/protocol.md).
inline constexpr int kAgentProtocolVersion = 1;

class Session;

class Hub final : public http::Upgrader, public containers::AgentCaller, public tasks::TaskLink {
 public:
  Hub(accounts::Accounts& accounts, machines::MachineRegistry& registry);
  ~Hub() override;

  // The service behind container messages; set before the server starts.
  void SetContainers(containers::ContainerService* service) { containers_ = service; }
  // The service behind lease messages; set before the server starts.
  void SetTasks(tasks::TaskService* service) { tasks_ = service; }

  // tasks::TaskLink.
  bool SendToAgent(const std::string& machine_id, std::string_view type,
                   nlohmann::json data) override;
  void SendToUser(int64_t user_id, const nlohmann::json& task) override;

  // containers::AgentCaller. Call must run on a strand (every session and
  // HTTP connection of gpuhubd does).
  bool Connected(const std::string& machine_id) const override;
  boost::asio::awaitable<Result<proto::ContainerResult>> Call(
      const std::string& machine_id, proto::ContainerOp op,
      std::chrono::milliseconds timeout) override;

  bool Accepts(std::string_view path) const override;
  void Upgrade(boost::beast::tcp_stream stream, http::Request request) override;

  // Sends a machine event to every signed-in browser.
  void BroadcastMachine(const std::string& id, bool online);
  // Sends {"type":"machine_info","data":<the machine as in
  // /api/machines/info>} to the browsers that subscribed to machines.
  void BroadcastMachineInfo(const std::string& id);

  // Closes every session (server shutdown).
  void CloseAll();
  size_t OpenSessions() const;

  // Internal: sessions register and unregister themselves, agent sessions
  // also as the current link of their machine, and deliver agents' answers.
  void Track(const std::shared_ptr<Session>& s);
  void Untrack(const Session* s);
  void AttachAgent(const std::string& machine_id, const std::shared_ptr<Session>& s);
  // False when `s` was no longer the machine's link (replaced).
  bool DetachAgent(const std::string& machine_id, const Session* s);
  void Resolve(const std::string& machine_id, proto::ContainerResult result);
  // A browser subscribed to machine_info events (on) or stopped (off).
  void CountMachineSubscriber(bool on) { machine_subscribers_ += on ? 1 : -1; }

  accounts::Accounts& accounts() { return accounts_; }
  machines::MachineRegistry& registry() { return registry_; }
  containers::ContainerService* containers() { return containers_; }
  tasks::TaskService* tasks() { return tasks_; }

 private:
  struct PendingCall;
  // Ends the waits of `machine_id`'s calls (every machine's when empty).
  void FailPending(const std::string& machine_id, const std::string& message);
  // Sends `text` to every session for which wanted(session) holds.
  template <typename Pred>
  void SendWhere(const std::string& text, Pred wanted);

  accounts::Accounts& accounts_;
  machines::MachineRegistry& registry_;
  containers::ContainerService* containers_ = nullptr;
  tasks::TaskService* tasks_ = nullptr;
  mutable std::mutex mu_;
  std::map<const Session*, std::weak_ptr<Session>> sessions_;    // guarded by mu_
  std::map<std::string, std::weak_ptr<Session>> agents_;         // machine -> link; guarded by mu_
  std::map<std::string, std::shared_ptr<PendingCall>> pending_;  // by request id; guarded by mu_
  uint64_t next_request_ = 1;                                    // guarded by mu_
  std::atomic<int> machine_subscribers_{0};  // browsers subscribed to machine_info
};

}  // namespace gpuhub::ws
