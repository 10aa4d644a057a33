#include "proto/containers.hpp"

#include <array>
#include <limits>
#include <utility>

#include "proto/json_fields.hpp"

namespace gpuhub::proto {
namespace {

using nlohmann::json;
using namespace fields;

constexpr int64_t kMaxId = std::numeric_limits<int64_t>::max();
constexpr int kMaxPort = 65535;

constexpr std::array<std::pair<ContainerOp::Kind, std::string_view>, 5> kOps = {{
    {ContainerOp::Kind::kCreate, "create"},
    {ContainerOp::Kind::kStart, "start"},
    {ContainerOp::Kind::kStop, "stop"},
    {ContainerOp::Kind::kRestart, "restart"},
    {ContainerOp::Kind::kDelete, "delete"},
}};

// A port number 1-65535 at `path`.
Status ReadPort(const json& v, const std::string& path, int& out) {
  int64_t p = 0;
  if (auto s = ReadInt(v, path, kMaxPort, p); !s.ok()) return s;
  if (p == 0) return Bad(path, "must be between 1 and 65535");
  out = static_cast<int>(p);
  return Status::Ok();
}

// The array at obj[key] (required), or nullptr with `status` set.
const json* GetArray(const json& obj, const char* key, Status& status) {
  const json* v = Find(obj, key);
  if (v == nullptr) {
    status = Bad(key, "is missing");
  } else if (!v->is_array()) {
    status = Bad(key, "must be an array");
    v = nullptr;
  }
  return v;
}

Result<std::vector<PublishedPort>> PortsFromJson(const json& arr, const std::string& prefix) {
  std::vector<PublishedPort> out;
  for (size_t i = 0; i < arr.size(); ++i) {
    std::string path = prefix + "[" + std::to_string(i) + "]";
    if (!arr[i].is_object()) return Bad(path, "must be an object");
    PublishedPort p;
    const json* container = Find(arr[i], "container");
    if (container == nullptr) return Bad(path + ".container", "is missing");
    if (auto s = ReadPort(*container, path + ".container", p.container); !s.ok()) return s.error();
    int64_t host = 0;
    if (auto s = GetInt64(arr[i], "host", path, kMaxPort, host); !s.ok()) return s.error();
    p.host = static_cast<int>(host);
    out.push_back(p);
  }
  return out;
}

}  // namespace

std::string RuntimeName(std::string_view account, std::string_view name) {
  return "gpuhub-" + std::string(account) + "-" + std::string(name);
}

std::string_view OpName(ContainerOp::Kind op) {
  for (const auto& [kind, name] : kOps) {
    if (kind == op) return name;
  }
  return "unknown";
}

std::optional<ContainerOp::Kind> ParseOpName(std::string_view name) {
  for (const auto& [kind, n] : kOps) {
    if (n == name) return kind;
  }
  return std::nullopt;
}

json ToJson(const ContainerOp& op) {
  json j = {{"request_id", op.request_id},
            {"op", OpName(op.op)},
            {"id", op.id},
            {"account", op.account},
            {"name", op.name}};
  if (op.op == ContainerOp::Kind::kCreate) {
    j["image"] = op.image;
    j["ports"] = op.ports;
  }
  return j;
}

Result<ContainerOp> ContainerOpFromJson(const json& data) {
  if (!data.is_object()) return InvalidArgument("container data must be an object");
  ContainerOp op;
  std::string name;
  if (auto s = GetString(data, "request_id", "", op.request_id); !s.ok()) return s.error();
  if (auto s = GetString(data, "op", "", name); !s.ok()) return s.error();
  auto kind = ParseOpName(name);
  if (!kind) return Bad("op", "must be one of create, start, stop, restart, delete");
  op.op = *kind;
  if (auto s = GetInt64(data, "id", "", kMaxId, op.id); !s.ok()) return s.error();
  if (auto s = GetString(data, "account", "", op.account); !s.ok()) return s.error();
  if (auto s = GetString(data, "name", "", op.name); !s.ok()) return s.error();
  if (op.op != ContainerOp::Kind::kCreate) return op;
  if (auto s = GetString(data, "image", "", op.image); !s.ok()) return s.error();
  Status status;
  const json* ports = GetArray(data, "ports", status);
  if (ports == nullptr) return status.error();
  for (size_t i = 0; i < ports->size(); ++i) {
    int p = 0;
    if (auto s = ReadPort((*ports)[i], "ports[" + std::to_string(i) + "]", p); !s.ok()) {
      return s.error();
    }
    op.ports.push_back(p);
  }
  return op;
}

json ToJson(const ContainerState& c) {
  json ports = json::array();
  for (const auto& p : c.ports) ports.push_back({{"container", p.container}, {"host", p.host}});
  return {{"id", c.id}, {"runtime_id", c.runtime_id}, {"status", c.status}, {"ports", ports}};
}

Result<ContainerState> ContainerStateFromJson(const json& data) {
  if (!data.is_object()) return InvalidArgument("container must be an object");
  ContainerState c;
  if (auto s = GetInt64(data, "id", "", kMaxId, c.id); !s.ok()) return s.error();
  if (auto s = GetString(data, "runtime_id", "", c.runtime_id); !s.ok()) return s.error();
  if (auto s = GetString(data, "status", "", c.status); !s.ok()) return s.error();
  Status status;
  const json* ports = GetArray(data, "ports", status);
  if (ports == nullptr) return status.error();
  auto parsed = PortsFromJson(*ports, "ports");
  if (!parsed.ok()) return parsed.error();
  c.ports = std::move(parsed).value();
  return c;
}

json ToJson(const ContainerResult& r) {
  json j = {{"request_id", r.request_id}, {"ok", r.ok}};
  if (!r.ok) {
    j["code"] = r.code;
    j["message"] = r.message;
  }
  if (r.container) j["container"] = ToJson(*r.container);
  return j;
}

Result<ContainerResult> ContainerResultFromJson(const json& data) {
  if (!data.is_object()) return InvalidArgument("container_result data must be an object");
  ContainerResult r;
  if (auto s = GetString(data, "request_id", "", r.request_id); !s.ok()) return s.error();
  const json* ok = Find(data, "ok");
  if (ok == nullptr || !ok->is_boolean()) return Bad("ok", "must be true or false");
  r.ok = ok->get<bool>();
  if (!r.ok) {
    if (auto s = GetString(data, "code", "", r.code); !s.ok()) return s.error();
    if (auto s = GetString(data, "message", "", r.message); !s.ok()) return s.error();
  }
  if (const json* c = Find(data, "container"); c != nullptr && !c->is_null()) {
    auto state = ContainerStateFromJson(*c);
    if (!state.ok()) return InvalidArgument("container." + state.error().message);
    r.container = std::move(state).value();
  }
  return r;
}

json ContainersReportJson(const std::vector<ContainerState>& containers) {
  json arr = json::array();
  for (const auto& c : containers) arr.push_back(ToJson(c));
  return {{"containers", std::move(arr)}};
}

Result<std::vector<ContainerState>> ContainersReportFromJson(const json& data) {
  if (!data.is_object()) return InvalidArgument("containers data must be an object");
  Status status;
  const json* arr = GetArray(data, "containers", status);
  if (arr == nullptr) return status.error();
  std::vector<ContainerState> out;
  for (size_t i = 0; i < arr->size(); ++i) {
    auto c = ContainerStateFromJson((*arr)[i]);
    if (!c.ok()) {
      return InvalidArgument("containers[" + std::to_string(i) + "]." + c.error().message);
    }
    out.push_back(std::move(c).value());
  }
  return out;
}

}  // namespace gpuhub::proto
