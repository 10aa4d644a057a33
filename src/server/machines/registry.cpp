#include "server/machines/registry.hpp"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <nlohmann/json.hpp>

#include "common/time_util.hpp"
#include "server/accounts/token.hpp"
#include "server/http/gzip.hpp"
#include "server/http/message.hpp"

namespace gpuhub::machines {
namespace {

constexpr int kMissedHeartbeats = 3;
constexpr auto kHeartbeatLag = std::chrono::seconds(1);
// zlib level of the gzip copy of /api/machines/info: JSON of repeated keys
// compresses well already at the fast levels, and the copy is rebuilt up to
// once a second.
constexpr int kInfoGzipLevel = 1;
constexpr char kMachineNotFound[] = "Machine not found";

std::string NewAgentToken() { return "gpuhub-agent-" + accounts::RandomHex(32); }

// The address to show for a machine: what its agent reports when that is an
// IP address, else the connection's peer address.
std::string ChooseIp(const std::string& reported, const std::string& peer) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(reported, ec);
  return reported.empty() || ec ? peer : reported;
}

}  // namespace

std::string HashAgentToken(std::string_view token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(token.data(), token.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

Status ValidateMachineId(std::string_view id) {
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  bool ok = !id.empty() && id.size() <= 64 && alnum(id[0]) &&
            std::all_of(id.begin(), id.end(),
                        [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '-'; });
  if (ok) return Status::Ok();
  return InvalidArgument(
      "id must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or "
      "digit");
}

MachineRegistry::MachineRegistry(store::Store& store, const Clock& clock,
                                 std::chrono::milliseconds heartbeat)
    : store_(store), clock_(clock), heartbeat_(heartbeat) {}

Result<std::unique_ptr<MachineRegistry>> MachineRegistry::Open(
    store::Store& store, const Clock& clock, std::chrono::milliseconds heartbeat) {
  auto machines = store.ListMachines();
  if (!machines.ok()) return machines.error();
  std::unique_ptr<MachineRegistry> r(new MachineRegistry(store, clock, heartbeat));
  for (auto& m : *machines) {
    r->by_token_[m.token_hash] = m.id;
    r->machines_[m.id].record = std::move(m);
  }
  return r;
}

void MachineRegistry::SetListener(OnlineListener listener) { listener_ = std::move(listener); }

void MachineRegistry::SetChangeListener(ChangeListener listener) {
  change_listener_ = std::move(listener);
}

void MachineRegistry::Notify(const std::string& id, bool online) {
  spdlog::info("machine {} is {}", id, online ? "online" : "offline");
  if (listener_) listener_(id, online);
  NotifyChange(id);
}

void MachineRegistry::NotifyChange(const std::string& id) const {
  if (change_listener_) change_listener_(id);
}

void MachineRegistry::PersistSeen(const std::string& id, TimePoint when, const std::string& ip) {
  auto s = store_.SetMachineSeen(id, when, ip);
  if (!s.ok() && s.error().code != ErrorCode::kNotFound) {
    spdlog::warn("recording when machine {} was seen failed: {}", id, s.error().message);
  }
}

Result<std::string> MachineRegistry::Add(const std::string& id) {
  if (auto s = ValidateMachineId(id); !s.ok()) return s.error();
  std::string token = NewAgentToken();
  store::Machine m{id, HashAgentToken(token), clock_.Now(), std::nullopt, ""};
  m.created_at = FromUnixSeconds(ToUnixSeconds(m.created_at));
  std::lock_guard lock(mu_);
  if (machines_.count(id)) return Conflict("Machine already exists");
  if (auto s = store_.CreateMachine(m); !s.ok()) return s.error();
  by_token_[m.token_hash] = id;
  machines_[id].record = std::move(m);
  ++version_;
  return token;
}

Status MachineRegistry::Remove(const std::string& id) {
  std::function<void()> kick;
  bool was_online;
  {
    std::lock_guard lock(mu_);
    auto it = machines_.find(id);
    if (it == machines_.end()) return NotFound(kMachineNotFound);
    if (auto s = store_.DeleteMachine(id); !s.ok()) return s;
    by_token_.erase(it->second.record.token_hash);
    kick = std::move(it->second.kick);
    was_online = it->second.online;
    machines_.erase(it);
    ++version_;
  }
  if (kick) kick();
  if (was_online) Notify(id, false);
  return Status::Ok();
}

Result<std::string> MachineRegistry::RotateToken(const std::string& id) {
  std::string token = NewAgentToken();
  std::string hash = HashAgentToken(token);
  std::function<void()> after;
  {
    std::lock_guard lock(mu_);
    auto it = machines_.find(id);
    if (it == machines_.end()) return NotFound(kMachineNotFound);
    if (auto s = store_.SetMachineToken(id, hash); !s.ok()) return s.error();
    by_token_.erase(it->second.record.token_hash);
    by_token_[hash] = id;
    it->second.record.token_hash = hash;
    after = GoOfflineLocked(it->second);
  }
  if (after) after();
  return token;
}

std::vector<store::Machine> MachineRegistry::List() const {
  std::lock_guard lock(mu_);
  std::vector<store::Machine> out;
  for (const auto& [id, s] : machines_) out.push_back(s.record);
  return out;
}

std::optional<std::string> MachineRegistry::MachineForToken(std::string_view token) const {
  std::string hash = HashAgentToken(token);
  std::lock_guard lock(mu_);
  auto it = by_token_.find(hash);
  if (it == by_token_.end()) return std::nullopt;
  return it->second;
}

std::function<void()> MachineRegistry::GoOfflineLocked(State& s) {
  bool was_online = s.online;
  s.online = false;
  s.generation = 0;
  ++version_;
  auto kick = std::move(s.kick);
  s.kick = nullptr;
  std::string id = s.record.id;
  TimePoint seen = s.last_heartbeat;
  std::string ip = s.record.ip;
  return [this, was_online, kick = std::move(kick), id, seen, ip] {
    if (kick) kick();
    if (was_online) {
      PersistSeen(id, seen, ip);
      Notify(id, false);
    }
  };
}

Result<uint64_t> MachineRegistry::Connect(const std::string& id, const std::string& peer_ip,
                                          std::function<void()> kick) {
  std::function<void()> old_kick;
  uint64_t generation;
  bool was_online;
  TimePoint now = clock_.Now();
  {
    std::lock_guard lock(mu_);
    auto it = machines_.find(id);
    if (it == machines_.end()) return NotFound(kMachineNotFound);
    State& s = it->second;
    old_kick = std::move(s.kick);
    was_online = s.online;
    generation = next_generation_++;
    s.generation = generation;
    s.kick = std::move(kick);
    s.online = true;
    s.last_heartbeat = now;
    s.peer_ip = peer_ip;
    s.record.last_seen = now;
    if (s.record.ip.empty()) s.record.ip = peer_ip;
    ++version_;
  }
  if (old_kick) {
    spdlog::warn(
        "machine {}: a new agent connection from {} replaces the previous one "
        "(two agents with the same token?)",
        id, peer_ip);
    old_kick();
  }
  PersistSeen(id, now, peer_ip);
  if (!was_online) Notify(id, true);
  return generation;
}

Status MachineRegistry::Report(const std::string& id, uint64_t generation,
                               proto::Inventory inventory) {
  std::unique_lock lock(mu_);
  auto it = machines_.find(id);
  if (it == machines_.end() || it->second.generation != generation) {
    return NotFound("Connection replaced");
  }
  State& s = it->second;
  s.record.ip = ChooseIp(inventory.ip, s.peer_ip);
  s.inventory = std::move(inventory);
  UpdateInfoPartsLocked(s);
  s.last_heartbeat = clock_.Now();
  s.record.last_seen = s.last_heartbeat;
  s.change_sent = s.last_heartbeat;
  ++version_;
  lock.unlock();
  NotifyChange(id);
  return Status::Ok();
}

Status MachineRegistry::Heartbeat(const std::string& id, uint64_t generation,
                                  const nlohmann::json& diff) {
  std::unique_lock lock(mu_);
  auto it = machines_.find(id);
  if (it == machines_.end() || it->second.generation != generation) {
    return NotFound("Connection replaced");
  }
  State& s = it->second;
  if (!diff.empty()) {
    if (!s.inventory) return InvalidArgument("heartbeat with changes before any inventory");
    if (auto st = proto::ApplyDiff(*s.inventory, diff); !st.ok()) return st;
    s.record.ip = ChooseIp(s.inventory->ip, s.peer_ip);
    UpdateInfoPartsLocked(s);
  }
  seen_changed_ = true;  // measurements and last_seen: see InfoJson
  s.last_heartbeat = clock_.Now();
  s.record.last_seen = s.last_heartbeat;
  if (diff.empty() || s.last_heartbeat - s.change_sent < kChangeInterval) return Status::Ok();
  s.change_sent = s.last_heartbeat;
  lock.unlock();
  NotifyChange(id);
  return Status::Ok();
}

void MachineRegistry::Disconnect(const std::string& id, uint64_t generation) {
  std::function<void()> after;
  {
    std::lock_guard lock(mu_);
    auto it = machines_.find(id);
    if (it == machines_.end() || it->second.generation != generation) return;
    after = GoOfflineLocked(it->second);
  }
  after();
}

void MachineRegistry::Sweep() {
  std::vector<std::function<void()>> after;
  TimePoint cutoff = clock_.Now() - kMissedHeartbeats * heartbeat_;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, s] : machines_) {
      if (s.online && s.last_heartbeat < cutoff) after.push_back(GoOfflineLocked(s));
    }
  }
  for (auto& f : after) f();
}

void MachineRegistry::SetGpuHolders(const std::string& id,
                                    std::map<int, std::pair<int64_t, std::string>> holders) {
  {
    std::lock_guard lock(mu_);
    auto it = machines_.find(id);
    if (it == machines_.end() || it->second.holders == holders) return;
    it->second.holders = std::move(holders);
    UpdateInfoPartsLocked(it->second);
    ++version_;
  }
  NotifyChange(id);
}

std::optional<std::string> MachineRegistry::MachineJson(const std::string& id) const {
  InfoRow row;
  {
    std::lock_guard lock(mu_);
    auto it = machines_.find(id);
    if (it == machines_.end()) return std::nullopt;
    row = RowOf(id, it->second);
  }
  std::string out;
  AppendRow(out, row);
  return out;
}

std::shared_ptr<const std::string> MachineRegistry::InfoJson() const { return Info().json; }

MachineRegistry::InfoDocument MachineRegistry::Info() const {
  // Heartbeats only move measurements and last_seen; for those a document at
  // most kHeartbeatLag old is good enough, so a fleet of agents does not force
  // a rebuild on every request, and while one caller rebuilds, the others take
  // the previous document rather than wait. Everything else (machines added
  // or removed, online changes, first inventories) shows at once: callers
  // wait for the rebuild.
  bool stale_ok = false;
  auto fresh = [&] {
    std::lock_guard lock(mu_);
    bool same_version = cache_.json && cache_version_ == version_;
    stale_ok = same_version;
    return same_version && (!seen_changed_ || clock_.Now() - cache_built_at_ < kHeartbeatLag);
  };
  {
    std::lock_guard cache_lock(cache_mu_);
    if (fresh()) return cache_;
  }
  std::unique_lock build(build_mu_, std::defer_lock);
  if (stale_ok && !build.try_lock()) {
    std::lock_guard cache_lock(cache_mu_);
    return cache_;
  }
  if (!build.owns_lock()) build.lock();
  {
    std::lock_guard cache_lock(cache_mu_);
    if (fresh()) return cache_;  // rebuilt while this caller waited
  }
  std::vector<InfoRow> rows;
  uint64_t version;
  TimePoint built_at;
  {
    std::lock_guard lock(mu_);  // a copy, not the document: heartbeats wait for ~1 ms, not ~50
    built_at = clock_.Now();
    version = version_;
    seen_changed_ = false;
    rows.reserve(machines_.size());
    for (const auto& [id, s] : machines_) {
      rows.push_back(RowOf(id, s));
    }
  }
  InfoDocument doc;
  doc.json = std::make_shared<const std::string>(InfoJsonOf(rows));
  doc.gzip = std::make_shared<const std::string>(http::GzipCompress(*doc.json, kInfoGzipLevel));
  std::lock_guard cache_lock(cache_mu_);
  cache_ = doc;
  cache_version_ = version;
  cache_built_at_ = built_at;
  return doc;
}

std::shared_ptr<const MachineRegistry::InfoParts> MachineRegistry::NoInfoParts() {
  static const auto none = std::make_shared<const InfoParts>(
      InfoParts{R"("cpu":null,"disk":null,"gpu":[])", R"("memory":null)"});
  return none;
}

void MachineRegistry::UpdateInfoPartsLocked(State& s) {
  if (!s.inventory) {
    s.info_parts = NoInfoParts();
    return;
  }
  nlohmann::json inv = proto::ToJson(*s.inventory);
  for (auto& g : inv["gpu"]) {
    g.erase("processes");
    auto holder = s.holders.find(g["index"].get<int>());
    if (holder == s.holders.end()) {
      g["task_id"] = nullptr;
      g["account"] = nullptr;
    } else {
      g["task_id"] = holder->second.first;
      g["account"] = holder->second.second;
    }
  }
  auto dump = [](const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  auto parts = std::make_shared<InfoParts>();
  parts->head = R"("cpu":)" + dump(inv["cpu"]) + R"(,"disk":)" + dump(inv["disk"]) + R"(,"gpu":)" +
                dump(inv["gpu"]) + R"(,"hostname":)" + dump(inv["hostname"]);
  parts->memory = R"("memory":)" + dump(inv["memory"]);
  s.info_parts = std::move(parts);
}

MachineRegistry::InfoRow MachineRegistry::RowOf(const std::string& id, const State& s) {
  return InfoRow{id, s.record.ip, s.record.last_seen, s.online, s.info_parts};
}

// What nlohmann::json would write for the machine's object (keys sorted):
// {"cpu","disk","gpu"[,"hostname"],"id","ip","last_seen","memory","online"},
// without building the tree: the inventory parts are serialized already.
void MachineRegistry::AppendRow(std::string& out, const InfoRow& r) {
  out += '{';
  out += r.parts->head;
  out += R"(,"id":)";
  http::AppendJsonString(out, r.id);
  out += R"(,"ip":)";
  if (r.ip.empty()) {
    out += "null";
  } else {
    http::AppendJsonString(out, r.ip);
  }
  out += R"(,"last_seen":)";
  if (r.last_seen) {
    http::AppendJsonString(out, FormatIso8601(*r.last_seen));
  } else {
    out += "null";
  }
  out += ',';
  out += r.parts->memory;
  out += r.online ? R"(,"online":true})" : R"(,"online":false})";
}

std::string MachineRegistry::InfoJsonOf(const std::vector<InfoRow>& rows) {
  size_t size = 2;
  for (const auto& r : rows) size += r.parts->head.size() + r.parts->memory.size() + 128;
  std::string out;
  out.reserve(size);
  out += '[';
  for (const auto& r : rows) {
    if (out.size() > 1) out += ',';
    AppendRow(out, r);
  }
  out += ']';
  return out;
}

}  // namespace gpuhub::machines
