#include "server/http/blocking.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <future>

#include "server/http/router.hpp"

namespace gpuhub::http {
namespace {

namespace net = boost::asio;

// Runs `ioc` until `f` is ready (work on a pool does not keep run() going).
template <typename T>
void RunUntil(net::io_context& ioc, std::future<T>& f) {
  while (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(5));
  }
}

TEST(RunBlocking, RunsOnThePoolAtLowerPriority) {
  net::io_context ioc;
  net::thread_pool pool(1);
  auto f = net::co_spawn(
      ioc,
      [&]() -> net::awaitable<std::pair<pid_t, int>> {
        co_return co_await RunBlocking(
            pool, [] { return std::pair<pid_t, int>(gettid(), getpriority(PRIO_PROCESS, 0)); });
      },
      net::use_future);
  RunUntil(ioc, f);
  auto [tid, nice] = f.get();
  EXPECT_NE(tid, gettid());
  EXPECT_EQ(nice, kWorkerNice);
  EXPECT_EQ(BlockingQueueLength(), 0u);
  pool.join();
}

TEST(RunBlocking, FullQueueThrowsOverloadedAndTheRouterAnswers503) {
  net::thread_pool pool(1);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  size_t old_limit = BlockingQueueLimit();
  SetBlockingQueueLimit(2);

  Router router;
  router.Add(bhttp::verb::post, "/work", [&](Context&) -> net::awaitable<Response> {
    // By reference, as the handlers do: GCC 12 destroys a by-value capture
    // of a temporary lambda in a co_await expression twice.
    int v = co_await RunBlocking(pool, [&gate] {
      gate.wait();
      return 1;
    });
    co_return MessageResponse(Status::ok, std::to_string(v));
  });
  net::io_context ioc;
  std::vector<std::future<Response>> answers;
  Request req{bhttp::verb::post, "/work", 11};
  // One runs (blocked on the gate), two wait: the fourth is refused.
  for (int i = 0; i < 3; ++i) {
    answers.push_back(net::co_spawn(ioc, router.Dispatch(req), net::use_future));
    ioc.poll();
    while (i > 0 && BlockingQueueLength() < static_cast<size_t>(i)) ioc.poll();
    while (i == 0 && BlockingQueueLength() != 0) ioc.poll();  // the first has started
  }
  EXPECT_EQ(BlockingQueueLength(), 2u);
  auto refused = net::co_spawn(ioc, router.Dispatch(req), net::use_future);
  ioc.poll();
  ASSERT_EQ(refused.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  Response r = refused.get();
  EXPECT_EQ(r.result(), Status::service_unavailable);
  EXPECT_EQ(r[bhttp::field::retry_after], "1");
  EXPECT_EQ(r.body(), R"({"message":"Server busy; retry in 1 s"})");

  release.set_value();
  for (auto& a : answers) {
    RunUntil(ioc, a);
    EXPECT_EQ(a.get().result(), Status::ok);
  }
  EXPECT_EQ(BlockingQueueLength(), 0u);
  SetBlockingQueueLimit(old_limit);
  pool.join();
}

}  // namespace
}  // namespace gpuhub::http
