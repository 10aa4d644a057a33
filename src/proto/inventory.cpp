#include "proto/inventory.hpp"

#include <cmath>
#include <limits>
#include <string_view>
#include <utility>

#include "proto/json_fields.hpp"

// Validation never calls a throwing accessor on a value whose type it has not
// checked: numbers are read through get_ptr, which returns nullptr on a type
// mismatch. Unknown keys are ignored (a newer agent may send more); every key
// ToJson writes is required, also inside the sub-objects of a Diff.

namespace gpuhub::proto {
namespace {

using nlohmann::json;
using namespace fields;

Status GetPercent(const json& obj, const char* key, std::string_view prefix, double& out) {
  std::string path = Join(prefix, key);
  const json* v = Find(obj, key);
  if (v == nullptr) return Bad(path, "is missing");
  double d = 0;
  if (const auto* f = v->get_ptr<const json::number_float_t*>()) {
    d = *f;
  } else if (const auto* u = v->get_ptr<const json::number_unsigned_t*>()) {
    d = static_cast<double>(*u);
  } else if (const auto* i = v->get_ptr<const json::number_integer_t*>()) {
    d = static_cast<double>(*i);
  } else {
    return Bad(path, "must be a number");
  }
  if (!std::isfinite(d) || d < 0 || d > 100) return Bad(path, "must be between 0 and 100");
  out = d;
  return Status::Ok();
}

constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();
constexpr int kMaxInt = std::numeric_limits<int>::max();

Result<Gpu> GpuFromJson(const json& j, const std::string& path) {
  if (!j.is_object()) return Bad(path, "must be an object");
  Gpu g;
  Status s;
  if (s = GetInt(j, "index", path, kMaxInt, g.index); !s.ok()) return s.error();
  if (s = GetString(j, "uuid", path, g.uuid); !s.ok()) return s.error();
  if (s = GetString(j, "name", path, g.name); !s.ok()) return s.error();
  if (s = GetInt64(j, "memory_total", path, kMaxInt64, g.memory_total); !s.ok()) return s.error();
  if (s = GetInt64(j, "memory_used", path, kMaxInt64, g.memory_used); !s.ok()) return s.error();
  if (s = GetInt(j, "utilization", path, 100, g.utilization); !s.ok()) return s.error();
  if (s = GetInt(j, "temperature", path, kMaxInt, g.temperature); !s.ok()) return s.error();
  std::string ppath = path + ".processes";
  const json* procs = Find(j, "processes");
  if (procs == nullptr) return Bad(ppath, "is missing");
  if (!procs->is_array()) return Bad(ppath, "must be an array");
  g.processes.reserve(procs->size());
  for (size_t i = 0; i < procs->size(); ++i) {
    int64_t pid = 0;
    s = ReadInt((*procs)[i], ppath + "[" + std::to_string(i) + "]", kMaxInt64, pid);
    if (!s.ok()) return s.error();
    g.processes.push_back(pid);
  }
  return g;
}

Result<std::vector<Gpu>> GpusFromJson(const json& j) {
  if (!j.is_array()) return Bad("gpu", "must be an array");
  std::vector<Gpu> gpus;
  gpus.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string path = "gpu[" + std::to_string(i) + "]";
    auto g = GpuFromJson(j[i], path);
    if (!g.ok()) return g.error();
    // Leases name GPUs by index: the list must be exactly 0..n-1 in order.
    if (g->index != static_cast<int>(i))
      return Bad(path + ".index", "must be " + std::to_string(i));
    gpus.push_back(std::move(*g));
  }
  return gpus;
}

Result<Cpu> CpuFromJson(const json& j) {
  Cpu c;
  Status s;
  if (s = GetString(j, "name", "cpu", c.name); !s.ok()) return s.error();
  if (s = GetInt(j, "cores", "cpu", kMaxInt, c.cores); !s.ok()) return s.error();
  if (s = GetPercent(j, "usage", "cpu", c.usage); !s.ok()) return s.error();
  return c;
}

// Memory and Disk share the shape {total, used}.
template <typename T>
Result<T> TotalUsedFromJson(const json& j, const char* prefix) {
  T t;
  Status s;
  if (s = GetInt64(j, "total", prefix, kMaxInt64, t.total); !s.ok()) return s.error();
  if (s = GetInt64(j, "used", prefix, kMaxInt64, t.used); !s.ok()) return s.error();
  return t;
}

json ToJson(const Cpu& c) { return {{"name", c.name}, {"cores", c.cores}, {"usage", c.usage}}; }
json ToJson(const Memory& m) { return {{"total", m.total}, {"used", m.used}}; }
json ToJson(const Disk& d) { return {{"total", d.total}, {"used", d.used}}; }

json ToJson(const std::vector<Gpu>& gpus) {
  json a = json::array();
  for (const Gpu& g : gpus) a.push_back(ToJson(g));
  return a;
}

// Reads the keys of `j` that are present into `inv`. With `required`, every
// key must be present. On error `inv` may be partly written: callers work on
// a copy.
Status Read(const json& j, bool required, Inventory& inv) {
  if (!j.is_object()) return InvalidArgument("an inventory must be a JSON object");
  Status s;
  if (required || j.contains("hostname")) {
    if (s = GetString(j, "hostname", "", inv.hostname); !s.ok()) return s;
  }
  if (required || j.contains("ip")) {
    if (s = GetString(j, "ip", "", inv.ip); !s.ok()) return s;
  }
  if (required || j.contains("gpu")) {
    const json* g = Find(j, "gpu");
    if (g == nullptr) return Bad("gpu", "is missing");
    auto gpus = GpusFromJson(*g);
    if (!gpus.ok()) return gpus.error();
    inv.gpus = std::move(*gpus);
  }
  if (required || j.contains("cpu")) {
    const json* o = GetObject(j, "cpu", "", s);
    if (o == nullptr) return s;
    auto c = CpuFromJson(*o);
    if (!c.ok()) return c.error();
    inv.cpu = std::move(*c);
  }
  if (required || j.contains("memory")) {
    const json* o = GetObject(j, "memory", "", s);
    if (o == nullptr) return s;
    auto m = TotalUsedFromJson<Memory>(*o, "memory");
    if (!m.ok()) return m.error();
    inv.memory = *m;
  }
  if (required || j.contains("disk")) {
    const json* o = GetObject(j, "disk", "", s);
    if (o == nullptr) return s;
    auto d = TotalUsedFromJson<Disk>(*o, "disk");
    if (!d.ok()) return d.error();
    inv.disk = *d;
  }
  return Status::Ok();
}

}  // namespace

json ToJson(const Gpu& g) {
  return {{"index", g.index},
          {"uuid", g.uuid},
          {"name", g.name},
          {"memory_total", g.memory_total},
          {"memory_used", g.memory_used},
          {"utilization", g.utilization},
          {"temperature", g.temperature},
          {"processes", g.processes}};
}

json ToJson(const Inventory& inv) {
  return {{"hostname", inv.hostname},     {"ip", inv.ip},
          {"gpu", ToJson(inv.gpus)},      {"cpu", ToJson(inv.cpu)},
          {"memory", ToJson(inv.memory)}, {"disk", ToJson(inv.disk)}};
}

Result<Inventory> InventoryFromJson(const json& j) {
  Inventory inv;
  if (Status s = Read(j, /*required=*/true, inv); !s.ok()) return s.error();
  return inv;
}

json Diff(const Inventory& before, const Inventory& now) {
  json d = json::object();
  if (before.hostname != now.hostname) d["hostname"] = now.hostname;
  if (before.ip != now.ip) d["ip"] = now.ip;
  if (before.gpus != now.gpus) d["gpu"] = ToJson(now.gpus);
  if (before.cpu != now.cpu) d["cpu"] = ToJson(now.cpu);
  if (before.memory != now.memory) d["memory"] = ToJson(now.memory);
  if (before.disk != now.disk) d["disk"] = ToJson(now.disk);
  return d;
}

Status ApplyDiff(Inventory& inv, const json& diff) {
  Inventory next = inv;
  if (Status s = Read(diff, /*required=*/false, next); !s.ok()) return s;
  inv = std::move(next);
  return Status::Ok();
}

}  // namespace gpuhub::proto
