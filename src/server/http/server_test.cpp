// HttpServer end to end in-process: requests parsed from what one read
// brought in or across reads, pipelined requests, bodies, large shared
// answers that the socket cannot take at once.
#include "server/http/server.hpp"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <thread>

namespace gpuhub::http {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::asio::awaitable;
using ClientResponse = bhttp::response<bhttp::string_body>;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    big_ = std::make_shared<const std::string>(8 << 20, 'x');
    router_.Add(bhttp::verb::get, "/small", [](Context& ctx) -> awaitable<Response> {
      co_return MessageResponse(Status::ok, "small " + std::string(ctx.query));
    });
    router_.Add(bhttp::verb::get, "/big", [this](Context&) -> awaitable<Response> {
      Response res{Status::ok, 11};
      res.body().Share(big_);
      co_return res;
    });
    router_.Add(
        bhttp::verb::post, "/echo/{what}",
        [](Context& ctx) -> awaitable<Response> {
          co_return MessageResponse(Status::ok, ctx.params[0] + ":" + ctx.request.body());
        },
        64);
    server_ = std::make_unique<HttpServer>(ioc_, router_, ServerLimits{});
    auto ep = server_->Start(tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    ASSERT_TRUE(ep.ok());
    endpoint_ = *ep;
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void TearDown() override {
    server_->Shutdown();
    guard_.reset();
    ioc_.stop();
    thread_.join();
  }

  tcp::socket Connect() {
    tcp::socket s(client_ioc_);
    s.connect(endpoint_);
    return s;
  }
  static void Send(tcp::socket& s, std::string_view data) {
    net::write(s, net::buffer(data.data(), data.size()));
  }
  ClientResponse Read(tcp::socket& s) {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(64 << 20);
    bhttp::read(s, buffer_, parser);
    return parser.release();
  }

  net::io_context ioc_;
  net::executor_work_guard<net::io_context::executor_type> guard_{ioc_.get_executor()};
  Router router_;
  std::shared_ptr<const std::string> big_;
  std::unique_ptr<HttpServer> server_;
  tcp::endpoint endpoint_;
  std::thread thread_;
  net::io_context client_ioc_;
  boost::beast::flat_buffer buffer_;
};

TEST_F(ServerTest, PipelinedRequestsFromOneRead) {
  auto s = Connect();
  Send(s,
       "GET /small?a HTTP/1.1\r\nHost: x\r\n\r\n"
       "POST /echo/one HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
       "GET /small?b HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Read(s).body(), R"({"message":"small a"})");
  EXPECT_EQ(Read(s).body(), R"({"message":"one:hello"})");
  EXPECT_EQ(Read(s).body(), R"({"message":"small b"})");
}

TEST_F(ServerTest, RequestsSplitAcrossReads) {
  auto s = Connect();
  Send(s, "GET /sma");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Send(s, "ll?c HTTP/1.1\r\nHo");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Send(s, "st: x\r\n\r\n");
  EXPECT_EQ(Read(s).body(), R"({"message":"small c"})");
  Send(s, "POST /echo/two HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nwo");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Send(s, "rld!");
  EXPECT_EQ(Read(s).body(), R"({"message":"two:world!"})");
}

TEST_F(ServerTest, RouteBodyLimitFromTheSingleMatch) {
  auto s = Connect();
  Send(s, "POST /echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n");
  ClientResponse res = Read(s);
  EXPECT_EQ(res.result(), Status::payload_too_large);
  auto s2 = Connect();
  Send(s2, "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Read(s2).result(), Status::not_found);
}

TEST_F(ServerTest, LargeSharedAnswerArrivesWhole) {
  auto s = Connect();
  // Ask twice before reading: the second answer waits for the socket.
  Send(s, "GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /big HTTP/1.1\r\nHost: x\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (int i = 0; i < 2; ++i) {
    ClientResponse res = Read(s);
    EXPECT_EQ(res.result(), Status::ok);
    EXPECT_EQ(res.body().size(), big_->size());
    EXPECT_TRUE(res.body() == *big_);
  }
  Send(s, "GET /small?d HTTP/1.1\r\nHost: x\r\n\r\n");  // and the connection goes on
  EXPECT_EQ(Read(s).body(), R"({"message":"small d"})");
}

}  // namespace
}  // namespace gpuhub::http
