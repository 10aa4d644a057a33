#include "server/containers/service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "common/time_util.hpp"

namespace gpuhub::containers {
namespace {

using Kind = proto::ContainerOp::Kind;

constexpr size_t kMaxPorts = 16;
constexpr size_t kMaxImageName = 100;
constexpr size_t kMaxImageRef = 255;
constexpr size_t kMaxDescription = 1000;
constexpr const char* kCreating = "creating";
constexpr const char* kGone = "gone";

bool IsNameChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

// "c-" and six hex digits.
std::string GeneratedName() {
  static thread_local std::mt19937 rng{std::random_device{}()};
  constexpr const char* kHex = "0123456789abcdef";
  std::string name = "c-";
  for (int i = 0; i < 6; ++i) name += kHex[rng() % 16];
  return name;
}

// The error an agent's refusal stands for.
Error AgentError(const proto::ContainerResult& r) {
  if (r.code == "conflict") return Conflict(r.message);
  if (r.code == "not_found") return NotFound(r.message);
  if (r.code == "invalid") return InvalidArgument(r.message);
  return {ErrorCode::kUnavailable, r.message};
}

proto::ContainerOp OpFor(const store::Container& c, Kind kind) {
  proto::ContainerOp op;
  op.op = kind;
  op.id = c.id;
  op.account = c.account;
  op.name = c.name;
  if (kind == Kind::kCreate) {
    op.image = c.image;
    for (const auto& p : c.ports) op.ports.push_back(p.container);
  }
  return op;
}

// Copies what the agent saw into the record; true if anything changed.
bool Apply(store::Container& c, const proto::ContainerState& s) {
  std::vector<store::PortMapping> ports;
  for (const auto& p : s.ports) ports.push_back({p.container, p.host});
  // Keep the requested ports of a container that is not running (the runtime
  // shows no bindings then), so users still see what it publishes.
  if (ports.empty() && !c.ports.empty() && s.status != "running") ports = c.ports;
  bool changed = c.status != s.status || c.ports != ports || c.runtime_id != s.runtime_id;
  c.status = s.status;
  c.ports = std::move(ports);
  c.runtime_id = s.runtime_id;
  return changed;
}

Status Persist(store::Store& store, const store::Container& c) {
  auto s = store.UpdateContainer(c);
  if (!s.ok() && s.error().code != ErrorCode::kNotFound) {
    spdlog::error("container {}: cannot store its state: {}", c.id, s.error().message);
  }
  return s;
}

bool MayAct(const accounts::Principal& caller, const store::Container& c) {
  return caller.IsAdmin() || caller.user_id == c.user_id;
}

// 404 for an unknown machine, else 503: it is offline.
Error OfflineError(store::Store& store, const std::string& machine_id) {
  auto machines = store.ListMachines();
  if (!machines.ok()) return machines.error();
  bool known = std::any_of(machines->begin(), machines->end(),
                           [&](const store::Machine& m) { return m.id == machine_id; });
  if (!known) return NotFound("Machine not found");
  return {ErrorCode::kUnavailable, "Machine " + machine_id + " is offline"};
}

Error PermissionDenied() { return {ErrorCode::kPermissionDenied, "Permission denied"}; }

}  // namespace

ContainerService::ContainerService(store::Store& store, AgentCaller& agents, const Clock& clock,
                                   std::chrono::milliseconds agent_timeout)
    : store_(store), agents_(agents), clock_(clock), timeout_(agent_timeout) {}

Status ValidateContainerName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 32 && name[0] != '-' &&
            std::all_of(name.begin(), name.end(), IsNameChar);
  if (ok) return Status::Ok();
  return InvalidArgument(
      "name must be 1-32 characters of a-z, 0-9 or '-', starting with a letter or digit");
}

Status ValidatePorts(const std::vector<int>& ports) {
  if (ports.size() > kMaxPorts) return InvalidArgument("port: at most 16 ports");
  std::set<int> seen;
  for (int p : ports) {
    if (p < 1 || p > 65535) return InvalidArgument("port must be between 1 and 65535");
    if (!seen.insert(p).second) return InvalidArgument("port: duplicate port " + std::to_string(p));
  }
  return Status::Ok();
}

boost::asio::awaitable<Result<store::Container>> ContainerService::Create(
    const accounts::Principal& caller, CreateRequest request) {
  std::string name = request.name ? *request.name : GeneratedName();
  if (auto s = ValidateContainerName(name); !s.ok()) co_return s.error();
  if (auto s = ValidatePorts(request.ports); !s.ok()) co_return s.error();
  auto images = store_.ListImages();
  if (!images.ok()) co_return images.error();
  auto image = std::find_if(images->begin(), images->end(),
                            [&](const store::Image& i) { return i.id == request.image_id; });
  if (image == images->end()) co_return NotFound("Image not found");

  store::Container record;
  record.user_id = caller.user_id;
  record.account = caller.account;
  record.machine_id = request.machine_id;
  record.name = name;
  record.image_id = image->id;
  record.image = image->image;
  record.status = kCreating;
  for (int p : request.ports) record.ports.push_back({p, 0});
  record.created_at = clock_.Now();
  if (!agents_.Connected(record.machine_id)) co_return OfflineError(store_, record.machine_id);
  auto created = store_.CreateContainer(record);  // checks the machine and the name
  if (!created.ok()) co_return created.error();
  record = std::move(created).value();

  {
    std::lock_guard lock(mu_);
    creating_.insert(record.id);
  }
  auto result = co_await agents_.Call(record.machine_id, OpFor(record, Kind::kCreate), timeout_);
  {
    std::lock_guard lock(mu_);
    creating_.erase(record.id);
  }
  // Without an answer the agent may still have created it: the record stays
  // "creating" until the machine's next report settles it.
  if (!result.ok()) co_return result.error();
  if (!result->ok || !result->container) {
    (void)store_.DeleteContainer(record.id);
    co_return AgentError(*result);
  }
  Apply(record, *result->container);
  if (auto s = Persist(store_, record); !s.ok()) co_return s.error();
  co_return record;
}

boost::asio::awaitable<Result<store::Container>> ContainerService::Act(
    const accounts::Principal& caller, int64_t id, Kind kind) {
  auto found = store_.GetContainer(id);
  if (!found.ok()) co_return found.error();
  store::Container c = std::move(found).value();
  if (!MayAct(caller, c)) co_return PermissionDenied();
  if (kind == Kind::kCreate) co_return InvalidArgument("opt create takes no container_id");

  const bool gone = c.status == kGone;
  if (kind == Kind::kDelete && gone) {
    if (auto s = store_.DeleteContainer(c.id); !s.ok()) co_return s.error();
    c.status = "deleted";
    co_return c;
  }
  auto result = co_await agents_.Call(c.machine_id, OpFor(c, kind), timeout_);
  if (!result.ok()) co_return result.error();
  if (!result->ok) {
    if (result->code == "not_found") {
      c.status = kGone;
      (void)Persist(store_, c);
      co_return Conflict("Container " + c.name + " no longer exists on machine " + c.machine_id +
                         "; delete it and create it again");
    }
    co_return AgentError(*result);
  }
  if (kind == Kind::kDelete) {
    if (auto s = store_.DeleteContainer(c.id); !s.ok()) co_return s.error();
    c.status = "deleted";
    co_return c;
  }
  if (result->container) Apply(c, *result->container);
  if (auto s = Persist(store_, c); !s.ok()) co_return s.error();
  co_return c;
}

Result<std::vector<store::Container>> ContainerService::List(const accounts::Principal& caller,
                                                             bool all) {
  if (all && !caller.IsAdmin()) return PermissionDenied();
  return store_.ListContainers(all ? std::nullopt : std::optional<int64_t>(caller.user_id),
                               std::nullopt);
}

void ContainerService::Reconcile(const std::string& machine_id,
                                 const std::vector<proto::ContainerState>& containers) {
  auto records = store_.ListContainers(std::nullopt, machine_id);
  if (!records.ok()) {
    spdlog::error("machine {}: cannot reconcile containers: {}", machine_id,
                  records.error().message);
    return;
  }
  std::map<int64_t, const proto::ContainerState*> seen;
  for (const auto& c : containers) seen[c.id] = &c;
  for (auto& record : *records) {
    auto it = seen.find(record.id);
    bool changed = false;
    if (it != seen.end()) {
      changed = Apply(record, *it->second);
    } else if (record.status != kGone && !CreateInFlight(record.id)) {
      spdlog::info("machine {}: container {} ({}) is gone from the runtime", machine_id, record.id,
                   record.name);
      record.status = kGone;
      changed = true;
    }
    if (changed) (void)Persist(store_, record);
  }
}

bool ContainerService::CreateInFlight(int64_t id) const {
  std::lock_guard lock(mu_);
  return creating_.contains(id);
}

Result<std::vector<store::Image>> ContainerService::ListImages() { return store_.ListImages(); }

Result<store::Image> ContainerService::AddImage(const NewImage& image) {
  if (image.name.empty() || image.name.size() > kMaxImageName) {
    return InvalidArgument("name must be 1-100 characters");
  }
  bool ref_ok = !image.image.empty() && image.image.size() <= kMaxImageRef &&
                std::none_of(image.image.begin(), image.image.end(),
                             [](unsigned char ch) { return ch <= ' ' || ch >= 0x7f; });
  if (!ref_ok) {
    return InvalidArgument("image must be an image reference of 1-255 characters without spaces");
  }
  if (image.description.size() > kMaxDescription) {
    return InvalidArgument("description must be at most 1000 characters");
  }
  store::Image record{.name = image.name,
                      .image = image.image,
                      .description = image.description,
                      .created_at = clock_.Now()};
  return store_.CreateImage(record);
}

Status ContainerService::RemoveImage(int64_t id) { return store_.DeleteImage(id); }

nlohmann::json ContainerJson(const store::Container& c) {
  nlohmann::json ports = nlohmann::json::array();
  for (const auto& p : c.ports) ports.push_back({{"container", p.container}, {"host", p.host}});
  return {{"id", c.id},
          {"name", c.name},
          {"account", c.account},
          {"machine_id", c.machine_id},
          {"image_id", c.image_id},
          {"image", c.image},
          {"status", c.status},
          {"ports", ports},
          {"created_at", FormatIso8601(c.created_at)}};
}

nlohmann::json ImageJson(const store::Image& image) {
  return {{"id", image.id},
          {"name", image.name},
          {"image", image.image},
          {"description", image.description}};
}

}  // namespace gpuhub::containers
