#include "agent/runtime/container_manager.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <charconv>
#include <filesystem>

namespace gpuhub::agent::runtime {
namespace {

namespace net = boost::asio;
using nlohmann::json;
using Kind = proto::ContainerOp::Kind;

constexpr int kStopTimeoutSeconds = 10;

proto::ContainerResult Failure(const proto::ContainerOp& op, const Error& e) {
  proto::ContainerResult r;
  r.request_id = op.request_id;
  r.ok = false;
  switch (e.code) {
    case ErrorCode::kConflict:
      r.code = "conflict";
      break;
    case ErrorCode::kNotFound:
      r.code = "not_found";
      break;
    case ErrorCode::kInvalidArgument:
      r.code = "invalid";
      break;
    default:
      r.code = "unavailable";
  }
  r.message = e.message;
  return r;
}

proto::ContainerResult Success(const proto::ContainerOp& op,
                               std::optional<proto::ContainerState> state) {
  proto::ContainerResult r;
  r.request_id = op.request_id;
  r.ok = true;
  r.container = std::move(state);
  return r;
}

// True if nothing on this host listens on `port` (TCP, all addresses).
bool PortFree(int port) {
  net::io_context ioc;
  net::ip::tcp::acceptor acceptor(ioc);
  boost::system::error_code ec;
  acceptor.open(net::ip::tcp::v4(), ec);
  if (ec) return false;
  acceptor.bind({net::ip::tcp::v4(), static_cast<unsigned short>(port)}, ec);
  return !ec;
}

std::string CreateConflictMessage(const proto::ContainerOp& op) {
  return "A container named " + proto::RuntimeName(op.account, op.name) +
         " already exists on this machine";
}

// Makes home_root/<account> (0750) for the owner's volume.
Status EnsureHome(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error{ErrorCode::kUnavailable, "cannot create " + dir + ": " + ec.message()};
  std::filesystem::permissions(dir, std::filesystem::perms(0750), ec);
  return Status::Ok();
}

std::string HomeDir(const RuntimeOptions& o, const std::string& account) {
  return o.home_root + "/" + account;
}

}  // namespace

json CreateBody(const proto::ContainerOp& op, const std::vector<int>& host_ports,
                const RuntimeOptions& options) {
  json exposed = json::object();
  json bindings = json::object();
  for (size_t i = 0; i < op.ports.size(); ++i) {
    std::string key = std::to_string(op.ports[i]) + "/tcp";
    exposed[key] = json::object();
    bindings[key] = json::array({{{"HostIp", ""}, {"HostPort", std::to_string(host_ports[i])}}});
  }
  json host = {{"PortBindings", bindings},
               {"Privileged", false},
               {"RestartPolicy", {{"Name", "unless-stopped"}}},
               {"Binds", json::array()}};
  if (!options.home_root.empty()) {
    host["Binds"].push_back(HomeDir(options, op.account) + ":/home/" + op.account);
  }
  if (options.gpu_runtime == "nvidia") {
    host["DeviceRequests"] = json::array(
        {{{"Driver", "nvidia"}, {"Count", -1}, {"Capabilities", json::array({{"gpu"}})}}});
  } else if (options.gpu_runtime == "cdi") {
    host["Devices"] = json::array({{{"PathOnHost", "nvidia.com/gpu=all"},
                                    {"PathInContainer", "nvidia.com/gpu=all"},
                                    {"CgroupPermissions", "rwm"}}});
  }
  json env = json::array({"CUDA_VISIBLE_DEVICES="});
  if (options.gpu_runtime != "none") env.push_back("NVIDIA_VISIBLE_DEVICES=all");
  return {{"Image", op.image},
          {"Hostname", op.name},
          {"Env", env},
          {"Labels",
           {{proto::kOwnerLabel, op.account}, {proto::kContainerLabel, std::to_string(op.id)}}},
          {"ExposedPorts", exposed},
          {"HostConfig", host}};
}

std::optional<proto::ContainerState> StateOf(const ContainerSummary& c) {
  auto label = c.labels.find(proto::kContainerLabel);
  if (label == c.labels.end()) return std::nullopt;
  int64_t id = 0;
  const std::string& text = label->second;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || end != text.data() + text.size() || id < 1) return std::nullopt;
  proto::ContainerState s;
  s.id = id;
  s.runtime_id = c.id;
  s.status = c.state;
  for (const auto& p : c.ports) s.ports.push_back({p.container, p.host});
  return s;
}

ContainerManager::ContainerManager(DockerClient& docker, RuntimeOptions options)
    : docker_(docker), options_(std::move(options)), next_port_(options_.port_min) {}

Result<std::vector<int>> ContainerManager::AllocatePorts(
    size_t count, const std::vector<ContainerSummary>& existing) {
  std::set<int> used = reserved_;
  for (const auto& c : existing) {
    for (const auto& p : c.ports) used.insert(p.host);
  }
  std::vector<int> out;
  const int span = options_.port_max - options_.port_min + 1;
  for (int tried = 0; tried < span && out.size() < count; ++tried) {
    int port = next_port_;
    next_port_ = port == options_.port_max ? options_.port_min : port + 1;
    if (!used.contains(port) && PortFree(port)) out.push_back(port);
  }
  if (out.size() < count) {
    return Error{ErrorCode::kUnavailable, "no free host port left in " +
                                              std::to_string(options_.port_min) + "-" +
                                              std::to_string(options_.port_max)};
  }
  return out;
}

net::awaitable<Result<std::vector<proto::ContainerState>>> ContainerManager::List() {
  auto list = co_await docker_.ListContainers(proto::kContainerLabel);
  if (!list.ok()) co_return list.error();
  std::vector<proto::ContainerState> out;
  for (const auto& c : *list) {
    if (auto s = StateOf(c)) out.push_back(std::move(*s));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  co_return out;
}

net::awaitable<proto::ContainerResult> ContainerManager::Handle(proto::ContainerOp op) {
  if (op.op == Kind::kCreate) co_return co_await Create(op);
  const std::string name = proto::RuntimeName(op.account, op.name);
  Status s;
  if (op.op == Kind::kStart) {
    s = co_await docker_.StartContainer(name);
  } else if (op.op == Kind::kStop) {
    s = co_await docker_.StopContainer(name, kStopTimeoutSeconds);
  } else if (op.op == Kind::kRestart) {
    s = co_await docker_.RestartContainer(name, kStopTimeoutSeconds);
  } else {
    s = co_await docker_.RemoveContainer(name, /*force=*/true);
    // Already gone is what was asked for.
    if (s.ok() || s.error().code == ErrorCode::kNotFound) co_return Success(op, std::nullopt);
  }
  if (!s.ok()) co_return Failure(op, s.error());
  auto info = co_await docker_.InspectContainer(name);
  if (!info.ok()) co_return Failure(op, info.error());
  co_return Success(op, StateOf(*info));
}

net::awaitable<proto::ContainerResult> ContainerManager::Create(const proto::ContainerOp& op) {
  const std::string name = proto::RuntimeName(op.account, op.name);
  if (!options_.home_root.empty()) {
    if (auto s = EnsureHome(HomeDir(options_, op.account)); !s.ok()) {
      co_return Failure(op, s.error());
    }
  }
  auto present = co_await docker_.ImageExists(op.image);
  if (!present.ok()) co_return Failure(op, present.error());
  if (!*present) {
    spdlog::info("pulling image {} for container {}", op.image, name);
    if (auto s = co_await docker_.PullImage(op.image); !s.ok()) {
      co_return Failure(op, Error{ErrorCode::kUnavailable,
                                  "cannot pull image " + op.image + ": " + s.error().message});
    }
  }
  auto existing = co_await docker_.ListContainers(proto::kContainerLabel);
  if (!existing.ok()) co_return Failure(op, existing.error());
  auto ports = AllocatePorts(op.ports.size(), *existing);
  if (!ports.ok()) co_return Failure(op, ports.error());
  reserved_.insert(ports->begin(), ports->end());
  proto::ContainerResult result = co_await CreateAndStart(op, name, *ports);
  for (int p : *ports) reserved_.erase(p);
  co_return result;
}

net::awaitable<proto::ContainerResult> ContainerManager::CreateAndStart(
    const proto::ContainerOp& op, const std::string& name, const std::vector<int>& ports) {
  auto id = co_await docker_.CreateContainer(name, CreateBody(op, ports, options_));
  if (!id.ok()) {
    if (id.error().code == ErrorCode::kConflict) {
      co_return Failure(op, Conflict(CreateConflictMessage(op)));
    }
    co_return Failure(op, id.error());
  }
  if (auto s = co_await docker_.StartContainer(*id); !s.ok()) {
    (void)co_await docker_.RemoveContainer(*id, /*force=*/true);
    co_return Failure(op, Error{ErrorCode::kUnavailable,
                                "container " + name + " did not start: " + s.error().message});
  }
  auto info = co_await docker_.InspectContainer(*id);
  if (!info.ok()) co_return Failure(op, info.error());
  spdlog::info("created container {} for {}", name, op.account);
  co_return Success(op, StateOf(*info));
}

}  // namespace gpuhub::agent::runtime
