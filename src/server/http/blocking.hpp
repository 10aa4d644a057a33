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
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "common/run_on.hpp"

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
  detail::QueueTicket ticket = detail::QueueTicket::Take();  // throws Overloaded
  return RunOn(pool, [fn = std::move(f), place = std::move(ticket)]() mutable {
    place.Release();
    detail::LowerWorkerPriority();
    return fn();
  });
}

}  // namespace gpuhub::http
