#include "server/http/blocking.hpp"

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

namespace gpuhub::http {
namespace {

std::atomic<size_t> g_limit{kDefaultBlockingQueueLimit};
std::atomic<size_t> g_waiting{0};

}  // namespace

void SetBlockingQueueLimit(size_t limit) { g_limit = limit; }
size_t BlockingQueueLimit() { return g_limit.load(); }
size_t BlockingQueueLength() { return g_waiting.load(); }

namespace detail {

QueueTicket QueueTicket::Take() {
  size_t limit = g_limit.load(std::memory_order_relaxed);
  size_t n = g_waiting.load(std::memory_order_relaxed);
  do {
    if (n >= limit) throw Overloaded(std::chrono::seconds(1));
  } while (!g_waiting.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
  return QueueTicket();
}

void QueueTicket::Release() noexcept {
  if (std::exchange(held_, false)) g_waiting.fetch_sub(1, std::memory_order_relaxed);
}

void LowerWorkerPriority() noexcept {
  thread_local bool lowered = false;
  if (lowered) return;
  lowered = true;
  // Both only ever lower the priority, which needs no privilege; on failure
  // the thread just keeps its priority.
  sched_param param{};
  param.sched_priority = 0;
  (void)sched_setscheduler(0, SCHED_BATCH, &param);  // 0: the calling thread
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kWorkerNice);
}

}  // namespace detail
}  // namespace gpuhub::http
