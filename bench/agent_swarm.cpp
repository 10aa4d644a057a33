// agent_swarm: N simulated gpuhub agents against one gpuhubd, for
// bench/machines-info-load.
//
// It logs in as admin, registers the machines PREFIX0 .. PREFIX(N-1) through
// POST /api/admin/machines (or gives an existing one a new token), then opens
// one WebSocket /ws/agent per machine at --rate connections per second. Each
// agent authenticates, sends an inventory of 8 GPUs and then a heartbeat every
// --heartbeat seconds (a share --changes of them carry a changed cpu usage and
// GPU utilization). It prints "ready N" once all N are authenticated and have
// sent their inventory, then keeps heartbeating until SIGINT/SIGTERM.
//
//   agent_swarm --server 127.0.0.1:PORT --count 1000 [--prefix swarm-]
//               [--password P] [--heartbeat 5] [--rate 500] [--changes 0.1]
//               [--register-conns 4]
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using nlohmann::json;

namespace {

struct Options {
  std::string host = "127.0.0.1";
  std::string port;
  int count = 1000;
  std::string prefix = "swarm-";
  std::string password;
  double heartbeat = 5.0;
  int rate = 500;
  double changes = 0.1;
  int register_conns = 4;
};

struct Stats {
  int registered = 0;
  int connected = 0;
  int authed = 0;
  int ready = 0;
  int failed = 0;
  int disconnected = 0;
  uint64_t heartbeats = 0;
  uint64_t errors_received = 0;
  bool ready_printed = false;
  bool stopping = false;
};

Options opt;
Stats stats;
std::string admin_token;
std::vector<std::string> tokens;

auto Redirect(beast::error_code& ec) { return net::redirect_error(net::use_awaitable, ec); }

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "agent_swarm: " << what << std::endl;
  std::exit(1);
}

std::string MachineId(int i) { return opt.prefix + std::to_string(i); }

// One keep-alive HTTP/1.1 connection to the server.
class HttpClient {
 public:
  explicit HttpClient(net::any_io_executor ex) : stream_(ex) {}

  net::awaitable<void> Connect(const tcp::resolver::results_type& eps) {
    beast::error_code ec;
    co_await stream_.async_connect(eps, Redirect(ec));
    if (ec) Die("connect to " + opt.host + ":" + opt.port + ": " + ec.message());
  }

  // Sends a request with a JSON body; returns the status and the parsed body.
  net::awaitable<std::pair<int, json>> Post(const std::string& target, const json& body) {
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, target, 11};
    req.set(bhttp::field::host, opt.host);
    req.set(bhttp::field::content_type, "application/json");
    if (!admin_token.empty()) req.set(bhttp::field::authorization, "Bearer " + admin_token);
    req.keep_alive(true);
    req.body() = body.dump();
    req.prepare_payload();
    beast::error_code ec;
    co_await bhttp::async_write(stream_, req, Redirect(ec));
    if (ec) Die("POST " + target + ": " + ec.message());
    bhttp::response<bhttp::string_body> res;
    co_await bhttp::async_read(stream_, buffer_, res, Redirect(ec));
    if (ec) Die("POST " + target + " (reading the answer): " + ec.message());
    json j = json::parse(res.body(), nullptr, false);
    co_return std::pair<int, json>{static_cast<int>(res.result_int()), std::move(j)};
  }

 private:
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

json Gpus(std::mt19937& rng, bool with_processes) {
  json gpus = json::array();
  std::uniform_int_distribution<int> util(0, 100);
  for (int g = 0; g < 8; ++g) {
    json o = {{"index", g},
              {"uuid", "GPU-" + std::to_string(rng()) + "-" + std::to_string(g)},
              {"name", "NVIDIA A100-SXM4-80GB"},
              {"memory_total", 81920},
              {"memory_used", 1024 + util(rng) * 100},
              {"utilization", util(rng)},
              {"temperature", 30 + util(rng) / 2},
              {"processes", json::array()}};
    if (!with_processes) o.erase("processes");
    gpus.push_back(std::move(o));
  }
  return gpus;
}

net::awaitable<void> Register(int first, int step, tcp::resolver::results_type eps) {
  HttpClient http(co_await net::this_coro::executor);
  co_await http.Connect(eps);
  for (int i = first; i < opt.count; i += step) {
    json add = {{"id", MachineId(i)}};
    std::pair<int, json> r = co_await http.Post("/api/admin/machines", add);
    if (r.first / 100 != 2) {
      // Already there from an earlier run: give it a new token.
      std::string target = "/api/admin/machines/" + MachineId(i) + "/token";
      json none = json::object();
      r = co_await http.Post(target, none);
    }
    int status = r.first;
    const json& body = r.second;
    if (status / 100 != 2 || !body.is_object() || !body.contains("agent_token")) {
      Die("registering " + MachineId(i) + " failed: HTTP " + std::to_string(status) + " " +
          body.dump());
    }
    tokens[static_cast<size_t>(i)] = body["agent_token"].get<std::string>();
    if (++stats.registered % 1000 == 0) {
      std::cout << "registered " << stats.registered << std::endl;
    }
  }
}

void MaybeReady() {
  if (!stats.ready_printed && stats.ready == opt.count) {
    stats.ready_printed = true;
    std::cout << "ready " << stats.ready << std::endl;
  }
}

// Reads (and so answers pings) until the connection ends.
net::awaitable<void> ReadLoop(std::shared_ptr<websocket::stream<beast::tcp_stream>> ws,
                              std::shared_ptr<bool> closed) {
  beast::flat_buffer buf;
  beast::error_code ec;
  for (;;) {
    buf.clear();
    co_await ws->async_read(buf, Redirect(ec));
    if (ec) break;
    ++stats.errors_received;  // after auth the server only sends errors
    if (stats.errors_received <= 5) {
      std::cerr << "server said: " << beast::buffers_to_string(buf.data()) << std::endl;
    }
  }
  *closed = true;
}

net::awaitable<void> Agent(int i, tcp::resolver::results_type eps) {
  auto ex = co_await net::this_coro::executor;
  std::mt19937 rng(static_cast<unsigned>(i) * 2654435761u + 1);
  auto ws = std::make_shared<websocket::stream<beast::tcp_stream>>(ex);
  beast::error_code ec;
  co_await beast::get_lowest_layer(*ws).async_connect(eps, Redirect(ec));
  if (!ec) {
    ++stats.connected;
    co_await ws->async_handshake(opt.host + ":" + opt.port, "/ws/agent", Redirect(ec));
  }
  std::string text;
  if (!ec) {
    text = json{{"type", "auth"},
                {"data",
                 {{"token", tokens[static_cast<size_t>(i)]},
                  {"version", "1"},
                  {"agent", "agent_swarm"}}}}
               .dump();
    co_await ws->async_write(net::buffer(text), Redirect(ec));
  }
  beast::flat_buffer buf;
  if (!ec) co_await ws->async_read(buf, Redirect(ec));
  if (ec) {
    if (++stats.failed <= 5) std::cerr << MachineId(i) << ": " << ec.message() << std::endl;
    co_return;
  }
  json answer = json::parse(beast::buffers_to_string(buf.data()), nullptr, false);
  if (!answer.is_object() || answer.value("type", "") != "auth") {
    if (++stats.failed <= 5) {
      std::cerr << MachineId(i) << ": auth refused: " << beast::buffers_to_string(buf.data())
                << std::endl;
    }
    co_return;
  }
  ++stats.authed;
  double hb = opt.heartbeat;
  if (answer["data"].contains("heartbeat") && answer["data"]["heartbeat"].is_number()) {
    hb = std::min(hb, answer["data"]["heartbeat"].get<double>());
  }
  json inv = {
      {"hostname", MachineId(i)},
      {"ip", ""},
      {"gpu", Gpus(rng, true)},
      {"cpu", {{"name", "AMD EPYC 7742 64-Core Processor"}, {"cores", 128}, {"usage", 12.5}}},
      {"memory", {{"total", 515396}, {"used", 12345}}},
      {"disk", {{"total", 3724}, {"used", 1200}}}};
  text = json{{"type", "inventory"}, {"data", std::move(inv)}}.dump();
  co_await ws->async_write(net::buffer(text), Redirect(ec));
  if (ec) {
    ++stats.failed;
    co_return;
  }
  ++stats.ready;
  MaybeReady();
  auto closed = std::make_shared<bool>(false);
  net::co_spawn(ex, ReadLoop(ws, closed), net::detached);

  const std::string empty = R"({"type":"heartbeat","data":{"changes":{}}})";
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  net::steady_timer timer(ex);
  // Spread the heartbeats over the interval.
  auto period = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(hb));
  auto next = std::chrono::steady_clock::now() +
              std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                  std::chrono::duration<double>(hb * unit(rng)));
  while (!stats.stopping && !*closed) {
    timer.expires_at(next);
    co_await timer.async_wait(Redirect(ec));
    if (stats.stopping || *closed) break;
    next += period;
    if (unit(rng) < opt.changes) {
      json changes = {{"cpu",
                       {{"name", "AMD EPYC 7742 64-Core Processor"},
                        {"cores", 128},
                        {"usage", std::round(unit(rng) * 1000) / 10}}},
                      {"gpu", Gpus(rng, true)}};
      text = json{{"type", "heartbeat"}, {"data", {{"changes", std::move(changes)}}}}.dump();
    } else {
      text = empty;
    }
    co_await ws->async_write(net::buffer(text), Redirect(ec));
    if (ec) break;
    ++stats.heartbeats;
  }
  ++stats.disconnected;
  if (!stats.stopping && stats.disconnected <= 5) {
    std::cerr << MachineId(i) << ": connection ended" << (ec ? ": " + ec.message() : "")
              << std::endl;
  }
  beast::get_lowest_layer(*ws).socket().close(ec);
}

net::awaitable<void> Main() {
  auto ex = co_await net::this_coro::executor;
  tcp::resolver resolver(ex);
  beast::error_code ec;
  auto eps = co_await resolver.async_resolve(opt.host, opt.port, Redirect(ec));
  if (ec) Die("resolve " + opt.host + ": " + ec.message());

  {
    HttpClient http(ex);
    co_await http.Connect(eps);
    json login = {{"account", "admin"}, {"password", opt.password}};
    std::pair<int, json> r = co_await http.Post("/api/auth/login", login);
    int status = r.first;
    const json& body = r.second;
    if (status != 200 || !body.is_object() || !body.contains("access_token")) {
      Die("admin login failed: HTTP " + std::to_string(status) + " " + body.dump());
    }
    admin_token = body["access_token"].get<std::string>();
  }

  auto t0 = std::chrono::steady_clock::now();
  tokens.assign(static_cast<size_t>(opt.count), "");
  int conns = std::max(1, std::min(opt.register_conns, opt.count));
  auto done = std::make_shared<int>(0);
  for (int c = 0; c < conns; ++c) {
    net::co_spawn(ex, Register(c, conns, eps), [done](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
      ++*done;
    });
  }
  net::steady_timer timer(ex);
  while (*done < conns) {
    timer.expires_after(std::chrono::milliseconds(20));
    co_await timer.async_wait(Redirect(ec));
  }
  double reg_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "registered " << opt.count << " machines in " << reg_s << " s" << std::endl;

  // The connect ramp: opt.rate per second, in 10 ms steps.
  t0 = std::chrono::steady_clock::now();
  int started = 0;
  auto step = std::chrono::milliseconds(10);
  auto next = std::chrono::steady_clock::now();
  while (started < opt.count && !stats.stopping) {
    int target = static_cast<int>(
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() *
                     opt.rate) +
                 1;
    for (; started < std::min(target, opt.count); ++started) {
      net::co_spawn(ex, Agent(started, eps), net::detached);
    }
    next += step;
    timer.expires_at(next);
    co_await timer.async_wait(Redirect(ec));
  }
  // Progress until stopped.
  auto last = std::chrono::steady_clock::now();
  while (!stats.stopping) {
    timer.expires_after(std::chrono::milliseconds(200));
    co_await timer.async_wait(Redirect(ec));
    auto now = std::chrono::steady_clock::now();
    if (now - last >= std::chrono::seconds(stats.ready_printed ? 30 : 2)) {
      last = now;
      std::cout << "connected " << stats.connected << " authed " << stats.authed << " ready "
                << stats.ready << " failed " << stats.failed << " disconnected "
                << stats.disconnected << " heartbeats " << stats.heartbeats << " errors "
                << stats.errors_received << std::endl;
    }
    if (!stats.ready_printed && stats.ready + stats.failed == opt.count && stats.failed > 0) {
      std::cout << "not ready: " << stats.failed << " of " << opt.count << " failed" << std::endl;
      std::exit(2);
    }
  }
}

void Usage() {
  std::cerr << "usage: agent_swarm --server HOST:PORT --count N [--prefix swarm-] "
               "[--password P] [--heartbeat 5] [--rate 500] [--changes 0.1] "
               "[--register-conns 4]\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string server;
  for (size_t i = 0; i < args.size(); ++i) {
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) Usage();
      return args[++i];
    };
    const std::string& a = args[i];
    if (a == "--server")
      server = value();
    else if (a == "--count")
      opt.count = std::stoi(value());
    else if (a == "--prefix")
      opt.prefix = value();
    else if (a == "--password")
      opt.password = value();
    else if (a == "--heartbeat")
      opt.heartbeat = std::stod(value());
    else if (a == "--rate")
      opt.rate = std::stoi(value());
    else if (a == "--changes")
      opt.changes = std::stod(value());
    else if (a == "--register-conns")
      opt.register_conns = std::stoi(value());
    else
      Usage();
  }
  auto colon = server.rfind(':');
  if (colon == std::string::npos || opt.count <= 0 || opt.rate <= 0 || opt.heartbeat <= 0) {
    Usage();
  }
  opt.host = server.substr(0, colon);
  opt.port = server.substr(colon + 1);
  if (opt.password.empty()) {
    const char* p = std::getenv("GPUHUB_ADMIN_PASSWORD");
    opt.password = p ? p : "";
  }

  net::io_context ioc(1);
  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const beast::error_code&, int) {
    stats.stopping = true;
    std::cout << "stopping: " << stats.ready << " agents, " << stats.heartbeats << " heartbeats"
              << std::endl;
    ioc.stop();
  });
  net::co_spawn(ioc, Main(), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  ioc.run();
  return 0;
}
