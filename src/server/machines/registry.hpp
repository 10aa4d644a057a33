// MachineRegistry: the GPU machines, their agent tokens, and what their
// agents report, kept in memory and written through to the Store.
//
// Online rule: a machine is online while its agent is connected and has sent
// a heartbeat (or inventory) within 3 heartbeat intervals. Sweep() applies the
// rule; a closed connection is offline at once (Disconnect). A new connection
// for a machine replaces the previous one, which is closed through its kick
// callback.
//
// Thread-safe. Callbacks (kick, the online listener) are never called while
// the registry's lock is held. /api/machines/info is served from a cached
// JSON document, kept with its gzip compression, rebuilt only after something
// changed. What heartbeats change may show up to a second late (a little more
// while one caller rebuilds the document: the others get the previous one
// meanwhile); everything else shows at once.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.hpp"
#include "common/result.hpp"
#include "proto/inventory.hpp"
#include "store/store.hpp"

namespace gpuhub::machines {

// Called with a machine id and its new online state.
using OnlineListener = std::function<void(const std::string& id, bool online)>;
// Called with a machine id when what /api/machines/info shows of it may have
// changed: its inventory or measurements, GPU holders, or online state.
using ChangeListener = std::function<void(const std::string& id)>;

class MachineRegistry {
 public:
  // Loads the machines from `store`, which must outlive the registry.
  static Result<std::unique_ptr<MachineRegistry>> Open(store::Store& store, const Clock& clock,
                                                       std::chrono::milliseconds heartbeat);

  // Registers a machine and returns its agent token (shown once; only its
  // hash is kept). InvalidArgument for a bad id, kConflict if it exists.
  Result<std::string> Add(const std::string& id);
  // Removes the machine and closes its agent's connection. kNotFound.
  Status Remove(const std::string& id);
  // A new token; the old one stops working and its connection is closed.
  Result<std::string> RotateToken(const std::string& id);
  std::vector<store::Machine> List() const;

  // The machine an agent token belongs to, or nullopt.
  std::optional<std::string> MachineForToken(std::string_view token) const;

  // Marks the machine online on a new connection from `peer_ip`; `kick`
  // closes that connection. Returns the connection's generation, which the
  // other calls of that connection pass back; kNotFound if the machine was
  // removed meanwhile.
  Result<uint64_t> Connect(const std::string& id, const std::string& peer_ip,
                           std::function<void()> kick);
  // A full inventory, or a heartbeat with a proto::Diff of it. kNotFound when
  // the connection was replaced or the machine removed; InvalidArgument for a
  // malformed diff.
  Status Report(const std::string& id, uint64_t generation, proto::Inventory inventory);
  Status Heartbeat(const std::string& id, uint64_t generation, const nlohmann::json& diff);
  // The connection ended: offline at once (unless it was already replaced).
  void Disconnect(const std::string& id, uint64_t generation);

  // Marks offline every machine without a heartbeat for 3 intervals and
  // closes its connection.
  void Sweep();

  // Receives every online/offline change. Set before agents connect.
  void SetListener(OnlineListener listener);
  // Receives every change of a machine (see ChangeListener), outside the
  // registry's lock; a heartbeat's measurements at most once per
  // kChangeInterval per machine. Set before agents connect.
  static constexpr std::chrono::seconds kChangeInterval{1};
  void SetChangeListener(ChangeListener listener);
  // One machine as an element of InfoJson; nullopt if there is no such machine.
  std::optional<std::string> MachineJson(const std::string& id) const;

  // The leases holding the machine's GPUs: index -> (task id, account), shown
  // as task_id/account in InfoJson (at once, not a second late). Unknown
  // machines are ignored.
  void SetGpuHolders(const std::string& id, std::map<int, std::pair<int64_t, std::string>> holders);

  // GET /api/machines/info: every machine sorted by id, as the contract shows.
  std::shared_ptr<const std::string> InfoJson() const;

  // The same document, and that document gzip-compressed (RFC 1952), built
  // together. Both are immutable and never null; share them, don't copy.
  struct InfoDocument {
    std::shared_ptr<const std::string> json;
    std::shared_ptr<const std::string> gzip;
  };
  InfoDocument Info() const;

  std::chrono::milliseconds heartbeat() const { return heartbeat_; }

 private:
  // A machine's inventory and GPU holders as /api/machines/info shows them,
  // serialized when they change (not with every document): the members that
  // sort before "id" and the "memory" member, in nlohmann::json's key order.
  struct InfoParts {
    std::string head;    // "cpu":..,"disk":..,"gpu":[..] and, with an inventory, ,"hostname":..
    std::string memory;  // "memory":..
  };
  static std::shared_ptr<const InfoParts> NoInfoParts();

  struct State {
    store::Machine record;
    bool online = false;
    uint64_t generation = 0;  // of the current connection; 0 if none
    std::function<void()> kick;
    TimePoint last_heartbeat{};
    std::string peer_ip;
    std::optional<proto::Inventory> inventory;
    std::map<int, std::pair<int64_t, std::string>> holders;       // GPU -> (task, account)
    std::shared_ptr<const InfoParts> info_parts = NoInfoParts();  // of inventory and holders
    TimePoint change_sent{};  // when the change listener last heard of a heartbeat
  };
  MachineRegistry(store::Store& store, const Clock& clock, std::chrono::milliseconds heartbeat);
  // Marks `s` offline; returns what to call once the lock is released.
  std::function<void()> GoOfflineLocked(State& s);
  void Notify(const std::string& id, bool online);
  void PersistSeen(const std::string& id, TimePoint when, const std::string& ip);
  // What /api/machines/info shows of one machine, copied under mu_ so that
  // the document is built without holding it.
  struct InfoRow {
    std::string id;
    std::string ip;
    std::optional<TimePoint> last_seen;
    bool online = false;
    std::shared_ptr<const InfoParts> parts;
  };
  // Recomputes s.info_parts after its inventory or holders changed; needs mu_.
  static void UpdateInfoPartsLocked(State& s);
  static std::string InfoJsonOf(const std::vector<InfoRow>& rows);
  static InfoRow RowOf(const std::string& id, const State& s);
  static void AppendRow(std::string& out, const InfoRow& r);
  void NotifyChange(const std::string& id) const;

  store::Store& store_;
  const Clock& clock_;
  const std::chrono::milliseconds heartbeat_;
  OnlineListener listener_;
  ChangeListener change_listener_;

  mutable std::mutex mu_;
  std::map<std::string, State> machines_;                  // guarded by mu_
  std::unordered_map<std::string, std::string> by_token_;  // hash -> id; guarded by mu_
  uint64_t next_generation_ = 1;                           // guarded by mu_
  uint64_t version_ = 1;               // bumped on every change but last_seen; guarded by mu_
  mutable bool seen_changed_ = false;  // a heartbeat since the cache was built; guarded by mu_

  // Lock order: build_mu_, then cache_mu_, then mu_. The document is built
  // under build_mu_ only, from rows copied under mu_.
  mutable std::mutex build_mu_;  // held by the one caller that rebuilds the document
  mutable std::mutex cache_mu_;
  mutable InfoDocument cache_;          // guarded by cache_mu_
  mutable uint64_t cache_version_ = 0;  // guarded by cache_mu_
  mutable TimePoint cache_built_at_{};  // guarded by cache_mu_
};

// The SHA-256 of an agent token, hex: what the store keeps.
std::string HashAgentToken(std::string_view token);

// Machine ids: 1-64 of letters, digits, '.', '_' and '-', starting with a
// letter or digit.
Status ValidateMachineId(std::string_view id);

}  // namespace gpuhub::machines
