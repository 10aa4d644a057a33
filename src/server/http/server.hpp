// HttpServer: the listener and the HTTP/1.1 connections of gpuhubd.
//
// One coroutine per connection on its own strand, keep-alive, the limits and
// timeouts of the contract (section 1): header block, body (per route through
// the Router), request read timeout, idle timeout. Errors sent before a
// request was fully read (413, 431, 400) are followed by a bounded drain so
// that the client sees them. Every request goes to the Router; WebSocket
// upgrades go to the upgrade handler when one is set.
//
// Thread-safety: Start and Shutdown may be called from any thread; the
// server runs on the io_context's threads. The Router must outlive it.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>

#include "common/result.hpp"
#include "server/http/router.hpp"

namespace gpuhub::http {

struct ServerLimits {
  size_t body_bytes = 1 << 20;
  size_t header_bytes = 16 << 10;
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  std::chrono::milliseconds read_timeout = std::chrono::seconds(15);
  std::chrono::milliseconds write_timeout = std::chrono::seconds(30);
  size_t drain_bytes = 1 << 20;  // read and discarded after an early error
};

// Counters for /metrics. All atomic; read them from any thread.
struct ServerStats {
  std::atomic<uint64_t> connections_total{0};
  std::atomic<int64_t> connections_open{0};
  std::atomic<uint64_t> requests_total{0};
  std::atomic<uint64_t> responses_2xx{0};
  std::atomic<uint64_t> responses_4xx{0};
  std::atomic<uint64_t> responses_5xx{0};
};

// Takes over connections that ask for a WebSocket upgrade on a path it
// accepts. Implementations are thread-safe.
class Upgrader {
 public:
  virtual ~Upgrader() = default;
  virtual bool Accepts(std::string_view path) const = 0;
  // Owns the connection from now on; `request` is the upgrade request.
  virtual void Upgrade(boost::beast::tcp_stream stream, Request request) = 0;
};

class HttpServer {
 public:
  // `upgrader` may be null (no WebSockets); it must outlive the server.
  HttpServer(boost::asio::io_context& ioc, const Router& router, ServerLimits limits,
             Upgrader* upgrader = nullptr);
  ~HttpServer();

  // Binds (with SO_REUSEADDR) and starts accepting. Returns the bound
  // endpoint, whose port is the chosen one when `endpoint` had port 0.
  Result<boost::asio::ip::tcp::endpoint> Start(const boost::asio::ip::tcp::endpoint& endpoint);

  // Stops accepting, closes idle connections and lets each in-flight request
  // finish and be answered (with Connection: close). Returns at once; use
  // OpenConnections() to wait.
  void Shutdown();
  bool ShuttingDown() const { return shared_->stopping.load(); }

  int64_t OpenConnections() const { return shared_->stats.connections_open.load(); }
  const ServerStats& Stats() const { return shared_->stats; }

 private:
  class Connection;
  // What connections share with the server. Held by shared_ptr so that a
  // connection destroyed late (with the io_context) touches no dead server.
  struct Shared {
    Shared(const Router& r, ServerLimits l, Upgrader* u) : router(r), limits(l), upgrader(u) {}
    const Router& router;
    const ServerLimits limits;
    Upgrader* const upgrader;
    ServerStats stats;
    std::atomic<bool> stopping{false};
    std::mutex mu;
    std::set<std::weak_ptr<Connection>, std::owner_less<>> connections;  // guarded by mu
  };
  boost::asio::awaitable<void> Accept();

  boost::asio::io_context& ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace gpuhub::http
