// GroupInsert: durable task inserts for request handlers, with group commit.
//
// Each stored task costs a flush to disk (fdatasync), milliseconds on many
// disks. Insert() hands the task to one writer thread and suspends the
// calling coroutine; the writer stores everything that is waiting in one
// transaction (store::Store::CreateTasks, one flush), then resumes each
// caller with its own outcome. While it flushes, new inserts gather for the
// next transaction, so the rate of durable inserts grows with the number of
// concurrent callers instead of being bound by the flush. Nothing is answered
// before its transaction committed.
//
// Thread-safe. The destructor waits for the transaction in progress; destroy
// it only when no Insert is suspended (after the I/O threads stopped).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "common/result.hpp"
#include "store/store.hpp"

namespace gpuhub::tasks {

class GroupInsert {
 public:
  explicit GroupInsert(store::Store& store);
  ~GroupInsert();
  GroupInsert(const GroupInsert&) = delete;
  GroupInsert& operator=(const GroupInsert&) = delete;

  // Stores `task` as store::Store::CreateTask does.
  boost::asio::awaitable<Result<store::Task>> Insert(store::Task task);

  // Transactions so far (for tests and benchmarks).
  size_t transactions() const;

 private:
  struct Item {
    store::Task task;
    std::optional<Result<store::Task>> result;  // set by the writer
  };
  // On the writer thread: stores every waiting item in one transaction.
  void FlushPending();

  store::Store& store_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Item>> pending_;  // guarded by mu_
  size_t transactions_ = 0;                     // guarded by mu_
  boost::asio::thread_pool writer_{1};
};

}  // namespace gpuhub::tasks
