// The container messages of the agent link (docs/protocol.md): what the
// server asks an agent to do with a user's container, the agent's answer, and
// the agent's report of every gpuhub container on its machine.
//
// Shared by the server and the agent. Plain data with JSON conversion; each
// FromJson validates and names the first bad field. Thread-safety is that of
// any value type.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace gpuhub::proto {

// The runtime labels every gpuhub container carries.
inline constexpr const char* kOwnerLabel = "gpuhub.owner";          // the account
inline constexpr const char* kContainerLabel = "gpuhub.container";  // the server's id

// "gpuhub-<account>-<name>": the container's name in the runtime.
std::string RuntimeName(std::string_view account, std::string_view name);

// Server -> agent, type "container".
struct ContainerOp {
  enum class Kind { kCreate, kStart, kStop, kRestart, kDelete };
  std::string request_id;
  Kind op = Kind::kCreate;
  int64_t id = 0;          // the server's container id (label gpuhub.container)
  std::string account;     // the owner (label gpuhub.owner, runtime name)
  std::string name;        // the user's name for it (runtime name, hostname)
  std::string image;       // create only: the image reference
  std::vector<int> ports;  // create only: container ports to publish
  bool operator==(const ContainerOp&) const = default;
};
std::string_view OpName(ContainerOp::Kind op);
std::optional<ContainerOp::Kind> ParseOpName(std::string_view name);

nlohmann::json ToJson(const ContainerOp& op);
Result<ContainerOp> ContainerOpFromJson(const nlohmann::json& data);

struct PublishedPort {
  int container = 0;
  int host = 0;
  bool operator==(const PublishedPort&) const = default;
};

// A container as the agent sees it in the runtime.
struct ContainerState {
  int64_t id = 0;  // from the gpuhub.container label
  std::string runtime_id;
  std::string status;  // the runtime's state: created, running, exited, ...
  std::vector<PublishedPort> ports;
  bool operator==(const ContainerState&) const = default;
};
nlohmann::json ToJson(const ContainerState& c);
Result<ContainerState> ContainerStateFromJson(const nlohmann::json& data);

// Agent -> server, type "container_result": the answer to one ContainerOp.
// A failure carries a code the server turns into an HTTP status: "conflict"
// (409), "not_found" (404), "invalid" (400), or "unavailable" (503).
struct ContainerResult {
  std::string request_id;
  bool ok = false;
  std::string code;
  std::string message;
  std::optional<ContainerState> container;  // ok, and the op was not delete
  bool operator==(const ContainerResult&) const = default;
};
nlohmann::json ToJson(const ContainerResult& r);
Result<ContainerResult> ContainerResultFromJson(const nlohmann::json& data);

// Agent -> server, type "containers": every container with a gpuhub.container
// label, sent after the inventory of each connection and whenever the set or
// a status changes.
nlohmann::json ContainersReportJson(const std::vector<ContainerState>& containers);
Result<std::vector<ContainerState>> ContainersReportFromJson(const nlohmann::json& data);

}  // namespace gpuhub::proto
