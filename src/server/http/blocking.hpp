// RunBlocking: run CPU-heavy work (argon2id, large file I/O) on a worker pool
// from a coroutine, and resume the coroutine on its own executor afterwards.
//
//   auto token = co_await RunBlocking(pool, [&] { return accounts.Login(a, p); });
//
// `f` must not throw; it runs on a pool thread, so what it touches must be
// thread-safe. The coroutine's frame outlives the call, so capturing locals by
// reference is safe; capture by reference (GCC 12 destroys the by-value
// captures of a lambda written inside the co_await expression twice).
//
// The queue is bounded: when BlockingQueueLimit() jobs already wait for a
// pool thread (posted, not yet started; counted over all pools), RunBlocking
// throws Overloaded instead of queueing `f`, and the Router answers that with
// 503 and Retry-After. So a storm of logins neither builds an unbounded
// backlog nor leaves more than that many hashes to run for clients that may
// have gone meanwhile.
//
// Pool threads yield to the I/O threads: the first job a pool thread runs
// lowers that thread's CPU priority for good (SCHED_BATCH at nice 10,
// kWorkerNice), so hashing takes the CPU the I/O threads leave instead of
// competing with them for it.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace gpuhub::http {

// Thrown by RunBlocking when the worker queue is full.
class Overloaded : public std::runtime_error {
 public:
  explicit Overloaded(std::chrono::seconds retry_after)
      : std::runtime_error("worker queue full"), retry_after_(retry_after) {}
  // What to send as Retry-After.
  std::chrono::seconds retry_after() const { return retry_after_; }

 private:
  std::chrono::seconds retry_after_;
};

// The nice value of pool threads once they ran a job (with SCHED_BATCH).
constexpr int kWorkerNice = 10;

// How many jobs may wait for a pool thread (kDefaultBlockingQueueLimit unless set).
constexpr size_t kDefaultBlockingQueueLimit = 16;
void SetBlockingQueueLimit(size_t limit);
size_t BlockingQueueLimit();
// Jobs waiting for a pool thread now (for tests and metrics).
size_t BlockingQueueLength();

namespace detail {

// A place in the worker queue, given back when the job starts (or is dropped).
class QueueTicket {
 public:
  // A ticket, or throws Overloaded when the queue is full.
  static QueueTicket Take();
  QueueTicket(QueueTicket&& other) noexcept : held_(std::exchange(other.held_, false)) {}
  QueueTicket& operator=(QueueTicket&&) = delete;
  ~QueueTicket() { Release(); }
  void Release() noexcept;

 private:
  QueueTicket() = default;
  bool held_ = true;
};

// Lowers the calling thread's priority the first time it is called on it.
void LowerWorkerPriority() noexcept;

}  // namespace detail

template <typename F>
auto RunBlocking(boost::asio::thread_pool& pool, F f)
    -> boost::asio::awaitable<std::invoke_result_t<F>> {
  namespace net = boost::asio;
  using R = std::invoke_result_t<F>;
  detail::QueueTicket ticket = detail::QueueTicket::Take();  // throws Overloaded
  return net::async_initiate<const net::use_awaitable_t<>&, void(R)>(
      [&pool](auto handler, F fn, detail::QueueTicket place) {
        auto ex = net::get_associated_executor(handler);
        net::post(pool, [handler = std::move(handler), fn = std::move(fn), ex,
                         place = std::move(place)]() mutable {
          place.Release();
          detail::LowerWorkerPriority();
          R result = fn();
          net::dispatch(ex, [handler = std::move(handler), result = std::move(result)]() mutable {
            std::move(handler)(std::move(result));
          });
        });
      },
      net::use_awaitable, std::move(f), std::move(ticket));
}

}  // namespace gpuhub::http
