// Following a task to its end (`gpuhub run --wait`, `gpuhub log -f`).
//
// State changes come from the browser WebSocket /ws (pushed to the task's
// owner), with the task lists (GET /api/task/machine/<id>) read once after
// subscribing, so a change made before the subscription is not missed, and
// then every few seconds as a fallback (every second when the WebSocket is
// unavailable or the caller is not the owner). Output comes from the log
// (GET /api/task/<id>/log) read every 300 ms and passed through LogTail, so
// every byte is printed once; after the task ended the log is read until it
// stops changing, since the agent's last output may follow its final state.
// Blocks the calling thread (runs its own io_context).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>

#include "cli/api.hpp"

namespace gpuhub::cli {

// True for completed, failed, cancelled, expired and lost.
bool IsFinal(const std::string& status);

// Follows task `task_id` on `machine_id`; `out` gets its output as it comes,
// `err` notes about lost output. Returns the task as last listed.
Result<nlohmann::json> FollowTask(const Api& api, int64_t task_id, const std::string& machine_id,
                                  std::ostream& out, std::ostream& err);

}  // namespace gpuhub::cli
