// Hub: the WebSockets of gpuhubd, /ws for browsers and /ws/agent for agents.
//
// Browsers authenticate with their first message (a user token, within 10 s)
// and then receive events: {"type":"machine","data":{"id","online"}} when a
// machine goes on or off line. Agents authenticate with their agent token and
// protocol version (docs/protocol.md), then send inventory and heartbeats,
// which go to the MachineRegistry.
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
#include "server/http/server.hpp"
#include "server/machines/registry.hpp"

namespace gpuhub::ws {

// The agent protocol version this server speaks (docs/protocol.md).
inline constexpr int kAgentProtocolVersion = 1;

class Session;

class Hub final : public http::Upgrader {
 public:
  Hub(accounts::Accounts& accounts, machines::MachineRegistry& registry);
  ~Hub() override;

  bool Accepts(std::string_view path) const override;
  void Upgrade(boost::beast::tcp_stream stream, http::Request request) override;

  // Sends a machine event to every signed-in browser.
  void BroadcastMachine(const std::string& id, bool online);

  // Closes every session (server shutdown).
  void CloseAll();
  size_t OpenSessions() const;

  // Internal: sessions register and unregister themselves.
  void Track(const std::shared_ptr<Session>& s);
  void Untrack(const Session* s);

  accounts::Accounts& accounts() { return accounts_; }
  machines::MachineRegistry& registry() { return registry_; }

 private:
  accounts::Accounts& accounts_;
  machines::MachineRegistry& registry_;
  mutable std::mutex mu_;
  std::map<const Session*, std::weak_ptr<Session>> sessions_;  // guarded by mu_
};

}  // namespace gpuhub::ws
