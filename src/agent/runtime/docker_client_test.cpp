// DockerClient against a fake engine on a local socket that answers with responses recorded from
// Podman 4.3.1's Docker-compatible service (testdata/*.http, made by testdata/record.py), plus a
// few written by hand for Docker's forms and for transport failures.
#include "agent/runtime/docker_client.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

namespace gpuhub::agent::runtime {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Local = net::local::stream_protocol;
using nlohmann::json;
using std::chrono::milliseconds;

constexpr milliseconds kTimeout{200};

std::string Recorded(const std::string& name) {
  std::ifstream in(std::string(GPUHUB_DOCKER_TESTDATA) + "/" + name + ".http", std::ios::binary);
  EXPECT_TRUE(in) << name;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The parts of a raw response.
std::string HeadOf(const std::string& raw) { return raw.substr(0, raw.find("\r\n\r\n") + 4); }
std::string BodyOf(const std::string& raw) { return raw.substr(raw.find("\r\n\r\n") + 4); }

std::string Frame(int stream, std::string_view payload) {
  std::string f(8, '\0');
  f[0] = static_cast<char>(stream);
  auto n = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) f[static_cast<size_t>(7 - i)] = static_cast<char>(n >> (8 * i));
  return f + std::string(payload);
}

std::string Chunked(std::string_view body, size_t chunk) {
  std::string out;
  char size[32];
  for (size_t i = 0; i < body.size(); i += chunk) {
    auto piece = body.substr(i, chunk);
    snprintf(size, sizeof size, "%zx\r\n", piece.size());
    out += size;
    out += piece;
    out += "\r\n";
  }
  return out + "0\r\n\r\n";
}

std::string Response(std::string_view status, std::string_view content_type, std::string_view body,
                     bool content_length = true) {
  std::string r = "HTTP/1.1 " + std::string(status) + "\r\n";
  if (!content_type.empty()) r += "Content-Type: " + std::string(content_type) + "\r\n";
  if (content_length) r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + std::string(body);
}

auto Redirect(beast::error_code& ec) { return net::redirect_error(net::use_awaitable, ec); }

// A Docker Engine stand-in: serves connections in order of arrival, one scripted responder each,
// after reading that connection's request (kept in `seen`).
class FakeEngine {
 public:
  using Responder = std::function<net::awaitable<void>(Local::socket&)>;

  explicit FakeEngine(net::io_context& ioc) : ioc_(ioc), acceptor_(ioc) {
    char dir[] = "/tmp/gpuhub-docker-test-XXXXXX";
    EXPECT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/engine.sock";
    acceptor_.open();
    acceptor_.bind(Local::endpoint(path_));
    acceptor_.listen();
  }
  ~FakeEngine() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  const std::string& path() const { return path_; }
  const std::string& dir() const { return dir_; }

  void Then(Responder r) { script_.push_back(std::move(r)); }
  // Answers with `raw` and then waits for the client to close (keep-alive), or closes itself.
  void Reply(std::string raw, bool close = false) {
    Then([raw = std::move(raw), close](Local::socket& s) -> net::awaitable<void> {
      beast::error_code ec;
      co_await net::async_write(s, net::buffer(raw), Redirect(ec));
      if (close) {
        s.shutdown(Local::socket::shutdown_send, ec);
      } else {
        co_await WaitForClose(s);
      }
    });
  }
  // Reads the request and never answers.
  void Silent() {
    Then([](Local::socket& s) { return WaitForClose(s); });
  }

  static net::awaitable<void> WaitForClose(Local::socket& s) {
    char byte;
    beast::error_code ec;
    while (!ec) co_await s.async_read_some(net::buffer(&byte, 1), Redirect(ec));
  }

  void Start() { net::co_spawn(ioc_, Accept(), Rethrow); }
  void Stop() {
    beast::error_code ec;
    acceptor_.close(ec);
    for (auto& s : open_) s->close(ec);
  }

  std::vector<http::request<http::string_body>> seen;

 private:
  static void Rethrow(std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  }

  net::awaitable<void> Accept() {
    for (auto& responder : script_) {
      auto socket = std::make_shared<Local::socket>(ioc_);
      beast::error_code ec;
      co_await acceptor_.async_accept(*socket, Redirect(ec));
      if (ec) co_return;
      open_.push_back(socket);
      net::co_spawn(ioc_, Serve(socket, responder), Rethrow);
    }
  }

  net::awaitable<void> Serve(std::shared_ptr<Local::socket> socket, Responder responder) {
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    beast::error_code ec;
    co_await http::async_read(*socket, buffer, request, Redirect(ec));
    if (ec) co_return;
    seen.push_back(std::move(request));
    co_await responder(*socket);
  }

  net::io_context& ioc_;
  Local::acceptor acceptor_;
  std::string dir_, path_;
  std::vector<Responder> script_;
  std::vector<std::shared_ptr<Local::socket>> open_;
};

class DockerClientTest : public ::testing::Test {
 protected:
  // Runs `call` against the engine's script and returns its result.
  template <typename T>
  T Run(net::awaitable<T> call) {
    std::optional<T> out;
    engine_.Start();
    net::co_spawn(
        ioc_,
        [&]() -> net::awaitable<void> {
          out.emplace(co_await std::move(call));
          engine_.Stop();
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
    ioc_.run();
    ioc_.restart();
    return std::move(*out);
  }

  const http::request<http::string_body>& Seen(size_t i = 0) {
    EXPECT_GT(engine_.seen.size(), i);
    return engine_.seen.at(i);
  }
  json SeenJson(size_t i = 0) { return json::parse(Seen(i).body()); }

  net::io_context ioc_;
  FakeEngine engine_{ioc_};
  DockerClient client_{engine_.path(), kTimeout};
};

void ExpectError(const Status& s, ErrorCode code, std::string_view text) {
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, code) << s.error().message;
  EXPECT_NE(s.error().message.find(text), std::string::npos) << s.error().message;
}
template <typename T>
void ExpectError(const Result<T>& r, ErrorCode code, std::string_view text) {
  ASSERT_FALSE(r.ok());
  ExpectError(Status(r.error()), code, text);
}

// --- ParseDockerHost

TEST(ParseDockerHost, Forms) {
  auto a = ParseDockerHost("unix:///run/podman/podman.sock");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, "/run/podman/podman.sock");
  auto b = ParseDockerHost("/var/run/docker.sock");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, "/var/run/docker.sock");
  for (const char* bad : {"", "unix://", "unix://relative.sock", "docker.sock",
                          "tcp://127.0.0.1:2375", "npipe:////./pipe/docker_engine", "ssh://h"}) {
    auto r = ParseDockerHost(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  }
  EXPECT_FALSE(ParseDockerHost("unix:///" + std::string(200, 'x')).ok());
}

// --- Every call, with Podman's recorded answers

TEST_F(DockerClientTest, Version) {
  engine_.Reply(Recorded("version"));
  auto v = Run(client_.Version());
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ((*v)["ApiVersion"], "1.41");
  EXPECT_EQ((*v)["Components"][0]["Name"], "Podman Engine");
  EXPECT_EQ(Seen().method(), http::verb::get);
  EXPECT_EQ(Seen().target(), "/v1.41/version");
  EXPECT_EQ(Seen()[http::field::host], "docker");
  EXPECT_TRUE(Seen().body().empty());
}

TEST_F(DockerClientTest, CreateContainer) {
  engine_.Reply(Recorded("create"));
  json body = {{"Image", "localhost/gpuhub-test:latest"},
               {"Cmd", {"sleep", "600"}},
               {"Labels", {{"gpuhub", "1"}}}};
  auto id = Run(client_.CreateContainer("gpuhub-rec-a", body));
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(*id, "28f6c27ccfae5195a6de71d8a5cc63fe2841a8e1ae03fde6968a80363dcc2f84");
  EXPECT_EQ(Seen().method(), http::verb::post);
  EXPECT_EQ(Seen().target(), "/v1.41/containers/create?name=gpuhub-rec-a");
  EXPECT_EQ(Seen()[http::field::content_type], "application/json");
  EXPECT_EQ(SeenJson(), body);
}

TEST_F(DockerClientTest, CreateContainerNameInUseIsConflict) {
  // Podman 4.3 answers 500 with cause "that name is already in use"; Docker answers 409.
  engine_.Reply(Recorded("create_conflict"));
  ExpectError(Run(client_.CreateContainer("gpuhub-rec-a", json::object())), ErrorCode::kConflict,
              "the container name \"gpuhub-rec-a\" is already in use");
}

TEST_F(DockerClientTest, CreateContainerDocker409) {
  engine_.Reply(Response("409 Conflict", "application/json",
                         R"({"message":"Conflict. The container name \"/x\" is already in use"})"));
  ExpectError(Run(client_.CreateContainer("x", json::object())), ErrorCode::kConflict,
              "Conflict. The container name \"/x\" is already in use");
}

TEST_F(DockerClientTest, CreateContainerUnknownImageIsNotFound) {
  engine_.Reply(Recorded("create_bad_image"));
  ExpectError(Run(client_.CreateContainer("b", json::object())), ErrorCode::kNotFound,
              "no such image: localhost/nope:latest");
}

TEST_F(DockerClientTest, CreateContainerOther500IsInternal) {
  engine_.Reply(Recorded("create_invalid"));
  ExpectError(Run(client_.CreateContainer("c", json::object())), ErrorCode::kInternal,
              "container runtime: 500 decode(): json: cannot unmarshal");
}

TEST_F(DockerClientTest, CreateContainerDocker400IsInvalidArgument) {
  engine_.Reply(
      Response("400 Bad Request", "application/json", R"({"message":"invalid reference format"})"));
  auto r = Run(client_.CreateContainer("c", json::object()));
  ExpectError(r, ErrorCode::kInvalidArgument, "invalid reference format");
  EXPECT_EQ(r.error().message, "invalid reference format");
}

TEST_F(DockerClientTest, CreateContainerEncodesTheName) {
  engine_.Reply(Recorded("create"));
  ASSERT_TRUE(Run(client_.CreateContainer("a b&c=d", json::object())).ok());
  EXPECT_EQ(Seen().target(), "/v1.41/containers/create?name=a%20b%26c%3Dd");
}

TEST_F(DockerClientTest, StartContainer) {
  engine_.Reply(Recorded("start"));
  Status s = Run(client_.StartContainer("abc"));
  EXPECT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(Seen().method(), http::verb::post);
  EXPECT_EQ(Seen().target(), "/v1.41/containers/abc/start");
}

TEST_F(DockerClientTest, StartContainerAlreadyStartedIsOk) {
  engine_.Reply(Recorded("start_again"));
  Status s = Run(client_.StartContainer("abc"));
  EXPECT_TRUE(s.ok()) << s.error().message;
}

TEST_F(DockerClientTest, StartUnknownContainer) {
  engine_.Reply(Recorded("inspect_unknown"));
  ExpectError(Run(client_.StartContainer("gpuhub-rec-missing")), ErrorCode::kNotFound,
              "no container with name or ID \"gpuhub-rec-missing\" found");
}

TEST_F(DockerClientTest, StopContainer) {
  engine_.Reply(Recorded("stop"));
  Status s = Run(client_.StopContainer("abc", 5));
  EXPECT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(Seen().method(), http::verb::post);
  EXPECT_EQ(Seen().target(), "/v1.41/containers/abc/stop?t=5");
}

TEST_F(DockerClientTest, StopContainerAlreadyStoppedIsOk) {
  engine_.Reply(Recorded("stop_again"));
  Status s = Run(client_.StopContainer("abc", 1));
  EXPECT_TRUE(s.ok()) << s.error().message;
}

TEST_F(DockerClientTest, StopMayTakeItsGracePeriodBeyondTheTimeout) {
  engine_.Then([this](Local::socket& s) -> net::awaitable<void> {
    net::steady_timer wait(ioc_, milliseconds(600));  // 3x the client's timeout, < 1 s grace
    co_await wait.async_wait(net::use_awaitable);
    co_await net::async_write(s, net::buffer(Recorded("stop")), net::use_awaitable);
    co_await FakeEngine::WaitForClose(s);
  });
  Status s = Run(client_.StopContainer("abc", 1));
  EXPECT_TRUE(s.ok()) << s.error().message;
}

TEST_F(DockerClientTest, RestartContainer) {
  engine_.Reply(Recorded("restart"));
  Status s = Run(client_.RestartContainer("abc", 0));
  EXPECT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(Seen().target(), "/v1.41/containers/abc/restart?t=0");
}

TEST_F(DockerClientTest, RemoveContainer) {
  engine_.Reply(Recorded("remove"));
  Status s = Run(client_.RemoveContainer("abc", true));
  EXPECT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(Seen().method(), http::verb::delete_);
  EXPECT_EQ(Seen().target(), "/v1.41/containers/abc?force=true");
}

TEST_F(DockerClientTest, RemoveUnknownContainerIsNotFound) {
  engine_.Reply(Recorded("remove_unknown"));
  ExpectError(Run(client_.RemoveContainer("gpuhub-rec-missing", false)), ErrorCode::kNotFound,
              "no such container");
  EXPECT_EQ(Seen().target(), "/v1.41/containers/gpuhub-rec-missing?force=false");
}

TEST_F(DockerClientTest, RemoveRunningContainerWithoutForceIsConflict) {
  engine_.Reply(Recorded("remove_running"));
  ExpectError(Run(client_.RemoveContainer("abc", false)), ErrorCode::kConflict,
              "running or paused containers cannot be removed without force");
}

TEST_F(DockerClientTest, InspectContainer) {
  engine_.Reply(Recorded("inspect"));  // chunked
  auto c = Run(client_.InspectContainer("gpuhub-rec-a"));
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(Seen().method(), http::verb::get);
  EXPECT_EQ(Seen().target(), "/v1.41/containers/gpuhub-rec-a/json");
  EXPECT_EQ(c->id, "28f6c27ccfae5195a6de71d8a5cc63fe2841a8e1ae03fde6968a80363dcc2f84");
  EXPECT_EQ(c->name, "gpuhub-rec-a");
  EXPECT_EQ(c->image, "localhost/gpuhub-test:latest");
  EXPECT_EQ(c->state, "running");
  EXPECT_EQ(c->labels,
            (std::map<std::string, std::string>{{"gpuhub", "1"}, {"gpuhub.user", "alice"}}));
  EXPECT_EQ(c->ports, (std::vector<PortBinding>{{80, 18080}}));
}

TEST_F(DockerClientTest, InspectExitedContainer) {
  engine_.Reply(Recorded("inspect_exited"));
  auto c = Run(client_.InspectContainer("gpuhub-rec-a"));
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->state, "exited");
  EXPECT_EQ(c->ports, (std::vector<PortBinding>{{80, 18080}}));
}

TEST_F(DockerClientTest, InspectPorts) {
  engine_.Reply(Recorded("inspect_ports"));
  auto c = Run(client_.InspectContainer("gpuhub-rec-ports"));
  ASSERT_TRUE(c.ok()) << c.error().message;
  // 53/udp is left out; 80/tcp is published twice.
  EXPECT_EQ(c->ports, (std::vector<PortBinding>{{80, 18081}, {80, 18083}, {8080, 18082}}));
  EXPECT_EQ(c->labels, (std::map<std::string, std::string>{{"gpuhub.user", "bob"}}));
}

TEST_F(DockerClientTest, InspectStoppedDockerContainerUsesConfiguredPorts) {
  // Docker empties NetworkSettings.Ports of a stopped container; duplicates for IPv4 and IPv6.
  json c = json::parse(R"({
    "Id": "abc", "Name": "/web", "Image": "sha256:0123",
    "Config": {"Image": "nginx:1.25", "Labels": null},
    "State": {"Status": "exited"},
    "NetworkSettings": {"Ports": {}},
    "HostConfig": {"PortBindings": {
      "80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
      "443/tcp": [{"HostIp": "", "HostPort": ""}]}}})");
  engine_.Reply(Response("200 OK", "application/json", c.dump()));
  auto s = Run(client_.InspectContainer("web"));
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->name, "web");
  EXPECT_EQ(s->image, "nginx:1.25");
  EXPECT_TRUE(s->labels.empty());
  EXPECT_EQ(s->ports, (std::vector<PortBinding>{{80, 8080}}));
}

TEST_F(DockerClientTest, InspectUnknownContainer) {
  engine_.Reply(Recorded("inspect_unknown"));
  ExpectError(Run(client_.InspectContainer("gpuhub-rec-missing")), ErrorCode::kNotFound,
              "no such container");
}

TEST_F(DockerClientTest, ListContainers) {
  engine_.Reply(Recorded("list"));
  auto list = Run(client_.ListContainers("gpuhub.user=alice"));
  ASSERT_TRUE(list.ok()) << list.error().message;
  std::string target(Seen().target());
  const std::string prefix = "/v1.41/containers/json?all=1&filters=";
  ASSERT_TRUE(target.starts_with(prefix)) << target;
  EXPECT_EQ(target.substr(prefix.size()), "%7B%22label%22%3A%5B%22gpuhub.user%3Dalice%22%5D%7D");
  ASSERT_EQ(list->size(), 1u);
  const auto& c = (*list)[0];
  EXPECT_EQ(c.id, "28f6c27ccfae5195a6de71d8a5cc63fe2841a8e1ae03fde6968a80363dcc2f84");
  EXPECT_EQ(c.name, "gpuhub-rec-a");
  EXPECT_EQ(c.image, "localhost/gpuhub-test:latest");
  EXPECT_EQ(c.state, "running");
  EXPECT_EQ(c.labels,
            (std::map<std::string, std::string>{{"gpuhub", "1"}, {"gpuhub.user", "alice"}}));
  EXPECT_EQ(c.ports, (std::vector<PortBinding>{{80, 18080}}));
}

TEST_F(DockerClientTest, ListContainersPorts) {
  engine_.Reply(Recorded("list_ports"));
  auto list = Run(client_.ListContainers("gpuhub.user=bob"));
  ASSERT_TRUE(list.ok()) << list.error().message;
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "gpuhub-rec-ports");
  EXPECT_EQ((*list)[0].ports, (std::vector<PortBinding>{{80, 18081}, {80, 18083}, {8080, 18082}}));
}

TEST_F(DockerClientTest, ListContainersDockerDuplicatesAndUnpublished) {
  // Docker lists a port published on 0.0.0.0 and :: twice, and exposed ports without PublicPort.
  std::string body = R"([{"Id":"a","Names":["/one"],"Image":"img","State":"exited","Labels":{},
    "Ports":[{"IP":"0.0.0.0","PrivatePort":22,"PublicPort":2222,"Type":"tcp"},
             {"IP":"::","PrivatePort":22,"PublicPort":2222,"Type":"tcp"},
             {"PrivatePort":9000,"Type":"tcp"}]}])";
  engine_.Reply(Response("200 OK", "application/json", body));
  auto list = Run(client_.ListContainers("x"));
  ASSERT_TRUE(list.ok()) << list.error().message;
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].state, "exited");
  EXPECT_EQ((*list)[0].ports, (std::vector<PortBinding>{{22, 2222}}));
}

TEST_F(DockerClientTest, ListContainersEmpty) {
  engine_.Reply(Recorded("list_empty"));
  auto list = Run(client_.ListContainers("gpuhub.user=nobody"));
  ASSERT_TRUE(list.ok()) << list.error().message;
  EXPECT_TRUE(list->empty());
}

TEST_F(DockerClientTest, ListAllContainers) {
  engine_.Reply(Recorded("list_empty"));
  ASSERT_TRUE(Run(client_.ListContainers("")).ok());
  EXPECT_EQ(Seen().target(), "/v1.41/containers/json?all=1");
}

TEST_F(DockerClientTest, ImageExists) {
  engine_.Reply(Recorded("image_exists"));
  auto r = Run(client_.ImageExists("localhost/gpuhub-test:latest"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(*r);
  EXPECT_EQ(Seen().target(), "/v1.41/images/localhost%2Fgpuhub-test%3Alatest/json");
}

TEST_F(DockerClientTest, ImageMissing) {
  engine_.Reply(Recorded("image_missing"));
  auto r = Run(client_.ImageExists("localhost/nope:latest"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(*r);
}

TEST_F(DockerClientTest, ImageExistsOtherErrors) {
  engine_.Reply(Response("500 Internal Server Error", "application/json",
                         R"({"message":"storage is broken"})"));
  ExpectError(Run(client_.ImageExists("x")), ErrorCode::kInternal,
              "container runtime: 500 storage is broken");
}

TEST_F(DockerClientTest, PullFailureInTheProgressStream) {
  engine_.Reply(Recorded("pull_fail"));  // 200, chunked, {"error": ...}
  ExpectError(
      Run(client_.PullImage("quay.io/gpuhub/none")), ErrorCode::kInternal,
      "pulling quay.io/gpuhub/none: initializing source docker://quay.io/gpuhub/none:latest");
  EXPECT_EQ(Seen().method(), http::verb::post);
  EXPECT_EQ(Seen().target(), "/v1.41/images/create?fromImage=quay.io%2Fgpuhub%2Fnone&tag=latest");
}

TEST_F(DockerClientTest, PullSuccessReadsTheStreamToTheEnd) {
  std::string progress =
      "{\"status\":\"Pulling from library/busybox\",\"id\":\"1.36\"}\r\n"
      "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":1,\"total\":2},\"id\":\"a\"}\r\n"
      "{\"status\":\"Digest: sha256:00\"}\r\n"
      "{\"status\":\"Status: Downloaded newer image for busybox:1.36\"}\r\n";
  // Chunks that split the lines anywhere.
  engine_.Reply(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: "
      "chunked\r\n\r\n" +
      Chunked(progress, 7));
  Status s = Run(client_.PullImage("localhost:5000/lab/busybox:1.36"));
  EXPECT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(Seen().target(),
            "/v1.41/images/create?fromImage=localhost%3A5000%2Flab%2Fbusybox&tag=1.36");
}

TEST_F(DockerClientTest, PullErrorOnTheLastLineWithoutNewline) {
  engine_.Reply(
      Response("200 OK", "application/json",
               "{\"status\":\"Pulling\"}\n{\"errorDetail\":{\"message\":\"denied\"}}", false),
      true);
  ExpectError(Run(client_.PullImage("registry.example/x@sha256:abcd")), ErrorCode::kInternal,
              "pulling registry.example/x@sha256:abcd: denied");
  EXPECT_EQ(Seen().target(), "/v1.41/images/create?fromImage=registry.example%2Fx%40sha256%3Aabcd");
}

TEST_F(DockerClientTest, PullRefusedByStatus) {
  engine_.Reply(
      Response("404 Not Found", "application/json",
               R"({"message":"pull access denied for nope, repository does not exist"})"));
  ExpectError(Run(client_.PullImage("nope")), ErrorCode::kNotFound, "pull access denied for nope");
  EXPECT_EQ(Seen().target(), "/v1.41/images/create?fromImage=nope&tag=latest");
}

TEST_F(DockerClientTest, CreateExec) {
  engine_.Reply(Recorded("exec_create"));
  auto id = Run(client_.CreateExec("abc", {"sh", "-c", "echo out; echo err >&2; exit 3"}, {"A=1"}));
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(*id, "8e97cc8774cd4f155f8828f14c5d7676cfbecb2a5e6c690f0ad96f617a56a6df");
  EXPECT_EQ(Seen().method(), http::verb::post);
  EXPECT_EQ(Seen().target(), "/v1.41/containers/abc/exec");
  EXPECT_EQ(Seen()[http::field::content_type], "application/json");
  json body = SeenJson();
  EXPECT_EQ(body["AttachStdout"], true);
  EXPECT_EQ(body["AttachStderr"], true);
  EXPECT_EQ(body["AttachStdin"], false);
  EXPECT_EQ(body["Tty"], false);
  EXPECT_EQ(body["Cmd"], json({"sh", "-c", "echo out; echo err >&2; exit 3"}));
  EXPECT_EQ(body["Env"], json({"A=1"}));
}

TEST_F(DockerClientTest, CreateExecInStoppedContainerIsConflict) {
  engine_.Reply(Recorded("exec_create_stopped"));
  ExpectError(Run(client_.CreateExec("abc", {"true"}, {})), ErrorCode::kConflict,
              "can only create exec sessions on running containers");
  EXPECT_FALSE(SeenJson().contains("Env"));
}

using Output = std::vector<std::pair<int, std::string>>;

// Joins consecutive pieces of one stream.
std::function<void(int, std::string_view)> Collect(Output& out) {
  return [&out](int stream, std::string_view data) {
    if (!out.empty() && out.back().first == stream) {
      out.back().second += data;
    } else {
      out.emplace_back(stream, std::string(data));
    }
  };
}

TEST_F(DockerClientTest, StartExecPodmanStreamEndsAtEof) {
  // Podman: 200, Content-Type application/vnd.docker.raw-stream, no length, frames, then EOF.
  engine_.Reply(Recorded("exec_start"), true);
  Output out;
  Status s = Run(client_.StartExec("8e97cc87", Collect(out)));
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(out, (Output{{1, "out\n"}, {2, "err\n"}}));
  EXPECT_EQ(Seen().method(), http::verb::post);
  EXPECT_EQ(Seen().target(), "/v1.41/exec/8e97cc87/start");
  EXPECT_EQ(Seen()[http::field::content_type], "application/json");
  EXPECT_EQ(SeenJson(), json::parse(R"({"Detach":false,"Tty":false})"));
  EXPECT_EQ(Seen().count(http::field::upgrade), 0u);
  EXPECT_EQ(Seen().count(http::field::connection), 0u);
}

TEST_F(DockerClientTest, StartExecBigOutput) {
  engine_.Reply(Recorded("exec_start_big"), true);  // 8 KiB frames
  Output out;
  Status s = Run(client_.StartExec("e", Collect(out)));
  ASSERT_TRUE(s.ok()) << s.error().message;
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].first, 1);
  EXPECT_TRUE(out[0].second == std::string(100000, 'x'));
  EXPECT_EQ(out[1], (std::pair<int, std::string>(2, "done\n")));
}

TEST_F(DockerClientTest, StartExecContentLengthBody) {
  std::string body = BodyOf(Recorded("exec_start"));
  engine_.Reply(Response("200 OK", "application/vnd.docker.multiplexed-stream", body));
  Output out;
  Status s = Run(client_.StartExec("e", Collect(out)));
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(out, (Output{{1, "out\n"}, {2, "err\n"}}));
}

TEST_F(DockerClientTest, StartExecChunkedBody) {
  std::string body = BodyOf(Recorded("exec_start_big"));
  engine_.Reply(
      "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n"
      "Transfer-Encoding: chunked\r\n\r\n" +
      Chunked(body, 4099));
  Output out;
  Status s = Run(client_.StartExec("e", Collect(out)));
  ASSERT_TRUE(s.ok()) << s.error().message;
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].second.size(), 100000u);
  EXPECT_EQ(out[1].second, "done\n");
}

TEST_F(DockerClientTest, StartExecDeliversOutputAsItArrives) {
  net::steady_timer first_seen(ioc_, net::steady_timer::time_point::max());
  engine_.Then([&](Local::socket& s) -> net::awaitable<void> {
    std::string head = HeadOf(Recorded("exec_start"));
    co_await net::async_write(s, net::buffer(head + Frame(1, "first\n")), net::use_awaitable);
    beast::error_code ec;
    co_await first_seen.async_wait(Redirect(ec));  // until the client has passed it on
    co_await net::async_write(s, net::buffer(Frame(2, "second\n")), net::use_awaitable);
    s.shutdown(Local::socket::shutdown_send, ec);
  });
  Output out;
  Status s = Run(client_.StartExec("e", [&](int stream, std::string_view data) {
    out.emplace_back(stream, std::string(data));
    first_seen.cancel();
  }));
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(out, (Output{{1, "first\n"}, {2, "second\n"}}));
}

TEST_F(DockerClientTest, StartExecOutputHasNoTimeout) {
  engine_.Then([&](Local::socket& s) -> net::awaitable<void> {
    co_await net::async_write(s, net::buffer(HeadOf(Recorded("exec_start"))), net::use_awaitable);
    net::steady_timer quiet(ioc_, 3 * kTimeout);  // a command that prints nothing for a while
    co_await quiet.async_wait(net::use_awaitable);
    co_await net::async_write(s, net::buffer(Frame(1, "late\n")), net::use_awaitable);
    beast::error_code ec;
    s.shutdown(Local::socket::shutdown_send, ec);
  });
  Output out;
  Status s = Run(client_.StartExec("e", Collect(out)));
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(out, (Output{{1, "late\n"}}));
}

TEST_F(DockerClientTest, StartExecHeaderIsBoundedByTheTimeout) {
  engine_.Silent();
  auto start = std::chrono::steady_clock::now();
  Output out;
  ExpectError(Run(client_.StartExec("e", Collect(out))), ErrorCode::kUnavailable,
              "cannot reach the container runtime at " + engine_.path());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST_F(DockerClientTest, StartExecUnknown) {
  engine_.Reply(Recorded("exec_start_unknown"));
  Output out;
  ExpectError(Run(client_.StartExec("0000000000000000", Collect(out))), ErrorCode::kNotFound,
              "no exec session with ID 0000000000000000 found");
  EXPECT_TRUE(out.empty());
}

TEST_F(DockerClientTest, StartExecStreamEndingInsideAFrame) {
  std::string body = Frame(1, "whole\n") + Frame(2, "cut short").substr(0, 12);
  engine_.Reply(HeadOf(Recorded("exec_start")) + body, true);
  Output out;
  ExpectError(Run(client_.StartExec("e", Collect(out))), ErrorCode::kInternal, "inside a frame");
  EXPECT_EQ(out, (Output{{1, "whole\n"}, {2, "cut "}}));
}

TEST_F(DockerClientTest, StartExecBadFrame) {
  engine_.Reply(HeadOf(Recorded("exec_start")) + "plain tty text\n", true);
  Output out;
  ExpectError(Run(client_.StartExec("e", Collect(out))), ErrorCode::kInvalidArgument,
              "frame header");
}

TEST_F(DockerClientTest, InspectExecEnded) {
  engine_.Reply(Recorded("exec_inspect"));
  auto e = Run(client_.InspectExec("8e97cc87"));
  ASSERT_TRUE(e.ok()) << e.error().message;
  EXPECT_EQ(Seen().method(), http::verb::get);
  EXPECT_EQ(Seen().target(), "/v1.41/exec/8e97cc87/json");
  EXPECT_FALSE(e->running);
  EXPECT_EQ(e->exit_code, 3);
  EXPECT_EQ(e->pid, 0);
}

TEST_F(DockerClientTest, InspectExecRunning) {
  engine_.Reply(Recorded("exec_inspect_running"));  // Podman says ExitCode 0 while running
  auto e = Run(client_.InspectExec("51a4"));
  ASSERT_TRUE(e.ok()) << e.error().message;
  EXPECT_TRUE(e->running);
  EXPECT_EQ(e->exit_code, std::nullopt);
  EXPECT_EQ(e->pid, 14879);
}

TEST_F(DockerClientTest, InspectExecUnknown) {
  engine_.Reply(Recorded("exec_inspect_unknown"));
  ExpectError(Run(client_.InspectExec("0000000000000000")), ErrorCode::kNotFound,
              "no such exec session");
}

// --- Concurrency: each call has its own connection.

TEST_F(DockerClientTest, CallsRunConcurrently) {
  net::steady_timer inspected(ioc_, net::steady_timer::time_point::max());
  // Two connections; each is answered according to its request, whichever arrives first.
  auto answer = [&](Local::socket& s) -> net::awaitable<void> {
    beast::error_code ec;
    if (engine_.seen.back().target() == "/v1.41/exec/e/json") {
      co_await net::async_write(s, net::buffer(Recorded("exec_inspect_running")), Redirect(ec));
      co_await FakeEngine::WaitForClose(s);
      co_return;
    }
    co_await net::async_write(s, net::buffer(HeadOf(Recorded("exec_start")) + Frame(1, "a")),
                              Redirect(ec));
    co_await inspected.async_wait(Redirect(ec));  // the exec's stream stays open meanwhile
    co_await net::async_write(s, net::buffer(Frame(1, "b")), Redirect(ec));
    s.shutdown(Local::socket::shutdown_send, ec);
  };
  engine_.Then(answer);
  engine_.Then(answer);
  Output out;
  std::optional<Result<ExecInfo>> info;
  auto both = [&]() -> net::awaitable<Status> {
    net::co_spawn(
        ioc_,
        [&]() -> net::awaitable<void> {
          info.emplace(co_await client_.InspectExec("e"));
          inspected.cancel();
        },
        net::detached);
    co_return co_await client_.StartExec("e", Collect(out));
  };
  Status s = Run(both());
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(out, (Output{{1, "ab"}}));
  ASSERT_TRUE(info && info->ok());
  EXPECT_TRUE((*info)->running);
}

// --- Transport

TEST_F(DockerClientTest, BodyEndingAtEof) {
  engine_.Reply(Response("200 OK", "application/json", BodyOf(Recorded("version")), false), true);
  auto v = Run(client_.Version());
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ((*v)["Version"], "4.3.1");
}

TEST_F(DockerClientTest, ChunkedErrorWithPlainTextBody) {
  engine_.Reply("HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\n\r\n" +
                Chunked("upstream down\n", 4));
  ExpectError(Run(client_.Version()), ErrorCode::kInternal, "container runtime: 502 upstream down");
}

TEST_F(DockerClientTest, ErrorWithoutBody) {
  engine_.Reply("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
  ExpectError(Run(client_.StartContainer("x")), ErrorCode::kInternal,
              "container runtime: 503 Service Unavailable");
}

TEST_F(DockerClientTest, NeverAnswers) {
  engine_.Silent();
  auto start = std::chrono::steady_clock::now();
  ExpectError(Run(client_.Version()), ErrorCode::kUnavailable,
              "cannot reach the container runtime at " + engine_.path() + ": ");
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, kTimeout - milliseconds(20));
  EXPECT_LT(took, std::chrono::seconds(2));
}

TEST_F(DockerClientTest, BodyNeverFinishes) {
  engine_.Then([](Local::socket& s) -> net::awaitable<void> {
    std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"Id\":";
    co_await net::async_write(s, net::buffer(head), net::use_awaitable);
    co_await FakeEngine::WaitForClose(s);
  });
  auto start = std::chrono::steady_clock::now();
  ExpectError(Run(client_.InspectExec("e")), ErrorCode::kUnavailable, "cannot reach");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST_F(DockerClientTest, PullStalledProgressIsNotBoundedByTheShortTimeout) {
  // The pull's stream may pause longer than the call timeout (unpacking a layer).
  engine_.Then([&](Local::socket& s) -> net::awaitable<void> {
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    co_await net::async_write(
        s, net::buffer(head + Chunked("{\"status\":\"a\"}\n", 100).substr(0, 20)),
        net::use_awaitable);
    net::steady_timer quiet(ioc_, 2 * kTimeout);
    co_await quiet.async_wait(net::use_awaitable);
    co_await net::async_write(s, net::buffer(std::string("0\r\n\r\n")), net::use_awaitable);
    co_await FakeEngine::WaitForClose(s);
  });
  Status s = Run(client_.PullImage("busybox"));
  EXPECT_TRUE(s.ok()) << s.error().message;
}

TEST_F(DockerClientTest, ConnectionDroppedMidBody) {
  engine_.Reply("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[{\"Id\":", true);
  ExpectError(Run(client_.ListContainers("")), ErrorCode::kUnavailable, "cannot reach");
}

TEST_F(DockerClientTest, GarbageReply) {
  engine_.Reply("SSH-2.0-OpenSSH_9.2\r\n\r\n", true);
  ExpectError(Run(client_.Version()), ErrorCode::kInternal, "sent a bad reply");
}

TEST_F(DockerClientTest, ReplyThatIsNotJson) {
  engine_.Reply(Response("200 OK", "text/html", "<html></html>"));
  ExpectError(Run(client_.Version()), ErrorCode::kInternal, "not JSON");
}

TEST_F(DockerClientTest, MissingSocket) {
  DockerClient missing(engine_.dir() + "/nothing.sock", kTimeout);
  auto r = Run(missing.Version());
  ExpectError(r, ErrorCode::kUnavailable,
              "cannot reach the container runtime at " + engine_.dir() + "/nothing.sock: ");
  EXPECT_NE(r.error().message.find("No such file or directory"), std::string::npos);
}

TEST_F(DockerClientTest, NobodyListening) {
  std::string path = engine_.dir() + "/stale.sock";
  {
    Local::acceptor stale(ioc_, Local::endpoint(path));  // leaves the file behind
  }
  DockerClient client(path, kTimeout);
  ExpectError(Run(client.StartContainer("x")), ErrorCode::kUnavailable, "Connection refused");
}

TEST_F(DockerClientTest, SocketPathTooLong) {
  DockerClient client("/tmp/" + std::string(200, 'x'), kTimeout);
  ExpectError(Run(client.InspectContainer("x")), ErrorCode::kUnavailable, "cannot reach");
}

// --- Against a real engine, only when GPUHUB_TEST_DOCKER_HOST names one (e.g.
// unix:///tmp/pt/podman.sock) and it has the image GPUHUB_TEST_IMAGE (default
// localhost/gpuhub-test:latest, a busybox). Skipped otherwise.

json LiveCreateBody(const std::string& image) {
  json body = json::parse(R"({"Cmd": ["sleep", "600"], "Labels": {"gpuhub.test": "live"},
    "ExposedPorts": {"80/tcp": {}},
    "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "18099"}]}}})");
  body["Image"] = image;
  return body;
}

TEST(DockerClientLive, ContainerAndExecLifecycle) {
  const char* host = std::getenv("GPUHUB_TEST_DOCKER_HOST");
  if (!host) GTEST_SKIP() << "GPUHUB_TEST_DOCKER_HOST is not set";
  const char* image_env = std::getenv("GPUHUB_TEST_IMAGE");
  std::string image = image_env ? image_env : "localhost/gpuhub-test:latest";
  auto path = ParseDockerHost(host);
  ASSERT_TRUE(path.ok()) << path.error().message;
  DockerClient client(*path, std::chrono::seconds(10));
  net::io_context ioc;
  auto run = [&](auto call) {
    std::optional<typename decltype(call)::value_type> out;
    net::co_spawn(
        ioc, [&]() -> net::awaitable<void> { out.emplace(co_await std::move(call)); },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
    ioc.run();
    ioc.restart();
    return std::move(*out);
  };
  const std::string name = "gpuhub-rec-live";
  (void)run(client.RemoveContainer(name, true));

  auto version = run(client.Version());
  ASSERT_TRUE(version.ok()) << version.error().message;
  auto exists = run(client.ImageExists(image));
  ASSERT_TRUE(exists.ok() && *exists) << image;
  auto missing = run(client.ImageExists("localhost/gpuhub-no-such-image:1"));
  ASSERT_TRUE(missing.ok() && !*missing);

  auto id = run(client.CreateContainer(name, LiveCreateBody(image)));
  ASSERT_TRUE(id.ok()) << id.error().message;
  ExpectError(run(client.CreateContainer(name, LiveCreateBody(image))), ErrorCode::kConflict,
              "already in use");
  Status s = run(client.StartContainer(*id));
  ASSERT_TRUE(s.ok()) << s.error().message;
  s = run(client.StartContainer(name));
  ASSERT_TRUE(s.ok()) << s.error().message;

  auto inspected = run(client.InspectContainer(name));
  ASSERT_TRUE(inspected.ok()) << inspected.error().message;
  EXPECT_EQ(inspected->id, *id);
  EXPECT_EQ(inspected->name, name);
  EXPECT_EQ(inspected->image, image);
  EXPECT_EQ(inspected->state, "running");
  EXPECT_EQ(inspected->ports, (std::vector<PortBinding>{{80, 18099}}));
  auto list = run(client.ListContainers("gpuhub.test=live"));
  ASSERT_TRUE(list.ok()) << list.error().message;
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].id, *id);
  EXPECT_EQ((*list)[0].labels.at("gpuhub.test"), "live");
  EXPECT_EQ((*list)[0].ports, inspected->ports);

  auto exec = run(client.CreateExec(
      *id, {"sh", "-c", "echo out; echo \"$GREETING\" >&2; sleep 0.2; echo more; exit 3"},
      {"GREETING=hi there"}));
  ASSERT_TRUE(exec.ok()) << exec.error().message;
  Output out;
  s = run(client.StartExec(*exec, Collect(out)));
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(out, (Output{{1, "out\n"}, {2, "hi there\n"}, {1, "more\n"}}));
  auto info = run(client.InspectExec(*exec));
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_FALSE(info->running);
  EXPECT_EQ(info->exit_code, 3);

  s = run(client.RestartContainer(*id, 0));
  ASSERT_TRUE(s.ok()) << s.error().message;
  ExpectError(run(client.RemoveContainer(*id, false)), ErrorCode::kConflict, "");
  s = run(client.StopContainer(*id, 0));
  ASSERT_TRUE(s.ok()) << s.error().message;
  s = run(client.StopContainer(*id, 0));
  ASSERT_TRUE(s.ok()) << s.error().message;
  ExpectError(run(client.CreateExec(*id, {"true"}, {})), ErrorCode::kConflict, "");
  s = run(client.RemoveContainer(*id, false));
  ASSERT_TRUE(s.ok()) << s.error().message;
  ExpectError(run(client.InspectContainer(*id)), ErrorCode::kNotFound, "");
  ExpectError(run(client.RemoveContainer(*id, true)), ErrorCode::kNotFound, "");
  ExpectError(run(client.PullImage("quay.io/gpuhub/none:1")), ErrorCode::kInternal, "pulling");
}

}  // namespace
}  // namespace gpuhub::agent::runtime
