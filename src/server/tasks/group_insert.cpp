#include "server/tasks/group_insert.hpp"

#include "common/run_on.hpp"

namespace gpuhub::tasks {

GroupInsert::GroupInsert(store::Store& store) : store_(store) {}

GroupInsert::~GroupInsert() { writer_.join(); }

boost::asio::awaitable<Result<store::Task>> GroupInsert::Insert(store::Task task) {
  auto item = std::make_shared<Item>();
  item->task = std::move(task);
  {
    std::lock_guard lock(mu_);
    pending_.push_back(item);
  }
  // The writer runs one job at a time, in order: when this job runs, the item
  // is either stored already (by an earlier job's transaction) or still
  // pending, and then this job stores it with everything else that waits.
  co_await RunOn(writer_, [this] {
    FlushPending();
    return true;
  });
  co_return std::move(*item->result);
}

void GroupInsert::FlushPending() {
  std::vector<std::shared_ptr<Item>> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(pending_);
  }
  if (batch.empty()) return;
  std::vector<store::Task> tasks;
  tasks.reserve(batch.size());
  for (const auto& item : batch) tasks.push_back(item->task);
  std::vector<Result<store::Task>> out = store_.CreateTasks(tasks);
  for (size_t i = 0; i < batch.size(); ++i) batch[i]->result = std::move(out[i]);
  std::lock_guard lock(mu_);
  ++transactions_;
}

size_t GroupInsert::transactions() const {
  std::lock_guard lock(mu_);
  return transactions_;
}

}  // namespace gpuhub::tasks
