#include "agent/runtime/docker_client.hpp"

#include <sys/un.h>

#include <algorithm>
#include <array>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <charconv>
#include <exception>
#include <limits>

#include "agent/runtime/docker_stream.hpp"
#include "common/percent_encode.hpp"

namespace gpuhub::agent::runtime {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using nlohmann::json;
using Local = net::local::stream_protocol;
using Stream = beast::basic_stream<Local, net::any_io_executor, beast::unlimited_rate_policy>;
using std::chrono::milliseconds;

constexpr std::string_view kApiPrefix = "/v1.41";
constexpr size_t kMaxReplyBody = size_t{64} << 20;   // a buffered reply (lists of containers)
constexpr size_t kMaxErrorBody = size_t{1} << 20;    // the body of an error reply
constexpr size_t kMaxPullLine = size_t{1} << 20;     // one progress message of a pull
constexpr auto kPullIdle = std::chrono::minutes(5);  // a pull may be silent while it unpacks

auto Redirect(beast::error_code& ec) { return net::redirect_error(net::use_awaitable, ec); }

// How long reading a successful reply's body may take.
enum class BodyTime {
  kDeadline,  // together with the header: the client's timeout (plus any grace)
  kIdle,      // each read: max(timeout, kPullIdle)
  kNone,      // no limit (exec output)
};

struct Exchange {
  http::verb verb;
  std::string target;  // below the API prefix, encoded
  std::optional<std::string> body;
  milliseconds grace{0};  // added to the reply's deadline (a stop's own timeout)
  BodyTime body_time = BodyTime::kDeadline;
  // With a sink, a 2xx reply's body goes there as it arrives instead of into Reply::body.
  std::function<Status(std::string_view)> sink;
};

struct Reply {
  unsigned status = 0;
  std::string body;
};

// --- Helpers outside the coroutines: GCC 12 miscompiles braced JSON initializers with string
// literals, .value("k", "literal") and conditional temporaries inside them.

Error Unreachable(const std::string& path, const beast::error_code& ec) {
  return {ErrorCode::kUnavailable,
          "cannot reach the container runtime at " + path + ": " + ec.message()};
}

// A failure while reading a reply: a dropped connection or timeout is kUnavailable, an
// unparseable reply kInternal.
Error ReadFailed(const std::string& path, const beast::error_code& ec) {
  if (ec.category() == http::make_error_code(http::error::bad_version).category() &&
      ec != http::error::partial_message) {
    return Internal("container runtime at " + path + " sent a bad reply: " + ec.message());
  }
  return Unreachable(path, ec);
}

Result<Local::endpoint> Endpoint(const std::string& path) {
  try {
    return Local::endpoint(path);
  } catch (const std::exception& e) {  // a path too long for sockaddr_un
    return Error{ErrorCode::kUnavailable,
                 "cannot reach the container runtime at " + path + ": " + e.what()};
  }
}

http::request<http::string_body> MakeRequest(const Exchange& x) {
  http::request<http::string_body> req{x.verb, std::string(kApiPrefix) + x.target, 11};
  req.set(http::field::host, "docker");
  req.set(http::field::user_agent, "gpuhub-agent");
  if (x.body) {
    req.set(http::field::content_type, "application/json");
    req.body() = *x.body;
  }
  req.prepare_payload();
  return req;
}

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string Trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

// Docker answers 409 for a name in use or a container in the wrong state; Podman 4 answers 500
// with these causes.
bool PodmanConflict(const std::string& cause) {
  return cause == "that name is already in use" || cause == "container state improper";
}

Error HttpError(const Reply& r) {
  json j = json::parse(r.body, nullptr, false);
  std::string message;
  std::string cause;
  if (j.is_object()) {
    message = Str(j, "message");
    cause = Str(j, "cause");
  }
  if (message.empty()) message = Trimmed(r.body.substr(0, 200));
  if (message.empty()) message = std::string(http::obsolete_reason(http::int_to_status(r.status)));
  switch (r.status) {
    case 400:
      return InvalidArgument(message);
    case 404:
      return NotFound(message);
    case 409:
      return Conflict(message);
    default:
      if (r.status == 500 && PodmanConflict(cause)) return Conflict(message);
      return Internal("container runtime: " + std::to_string(r.status) + " " + message);
  }
}

Status Expect(const Reply& r, bool not_modified_ok) {
  if (r.status / 100 == 2 || (not_modified_ok && r.status == 304)) return Status::Ok();
  return HttpError(r);
}

Result<json> ParseBody(const Reply& r) {
  if (r.status / 100 != 2) return HttpError(r);
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded()) return Internal("container runtime sent a reply that is not JSON");
  return j;
}

Result<std::string> ParseId(const Reply& r) {
  auto j = ParseBody(r);
  if (!j.ok()) return j.error();
  std::string id = j->is_object() ? Str(*j, "Id") : std::string();
  if (id.empty()) return Internal("container runtime sent no Id");
  return id;
}

int ToPort(const json& j) {
  if (j.is_number_integer()) return j.get<int>();
  if (!j.is_string()) return 0;
  const std::string& s = j.get_ref<const std::string&>();
  int port = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), port);
  return ec == std::errc() && end == s.data() + s.size() ? port : 0;
}

void AddPort(std::vector<PortBinding>& ports, int container, int host) {
  if (container > 0 && container <= 65535 && host > 0 && host <= 65535) {
    ports.push_back({container, host});
  }
}

void SortPorts(std::vector<PortBinding>& ports) {
  auto key = [](const PortBinding& p) { return std::pair(p.container, p.host); };
  std::sort(ports.begin(), ports.end(), [&](auto& a, auto& b) { return key(a) < key(b); });
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
}

// {"80/tcp": [{"HostIp": "", "HostPort": "18080"}], "53/udp": null}: the tcp ones.
void AddPortMap(std::vector<PortBinding>& ports, const json& map) {
  if (!map.is_object()) return;
  for (const auto& [key, bindings] : map.items()) {
    size_t slash = key.find('/');
    if (slash == std::string::npos || key.substr(slash + 1) != "tcp" || !bindings.is_array()) {
      continue;
    }
    int container = ToPort(json(key.substr(0, slash)));
    for (const auto& b : bindings) {
      if (b.is_object() && b.contains("HostPort")) AddPort(ports, container, ToPort(b["HostPort"]));
    }
  }
}

std::map<std::string, std::string> Labels(const json& j) {
  std::map<std::string, std::string> labels;
  if (!j.is_object()) return labels;
  for (const auto& [k, v] : j.items()) {
    if (v.is_string()) labels[k] = v.get<std::string>();
  }
  return labels;
}

std::string WithoutSlash(std::string name) {
  if (name.starts_with('/')) name.erase(0, 1);
  return name;
}

// One entry of GET /containers/json.
ContainerSummary SummaryFromList(const json& c) {
  ContainerSummary s;
  s.id = Str(c, "Id");
  if (c.contains("Names") && c["Names"].is_array() && !c["Names"].empty() &&
      c["Names"][0].is_string()) {
    s.name = WithoutSlash(c["Names"][0].get<std::string>());
  }
  s.image = Str(c, "Image");
  s.state = Str(c, "State");
  if (c.contains("Labels")) s.labels = Labels(c["Labels"]);
  if (c.contains("Ports") && c["Ports"].is_array()) {
    for (const auto& p : c["Ports"]) {
      if (!p.is_object() || Str(p, "Type") != "tcp") continue;
      AddPort(s.ports, ToPort(p.value("PrivatePort", json())),
              ToPort(p.value("PublicPort", json())));
    }
  }
  SortPorts(s.ports);
  return s;
}

Result<std::vector<ContainerSummary>> ParseList(const Reply& r) {
  auto j = ParseBody(r);
  if (!j.ok()) return j.error();
  if (!j->is_array()) return Internal("container runtime sent a container list that is no list");
  std::vector<ContainerSummary> out;
  for (const auto& c : *j) {
    if (c.is_object()) out.push_back(SummaryFromList(c));
  }
  return out;
}

// GET /containers/{id}/json in the list's shape. Ports: the live ones, else (a stopped container
// under Docker) the configured ones.
Result<ContainerSummary> ParseInspect(const Reply& r) {
  auto j = ParseBody(r);
  if (!j.ok()) return j.error();
  if (!j->is_object()) return Internal("container runtime sent an inspect reply that is no object");
  const json& c = *j;
  ContainerSummary s;
  s.id = Str(c, "Id");
  s.name = WithoutSlash(Str(c, "Name"));
  if (c.contains("Config") && c["Config"].is_object()) {
    s.image = Str(c["Config"], "Image");
    if (c["Config"].contains("Labels")) s.labels = Labels(c["Config"]["Labels"]);
  }
  if (s.image.empty()) s.image = Str(c, "Image");
  if (c.contains("State") && c["State"].is_object()) s.state = Str(c["State"], "Status");
  if (c.contains("NetworkSettings") && c["NetworkSettings"].is_object() &&
      c["NetworkSettings"].contains("Ports")) {
    AddPortMap(s.ports, c["NetworkSettings"]["Ports"]);
  }
  if (s.ports.empty() && c.contains("HostConfig") && c["HostConfig"].is_object() &&
      c["HostConfig"].contains("PortBindings")) {
    AddPortMap(s.ports, c["HostConfig"]["PortBindings"]);
  }
  SortPorts(s.ports);
  return s;
}

Result<ExecInfo> ParseExecInfo(const Reply& r) {
  auto j = ParseBody(r);
  if (!j.ok()) return j.error();
  if (!j->is_object()) return Internal("container runtime sent an exec reply that is no object");
  ExecInfo info;
  const json& e = *j;
  info.running = e.contains("Running") && e["Running"].is_boolean() && e["Running"].get<bool>();
  // Podman reports ExitCode 0 while the command runs; Docker reports null.
  if (!info.running && e.contains("ExitCode") && e["ExitCode"].is_number_integer()) {
    info.exit_code = e["ExitCode"].get<int>();
  }
  if (e.contains("Pid") && e["Pid"].is_number_integer()) info.pid = e["Pid"].get<int64_t>();
  return info;
}

std::string ListTarget(const std::string& label) {
  std::string target = "/containers/json?all=1";
  if (!label.empty()) {
    json filters = json::object();
    filters["label"] = json::array({label});
    target += "&filters=" + PercentEncode(filters.dump());
  }
  return target;
}

// ref "name[:tag]" or "name@digest": fromImage the name, tag the tag (default "latest"); with a
// digest, fromImage the whole ref (Podman appends ":tag" to fromImage, so no tag then).
std::string PullTarget(const std::string& ref) {
  std::string target = "/images/create?fromImage=";
  if (ref.find('@') != std::string::npos) return target + PercentEncode(ref);
  size_t slash = ref.rfind('/');
  size_t colon = ref.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    return target + PercentEncode(ref.substr(0, colon)) +
           "&tag=" + PercentEncode(ref.substr(colon + 1));
  }
  return target + PercentEncode(ref) + "&tag=latest";
}

std::string CreateExecBody(const std::vector<std::string>& cmd,
                           const std::vector<std::string>& env) {
  json body = json::object();
  body["AttachStdin"] = false;
  body["AttachStdout"] = true;
  body["AttachStderr"] = true;
  body["Tty"] = false;
  body["Cmd"] = cmd;
  if (!env.empty()) body["Env"] = env;
  return body.dump();
}

std::string StartExecBody() {
  json body = json::object();
  body["Detach"] = false;
  body["Tty"] = false;
  return body.dump();
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string StopTarget(const std::string& id, std::string_view verb, int timeout_s) {
  return "/containers/" + PercentEncode(id) + "/" + std::string(verb) +
         "?t=" + std::to_string(std::max(timeout_s, 0));
}

std::string RemoveTarget(const std::string& id, bool force) {
  return "/containers/" + PercentEncode(id) + (force ? "?force=true" : "?force=false");
}

// Reads a pull's progress stream: one JSON object a line; fails on the first that carries an
// error.
class PullProgress {
 public:
  explicit PullProgress(std::string ref) : ref_(std::move(ref)) {}

  Status Feed(std::string_view bytes) {
    for (;;) {
      size_t nl = bytes.find('\n');
      if (nl == std::string_view::npos) break;
      line_.append(bytes.substr(0, nl));
      bytes.remove_prefix(nl + 1);
      Status s = Line();
      line_.clear();
      if (!s.ok()) return s;
    }
    line_.append(bytes);
    if (line_.size() > kMaxPullLine)
      return Internal("pulling " + ref_ + ": progress line too long");
    return Status::Ok();
  }
  Status Finish() { return Line(); }

 private:
  Status Line() {
    json j = json::parse(line_, nullptr, false);
    if (!j.is_object()) return Status::Ok();
    std::string error = Str(j, "error");
    if (error.empty() && j.contains("errorDetail") && j["errorDetail"].is_object()) {
      error = Str(j["errorDetail"], "message");
    }
    if (error.empty()) return Status::Ok();
    return Internal("pulling " + ref_ + ": " + error);
  }

  std::string ref_;
  std::string line_;
};

Status ExecStreamEnd(const MultiplexedStreamDemuxer& demuxer) {
  if (demuxer.Clean()) return Status::Ok();
  return Internal("container runtime ended the exec output inside a frame");
}

// One request on its own connection. A 2xx reply's body goes to x.sink when there is one;
// otherwise (and always for other statuses) it is returned in Reply::body.
awaitable<Result<Reply>> Send(const std::string& path, milliseconds timeout, const Exchange& x) {
  auto endpoint = Endpoint(path);
  if (!endpoint.ok()) co_return endpoint.error();
  Stream stream(co_await net::this_coro::executor);
  beast::error_code ec;
  stream.expires_after(timeout);
  co_await stream.async_connect(*endpoint, Redirect(ec));
  if (ec) co_return Unreachable(path, ec);
  auto request = MakeRequest(x);
  stream.expires_after(timeout);
  co_await http::async_write(stream, request, Redirect(ec));
  if (ec) co_return Unreachable(path, ec);

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  // Limited below, where it matters. Not boost::none: Boost 1.74 compares a Content-Length with
  // an empty optional as "over the limit".
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  stream.expires_after(timeout + x.grace);
  co_await http::async_read_header(stream, buffer, parser, Redirect(ec));
  if (ec) co_return ReadFailed(path, ec);

  Reply reply;
  reply.status = parser.get().result_int();
  bool to_sink = x.sink && reply.status / 100 == 2;
  BodyTime body_time = BodyTime::kDeadline;
  if (to_sink) body_time = x.body_time;
  size_t limit = kMaxErrorBody;
  if (reply.status / 100 == 2) limit = kMaxReplyBody;
  if (body_time == BodyTime::kNone) stream.expires_never();
  const milliseconds idle = std::max(timeout, milliseconds(kPullIdle));
  std::array<char, 16384> chunk;
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    if (body_time == BodyTime::kIdle) stream.expires_after(idle);
    // read_some, not read: read would wait to fill `chunk` before passing on a short frame.
    co_await http::async_read_some(stream, buffer, parser, Redirect(ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return ReadFailed(path, ec);
    std::string_view got(chunk.data(), chunk.size() - parser.get().body().size);
    if (to_sink) {
      Status s = x.sink(got);
      if (!s.ok()) co_return s.error();
    } else if (reply.body.size() + got.size() > limit) {
      co_return Internal("container runtime at " + path + " sent a reply over " +
                         std::to_string(limit >> 20) + " MiB");
    } else {
      reply.body.append(got);
    }
  }
  co_return reply;
}

Exchange Get(std::string target) { return {http::verb::get, std::move(target), std::nullopt}; }
Exchange Delete(std::string target) {
  return {http::verb::delete_, std::move(target), std::nullopt};
}
Exchange Post(std::string target, std::optional<std::string> body) {
  return {http::verb::post, std::move(target), std::move(body)};
}

}  // namespace

Result<std::string> ParseDockerHost(std::string_view docker_host) {
  std::string_view path = docker_host;
  if (path.starts_with("unix://")) {
    path.remove_prefix(7);
  } else if (path.find("://") != std::string_view::npos) {
    return InvalidArgument("docker host \"" + std::string(docker_host) +
                           "\": only unix:// sockets are supported");
  }
  if (!path.starts_with('/')) {
    return InvalidArgument("docker host \"" + std::string(docker_host) +
                           "\" must be unix:///absolute/path or an absolute path");
  }
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return InvalidArgument("docker host \"" + std::string(docker_host) +
                           "\": the socket path is too long");
  }
  return std::string(path);
}

DockerClient::DockerClient(std::string socket_path, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout) {}

awaitable<Result<json>> DockerClient::Version() const {
  auto reply = co_await Send(socket_path_, timeout_, Get("/version"));
  if (!reply.ok()) co_return reply.error();
  co_return ParseBody(*reply);
}

awaitable<Result<std::string>> DockerClient::CreateContainer(const std::string& name,
                                                             const json& body) const {
  auto reply = co_await Send(socket_path_, timeout_,
                             Post("/containers/create?name=" + PercentEncode(name), Dump(body)));
  if (!reply.ok()) co_return reply.error();
  co_return ParseId(*reply);
}

awaitable<Status> DockerClient::StartContainer(const std::string& id) const {
  auto reply = co_await Send(socket_path_, timeout_,
                             Post("/containers/" + PercentEncode(id) + "/start", {}));
  if (!reply.ok()) co_return reply.error();
  co_return Expect(*reply, true);
}

awaitable<Status> DockerClient::StopContainer(const std::string& id, int timeout_s) const {
  Exchange x = Post(StopTarget(id, "stop", timeout_s), {});
  x.grace = std::chrono::seconds(std::max(timeout_s, 0));
  auto reply = co_await Send(socket_path_, timeout_, x);
  if (!reply.ok()) co_return reply.error();
  co_return Expect(*reply, true);
}

awaitable<Status> DockerClient::RestartContainer(const std::string& id, int timeout_s) const {
  Exchange x = Post(StopTarget(id, "restart", timeout_s), {});
  x.grace = std::chrono::seconds(std::max(timeout_s, 0));
  auto reply = co_await Send(socket_path_, timeout_, x);
  if (!reply.ok()) co_return reply.error();
  co_return Expect(*reply, false);
}

awaitable<Status> DockerClient::RemoveContainer(const std::string& id, bool force) const {
  auto reply = co_await Send(socket_path_, timeout_, Delete(RemoveTarget(id, force)));
  if (!reply.ok()) co_return reply.error();
  co_return Expect(*reply, false);
}

awaitable<Result<ContainerSummary>> DockerClient::InspectContainer(const std::string& id) const {
  auto reply =
      co_await Send(socket_path_, timeout_, Get("/containers/" + PercentEncode(id) + "/json"));
  if (!reply.ok()) co_return reply.error();
  co_return ParseInspect(*reply);
}

awaitable<Result<std::vector<ContainerSummary>>> DockerClient::ListContainers(
    const std::string& label) const {
  auto reply = co_await Send(socket_path_, timeout_, Get(ListTarget(label)));
  if (!reply.ok()) co_return reply.error();
  co_return ParseList(*reply);
}

awaitable<Status> DockerClient::PullImage(const std::string& ref) const {
  PullProgress progress(ref);
  Exchange x = Post(PullTarget(ref), {});
  x.body_time = BodyTime::kIdle;
  x.sink = [&progress](std::string_view bytes) { return progress.Feed(bytes); };
  auto reply = co_await Send(socket_path_, timeout_, x);
  if (!reply.ok()) co_return reply.error();
  Status s = Expect(*reply, false);
  if (!s.ok()) co_return s;
  co_return progress.Finish();
}

awaitable<Result<bool>> DockerClient::ImageExists(const std::string& ref) const {
  auto reply =
      co_await Send(socket_path_, timeout_, Get("/images/" + PercentEncode(ref) + "/json"));
  if (!reply.ok()) co_return reply.error();
  if (reply->status == 404) co_return false;
  Status s = Expect(*reply, false);
  if (!s.ok()) co_return s.error();
  co_return true;
}

awaitable<Result<std::string>> DockerClient::CreateExec(const std::string& id,
                                                        const std::vector<std::string>& cmd,
                                                        const std::vector<std::string>& env) const {
  auto reply =
      co_await Send(socket_path_, timeout_,
                    Post("/containers/" + PercentEncode(id) + "/exec", CreateExecBody(cmd, env)));
  if (!reply.ok()) co_return reply.error();
  co_return ParseId(*reply);
}

awaitable<Status> DockerClient::StartExec(
    const std::string& exec_id,
    std::function<void(int stream, std::string_view data)> on_output) const {
  MultiplexedStreamDemuxer demuxer;
  Exchange x = Post("/exec/" + PercentEncode(exec_id) + "/start", StartExecBody());
  x.body_time = BodyTime::kNone;
  x.sink = [&](std::string_view bytes) { return demuxer.Feed(bytes, on_output); };
  auto reply = co_await Send(socket_path_, timeout_, x);
  if (!reply.ok()) co_return reply.error();
  Status s = Expect(*reply, false);
  if (!s.ok()) co_return s;
  co_return ExecStreamEnd(demuxer);
}

awaitable<Result<ExecInfo>> DockerClient::InspectExec(const std::string& exec_id) const {
  auto reply =
      co_await Send(socket_path_, timeout_, Get("/exec/" + PercentEncode(exec_id) + "/json"));
  if (!reply.ok()) co_return reply.error();
  co_return ParseExecInfo(*reply);
}

}  // namespace gpuhub::agent::runtime
