// RunOn: run a function on a thread pool from a coroutine and resume the
// coroutine on its own executor with the function's result.
//
//   int n = co_await RunOn(pool, [&] { return Work(); });
//
// `f` must not throw and may be move-only; it runs on a pool thread, so what
// it touches must be thread-safe. The coroutine's frame outlives the call, so
// capturing its locals by reference is safe; capture by reference (GCC 12
// destroys the by-value captures of a lambda written inside the co_await
// expression twice). Unbounded: see http::RunBlocking for the bounded queue
// of the request handlers' worker pool.
//
// Thread-safe.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <type_traits>
#include <utility>

namespace gpuhub {

template <typename F>
auto RunOn(boost::asio::thread_pool& pool, F f)
    -> boost::asio::awaitable<std::invoke_result_t<F&>> {
  namespace net = boost::asio;
  using R = std::invoke_result_t<F&>;
  return net::async_initiate<const net::use_awaitable_t<>&, void(R)>(
      [&pool](auto handler, F fn) {
        auto ex = net::get_associated_executor(handler);
        net::post(pool, [handler = std::move(handler), fn = std::move(fn), ex]() mutable {
          R result = fn();
          net::dispatch(ex, [handler = std::move(handler), result = std::move(result)]() mutable {
            std::move(handler)(std::move(result));
          });
        });
      },
      net::use_awaitable, std::move(f));
}

}  // namespace gpuhub
