// DockerClient: the agent's client of the Docker Engine API (Docker, or Podman's
// Docker-compatible service) over a unix socket, API version 1.41.
//
// Every call opens its own connection (cheap over a unix socket), so calls may run concurrently,
// and the object is immutable after construction: it is thread-safe. All calls are coroutines run
// on the caller's executor; none throws for expected failures. Connecting, sending and reading a
// reply are bounded by the timeout (Stop and Restart add their grace period; a pull's progress
// stream and an exec's output have only idle/no limits, see below).
//
// Errors: HTTP 404 -> kNotFound, 409 -> kConflict, 400 -> kInvalidArgument, each with the
// engine's message; Podman's 500s for a name in use or a container in the wrong state ->
// kConflict as Docker's 409s; any other status >= 400 -> kInternal ("container runtime: <status>
// <message>"). No connection, a timeout or a dropped connection -> kUnavailable ("cannot reach
// the container runtime at <path>: <reason>").
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace gpuhub::agent::runtime {

template <typename T>
using awaitable = boost::asio::awaitable<T>;

// docker_host: "unix:///path/to/sock" or a plain absolute path -> the socket path;
// InvalidArgument for anything else (tcp://, relative, too long for a unix socket).
Result<std::string> ParseDockerHost(std::string_view docker_host);

struct PortBinding {
  int container = 0;
  int host = 0;
  bool operator==(const PortBinding&) const = default;
};

struct ContainerSummary {
  std::string id, name;      // name without the leading '/'
  std::string image, state;  // state: created|running|paused|restarting|removing|exited|dead
  std::map<std::string, std::string> labels;
  std::vector<PortBinding> ports;  // published tcp ports, sorted, no duplicates
};

struct ExecInfo {
  bool running = false;
  std::optional<int> exit_code;  // set once the command has ended
  int64_t pid = 0;
};

class DockerClient {
 public:
  DockerClient(std::string socket_path, std::chrono::milliseconds timeout);

  const std::string& socket_path() const { return socket_path_; }

  // GET /version: the engine's answer as it is.
  awaitable<Result<nlohmann::json>> Version() const;
  // POST /containers/create?name=: the new container's id.
  awaitable<Result<std::string>> CreateContainer(const std::string& name,
                                                 const nlohmann::json& body) const;
  // Starts a container; one already running is OK (304).
  awaitable<Status> StartContainer(const std::string& id) const;
  // Stops (SIGTERM, SIGKILL after timeout_s); one already stopped is OK (304).
  awaitable<Status> StopContainer(const std::string& id, int timeout_s) const;
  awaitable<Status> RestartContainer(const std::string& id, int timeout_s) const;
  // DELETE /containers/{id}?force=: force also removes a running container.
  awaitable<Status> RemoveContainer(const std::string& id, bool force) const;
  // GET /containers/{id}/json, mapped to the list's shape (image: the name it was created from).
  awaitable<Result<ContainerSummary>> InspectContainer(const std::string& id) const;
  // All containers (running or not) carrying `label` ("key" or "key=value"; empty: all).
  awaitable<Result<std::vector<ContainerSummary>>> ListContainers(const std::string& label) const;
  // Pulls `ref` (tag "latest" when it names none), reading the progress stream to its end; an
  // error in the stream is kInternal. The stream may pause for max(timeout, 5 min) at most.
  awaitable<Status> PullImage(const std::string& ref) const;
  // GET /images/{ref}/json: 200 true, 404 false.
  awaitable<Result<bool>> ImageExists(const std::string& ref) const;
  // Creates an exec with stdout and stderr attached and no TTY: its id.
  awaitable<Result<std::string>> CreateExec(const std::string& id,
                                            const std::vector<std::string>& cmd,
                                            const std::vector<std::string>& env) const;
  // Starts the exec and calls on_output(stream, bytes) (1 stdout, 2 stderr) as output arrives
  // until the stream ends (a frame may come in pieces, see docker_stream.hpp). Connecting and the
  // reply's header are bounded by the timeout, the output is not (a lease runs for hours): it
  // returns when the command ends (kill it, or stop the container, to end it early).
  awaitable<Status> StartExec(
      const std::string& exec_id,
      std::function<void(int stream, std::string_view data)> on_output) const;
  // GET /exec/{id}/json.
  awaitable<Result<ExecInfo>> InspectExec(const std::string& exec_id) const;

 private:
  std::string socket_path_;
  std::chrono::milliseconds timeout_;
};

}  // namespace gpuhub::agent::runtime
