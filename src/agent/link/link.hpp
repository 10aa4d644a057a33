// AgentLink: the agent's connection to gpuhubd (docs/protocol.md).
//
// Connects out to the server's /ws/agent (ws:// or wss://), authenticates
// with the agent token and protocol version, sends a full inventory, then a
// heartbeat every interval (the configured one, or the server's if shorter)
// carrying only what changed since the last report.
// On any failure it reconnects forever with capped exponential backoff and
// jitter; a server restart is just another reconnect.
//
// Other messages of the server go to the OnMessage handlers; Send queues
// messages to the server (one write in flight; a server that stops reading
// for 1024 messages gets the connection closed).
//
// Runs on the io_context given at construction (use one thread). Start and
// Stop may be called from any thread; OnMessage and OnConnected are set
// before Start; Send is called on the link's thread.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "client/url.hpp"
#include "common/result.hpp"
#include "proto/inventory.hpp"

namespace gpuhub::agent {

// The agent protocol version this agent speaks.
inline constexpr int kProtocolVersion = 1;

// The server's URL; path is "/ws/agent" unless the URL names another.
using ServerUrl = client::Url;

// Parses "ws://HOST:PORT[/PATH]" or "wss://HOST[:PORT][/PATH]".
Result<ServerUrl> ParseServerUrl(std::string_view url);

// The delay before reconnect attempt `attempt` (0-based): initial * 2^attempt
// capped at `max`, times a random factor in [0.5, 1.0] (`unit` in [0, 1]).
std::chrono::milliseconds Backoff(int attempt, std::chrono::milliseconds initial,
                                  std::chrono::milliseconds max, double unit);

struct LinkOptions {
  ServerUrl server;
  std::string token;
  std::chrono::milliseconds heartbeat = std::chrono::seconds(5);
  std::chrono::milliseconds backoff_initial = std::chrono::milliseconds(500);
  std::chrono::milliseconds backoff_max = std::chrono::seconds(30);
  std::string agent_version = "gpuhub-agent 0.1.0";
};

class AgentLink {
 public:
  // `sample` measures the machine; it is called on the link's thread.
  AgentLink(boost::asio::io_context& ioc, LinkOptions options,
            std::function<proto::Inventory()> sample);

  // A server message other than an error, with its data ({} when absent).
  // Each handler added gets every message, in the order they were added.
  using MessageHandler = std::function<void(const std::string& type, const nlohmann::json& data)>;
  void OnMessage(MessageHandler handler) { on_message_.push_back(std::move(handler)); }
  // Called once per connection, after the inventory was queued (each one added, in order).
  void OnConnected(std::function<void()> f) { on_connected_.push_back(std::move(f)); }

  void Start();
  // Closes the connection and stops reconnecting.
  void Stop();

  // Queues a message for the server; false (and dropped) when not connected.
  bool Send(std::string_view type, nlohmann::json data);

  // For logs and tests: true while authenticated to the server.
  bool Connected() const { return connected_.load(); }

 private:
  boost::asio::awaitable<void> Run();
  template <class Ws>
  boost::asio::awaitable<Status> Converse(Ws& ws);

  boost::asio::io_context& ioc_;
  const LinkOptions options_;
  std::function<proto::Inventory()> sample_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> connected_{false};
  // Handles one text message from the server; false when it was an error.
  bool Dispatch(const std::string& text);

  std::vector<MessageHandler> on_message_;
  std::vector<std::function<void()>> on_connected_;
  std::function<void()> close_current_;       // on the link's thread only
  std::function<void(std::string)> enqueue_;  // set while connected; link's thread only
  boost::asio::steady_timer wait_;            // backoff and heartbeat waits
};

}  // namespace gpuhub::agent
