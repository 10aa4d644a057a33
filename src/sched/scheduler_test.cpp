#include "sched/scheduler.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sched/test_printers.hpp"

namespace gpuhub::sched {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

const TimePoint kT0 = TimePoint{} + hours(24 * 365 * 56);

TimePoint At(minutes m) { return kT0 + m; }

Task Count(int64_t id, int count, minutes duration, TimePoint submit = kT0) {
  return {id, submit, duration, count, {}};
}
Task Named(int64_t id, std::vector<int> gpus, minutes duration, TimePoint submit = kT0) {
  const int n = static_cast<int>(gpus.size());
  return {id, submit, duration, n, std::move(gpus)};
}

std::vector<int64_t> Ids(const std::vector<Placement>& ps) {
  std::vector<int64_t> ids;
  for (const auto& p : ps) ids.push_back(p.id);
  return ids;
}

TEST(MachineQueue, RejectsInvalidTasks) {
  MachineQueue q(4);
  auto code = [&](const Task& t) {
    Status s = q.Enqueue(t);
    return s.ok() ? std::optional<ErrorCode>() : std::optional(s.error().code);
  };
  const auto kBad = std::optional(ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(Count(1, 0, minutes(5))), kBad);
  EXPECT_EQ(code(Count(1, -2, minutes(5))), kBad);
  EXPECT_EQ(code(Named(1, {0, 0}, minutes(5))), kBad);
  EXPECT_EQ(code(Named(1, {-1}, minutes(5))), kBad);
  EXPECT_EQ(code(Named(1, {kMaxGpus}, minutes(5))), kBad);
  EXPECT_EQ(code(Task{1, kT0, minutes(5), 2, {1}}), kBad);
  EXPECT_EQ(code(Count(1, 1, minutes(0))), kBad);
  EXPECT_EQ(code(Task{1, kT0, milliseconds(-1), 1, {}}), kBad);
  EXPECT_EQ(code(Task{1, kT0, kMaxDuration + milliseconds(1), 1, {}}), kBad);
  EXPECT_EQ(q.queued(), 0u);

  ASSERT_TRUE(q.Enqueue(Count(1, 1, minutes(5))).ok());
  EXPECT_EQ(code(Count(1, 2, minutes(5))), std::optional(ErrorCode::kConflict));
  EXPECT_THAT(Ids(q.Schedule(kT0)), ElementsAre(1));
  EXPECT_EQ(code(Count(1, 2, minutes(5))), std::optional(ErrorCode::kConflict));  // running
  ASSERT_TRUE(q.Release(1));
  EXPECT_TRUE(q.Enqueue(Count(1, 2, minutes(5))).ok());  // forgotten once released
}

TEST(MachineQueue, StartsOnLowestFreeGpus) {
  MachineQueue q(4);
  ASSERT_TRUE(q.Enqueue(Count(1, 2, minutes(60))).ok());
  ASSERT_TRUE(q.Enqueue(Count(2, 1, minutes(30))).ok());
  EXPECT_EQ(q.EstimatedStart(1, kT0), kT0);
  const auto started = q.Schedule(kT0);
  ASSERT_EQ(started.size(), 2u);
  EXPECT_EQ(started[0], (Placement{1, {0, 1}, kT0, At(minutes(60))}));
  EXPECT_EQ(started[1], (Placement{2, {2}, kT0, At(minutes(30))}));
  EXPECT_EQ(q.queued(), 0u);
  EXPECT_EQ(q.running(), 2u);
  EXPECT_EQ(q.state(1), TaskState::kRunning);
  EXPECT_THAT(q.Schedule(kT0), IsEmpty());

  // A freed GPU below a taken one is used first.
  ASSERT_TRUE(q.Release(1));
  ASSERT_TRUE(q.Enqueue(Count(3, 3, minutes(10))).ok());
  EXPECT_EQ(q.Schedule(At(minutes(1))),
            (std::vector<Placement>{{3, {0, 1, 3}, At(minutes(1)), At(minutes(11))}}));
}

TEST(MachineQueue, OrderIsSubmitTimeThenId) {
  MachineQueue q(1);
  ASSERT_TRUE(q.Restore(100, {0}, At(minutes(10))).ok());
  ASSERT_TRUE(q.Enqueue(Count(7, 1, minutes(5), At(minutes(2)))).ok());
  ASSERT_TRUE(q.Enqueue(Count(9, 1, minutes(5), At(minutes(1)))).ok());
  ASSERT_TRUE(q.Enqueue(Count(8, 1, minutes(5), At(minutes(1)))).ok());
  EXPECT_THAT(q.Estimates(kT0), ElementsAre(Pair(8, At(minutes(10))), Pair(9, At(minutes(15))),
                                            Pair(7, At(minutes(20)))));
}

TEST(MachineQueue, FifoWideHeadIsNotOvertakenByALongerTask) {
  MachineQueue q(2);
  ASSERT_TRUE(q.Restore(100, {0}, At(minutes(10))).ok());
  ASSERT_TRUE(q.Enqueue(Count(1, 2, minutes(60))).ok());
  ASSERT_TRUE(q.Enqueue(Count(2, 1, minutes(30))).ok());  // GPU 1 is free, but up to 10 min
  EXPECT_THAT(q.Schedule(kT0), IsEmpty());
  EXPECT_THAT(q.Estimates(kT0), ElementsAre(Pair(1, At(minutes(10))), Pair(2, At(minutes(70)))));
}

TEST(MachineQueue, BackfillsWhatEndsBeforeTheHeadsReservation) {
  MachineQueue q(2);
  ASSERT_TRUE(q.Restore(100, {0}, At(minutes(10))).ok());
  ASSERT_TRUE(q.Enqueue(Count(1, 2, minutes(60))).ok());
  ASSERT_TRUE(q.Enqueue(Count(2, 1, minutes(10))).ok());  // exactly fits before it
  ASSERT_TRUE(q.Enqueue(Count(3, 1, minutes(1))).ok());   // nothing left now
  EXPECT_EQ(q.Schedule(kT0), (std::vector<Placement>{{2, {1}, kT0, At(minutes(10))}}));
  EXPECT_THAT(q.Estimates(kT0), ElementsAre(Pair(1, At(minutes(10))), Pair(3, At(minutes(70)))));
}

TEST(MachineQueue, BackfillMustNotDelayAnEarlierTaskBehindTheHead) {
  // GPU 0 busy for 60 min, GPU 1 for 10 min, GPU 2 free. The head wants all
  // three at 60; task 2 wants GPUs 1 and 2 for 40 min and fits at 10. A
  // 20-minute task on GPU 2 would not delay the head but would delay task 2.
  auto setup = [](MachineQueue& q, minutes last) {
    ASSERT_TRUE(q.Restore(100, {0}, At(minutes(60))).ok());
    ASSERT_TRUE(q.Restore(101, {1}, At(minutes(10))).ok());
    ASSERT_TRUE(q.Enqueue(Count(1, 3, minutes(30))).ok());
    ASSERT_TRUE(q.Enqueue(Named(2, {1, 2}, minutes(40))).ok());
    ASSERT_TRUE(q.Enqueue(Count(3, 1, last)).ok());
  };
  {
    MachineQueue q(3);
    setup(q, minutes(20));
    EXPECT_THAT(q.Schedule(kT0), IsEmpty());
    EXPECT_THAT(q.Estimates(kT0), ElementsAre(Pair(1, At(minutes(60))), Pair(2, At(minutes(10))),
                                              Pair(3, At(minutes(90)))));
  }
  {
    MachineQueue q(3);
    setup(q, minutes(10));
    EXPECT_EQ(q.Schedule(kT0), (std::vector<Placement>{{3, {2}, kT0, At(minutes(10))}}));
    EXPECT_THAT(q.Estimates(kT0), ElementsAre(Pair(1, At(minutes(60))), Pair(2, At(minutes(10)))));
  }
}

TEST(MachineQueue, ShortTaskStartsBehindLongerOnesThatCannotUseTheGap) {
  // GPU 0 is free until the head's reservation at 60; tasks 2 and 3 are too
  // long for that gap, task 4 fits in it now, task 5 only after task 4.
  MachineQueue q(2);
  ASSERT_TRUE(q.Restore(100, {1}, At(minutes(60))).ok());
  ASSERT_TRUE(q.Enqueue(Count(1, 2, minutes(30))).ok());
  ASSERT_TRUE(q.Enqueue(Count(2, 1, minutes(120))).ok());
  ASSERT_TRUE(q.Enqueue(Named(3, {0}, minutes(61))).ok());
  ASSERT_TRUE(q.Enqueue(Named(4, {0}, minutes(20))).ok());
  ASSERT_TRUE(q.Enqueue(Count(5, 1, minutes(40))).ok());
  ASSERT_TRUE(q.Enqueue(Count(6, 1, minutes(1))).ok());
  // Plan the head only, then let Schedule walk the rest.
  EXPECT_EQ(q.EstimatedStart(1, kT0), At(minutes(60)));
  EXPECT_EQ(q.Schedule(kT0), (std::vector<Placement>{{4, {0}, kT0, At(minutes(20))}}));
  // Task 5 takes the rest of the gap, later.
  EXPECT_THAT(q.Estimates(kT0), ElementsAre(Pair(1, At(minutes(60))), Pair(2, At(minutes(90))),
                                            Pair(3, At(minutes(210))), Pair(5, At(minutes(20))),
                                            Pair(6, At(minutes(90)))));
}

TEST(MachineQueue, ReservesHolesInTheFuture) {
  // GPU 0 free at 10, GPU 1 at 30. Task 1 wants both (at 30); task 2 fits in
  // GPU 0's gap [10, 30); task 3 does not fit what is left of it.
  MachineQueue q(2);
  ASSERT_TRUE(q.Restore(100, {0}, At(minutes(10))).ok());
  ASSERT_TRUE(q.Restore(101, {1}, At(minutes(30))).ok());
  ASSERT_TRUE(q.Enqueue(Count(1, 2, minutes(10))).ok());
  ASSERT_TRUE(q.Enqueue(Count(2, 1, minutes(15))).ok());
  ASSERT_TRUE(q.Enqueue(Count(3, 1, minutes(15))).ok());
  ASSERT_TRUE(q.Enqueue(Count(4, 1, minutes(5))).ok());
  EXPECT_THAT(q.Estimates(kT0), ElementsAre(Pair(1, At(minutes(30))), Pair(2, At(minutes(10))),
                                            Pair(3, At(minutes(40))), Pair(4, At(minutes(25)))));
  // Time passes; nothing changes until GPU 0 is released at 10.
  EXPECT_THAT(q.Schedule(At(minutes(5))), IsEmpty());
  EXPECT_EQ(q.EstimatedStart(4, At(minutes(5))), At(minutes(25)));
  ASSERT_TRUE(q.Finish(100, At(minutes(10))));
  ASSERT_TRUE(q.Release(100));
  EXPECT_EQ(q.Schedule(At(minutes(10))),
            (std::vector<Placement>{{2, {0}, At(minutes(10)), At(minutes(25))}}));
  EXPECT_THAT(q.Schedule(At(minutes(20))), IsEmpty());
}

TEST(MachineQueue, NamedGpusWaitForExactlyThose) {
  MachineQueue q(3);
  ASSERT_TRUE(q.Restore(100, {1}, At(minutes(20))).ok());
  ASSERT_TRUE(q.Enqueue(Named(1, {1}, minutes(5))).ok());
  ASSERT_TRUE(q.Enqueue(Named(2, {2, 0}, minutes(50))).ok());
  ASSERT_TRUE(q.Enqueue(Count(3, 1, minutes(30))).ok());  // only GPU 1 is left, after task 1
  EXPECT_EQ(q.Schedule(kT0), (std::vector<Placement>{{2, {2, 0}, kT0, At(minutes(50))}}));
  EXPECT_THAT(q.Estimates(kT0), ElementsAre(Pair(1, At(minutes(20))), Pair(3, At(minutes(25)))));
}

TEST(MachineQueue, TasksThatCannotBePlacedWaitWithoutBlocking) {
  MachineQueue q(2);
  ASSERT_TRUE(q.Restore(100, {0}, At(minutes(10))).ok());
  ASSERT_TRUE(q.Enqueue(Named(1, {5}, minutes(5))).ok());
  ASSERT_TRUE(q.Enqueue(Count(2, 3, minutes(5))).ok());
  ASSERT_TRUE(q.Enqueue(Count(3, 1, minutes(60))).ok());
  EXPECT_THAT(Ids(q.Schedule(kT0)), ElementsAre(3));
  EXPECT_THAT(q.Estimates(kT0), ElementsAre(Pair(1, std::nullopt), Pair(2, std::nullopt)));
  EXPECT_EQ(q.queued(), 2u);
}

TEST(MachineQueue, DrainingGpusStayTakenUntilReleased) {
  MachineQueue q(1, seconds(30));
  ASSERT_TRUE(q.Enqueue(Count(1, 1, minutes(10))).ok());
  ASSERT_THAT(Ids(q.Schedule(kT0)), ElementsAre(1));
  ASSERT_TRUE(q.Enqueue(Count(2, 1, minutes(10))).ok());
  EXPECT_EQ(q.EstimatedStart(2, At(minutes(1))), At(minutes(10)));

  // Exits early at 4 min: the GPU drains, counted free 30 s after that.
  ASSERT_TRUE(q.Finish(1, At(minutes(4))));
  EXPECT_FALSE(q.Finish(1, At(minutes(4))));
  EXPECT_EQ(q.state(1), TaskState::kDraining);
  EXPECT_EQ(q.running(), 1u);
  EXPECT_THAT(q.Schedule(At(minutes(4))), IsEmpty());
  EXPECT_EQ(q.EstimatedStart(2, At(minutes(4))), At(minutes(4)) + seconds(30));
  // Past the estimate and still not released: counts as free a second later.
  EXPECT_EQ(q.EstimatedStart(2, At(minutes(5))), At(minutes(5)) + seconds(1));
  EXPECT_THAT(q.Schedule(At(minutes(5))), IsEmpty());
  EXPECT_EQ(q.EstimatedStart(2, At(minutes(6))), At(minutes(6)) + seconds(1));

  ASSERT_TRUE(q.Release(1));
  EXPECT_FALSE(q.Release(1));
  EXPECT_EQ(q.state(1), TaskState::kUnknown);
  EXPECT_EQ(q.Schedule(At(minutes(6))),
            (std::vector<Placement>{{2, {0}, At(minutes(6)), At(minutes(16))}}));
}

TEST(MachineQueue, DrainingStartsAtTheLeasesEndWhenFinishedLate) {
  MachineQueue q(1, seconds(30));
  ASSERT_TRUE(q.Restore(100, {0}, At(minutes(10))).ok());
  ASSERT_TRUE(q.Enqueue(Count(1, 1, minutes(5))).ok());
  ASSERT_TRUE(q.Finish(100, At(minutes(10)) + seconds(20)));  // noticed 20 s late
  EXPECT_EQ(q.EstimatedStart(1, At(minutes(10)) + seconds(20)), At(minutes(10)) + seconds(30));
}

TEST(MachineQueue, ExpiredButUnreportedLeaseCountsAsEndingWithinASecond) {
  MachineQueue q(2);
  ASSERT_TRUE(q.Restore(100, {0}, At(minutes(10))).ok());
  ASSERT_TRUE(q.Restore(101, {1}, At(minutes(60))).ok());
  ASSERT_TRUE(q.Enqueue(Named(1, {0}, minutes(10))).ok());
  ASSERT_TRUE(q.Enqueue(Count(2, 1, minutes(10))).ok());
  const TimePoint s30 = At(minutes(30)) + seconds(1);
  EXPECT_THAT(q.Estimates(At(minutes(30))), ElementsAre(Pair(1, s30), Pair(2, s30 + minutes(10))));
  EXPECT_THAT(q.Schedule(At(minutes(30))), IsEmpty());  // GPU 0 is still in lease 100
  // The estimate holds within that second, and moves with the next.
  EXPECT_EQ(q.EstimatedStart(1, At(minutes(30)) + milliseconds(999)), s30);
  EXPECT_EQ(q.EstimatedStart(1, s30), s30 + seconds(1));
  ASSERT_TRUE(q.Release(100));
  EXPECT_THAT(Ids(q.Schedule(At(minutes(31)))), ElementsAre(1));
}

TEST(MachineQueue, OverdueGpusAreNotPlannedForNow) {
  MachineQueue q(3);
  ASSERT_TRUE(q.Restore(100, {0}, At(minutes(10))).ok());  // expired at 20, unreported
  ASSERT_TRUE(q.Enqueue(Count(1, 1, minutes(10))).ok());
  ASSERT_TRUE(q.Enqueue(Count(2, 2, minutes(10))).ok());
  EXPECT_EQ(q.Schedule(At(minutes(20))),
            (std::vector<Placement>{{1, {1}, At(minutes(20)), At(minutes(30))}}));
  // Task 2 waits for GPU 0, with GPU 2.
  EXPECT_EQ(q.EstimatedStart(2, At(minutes(20))), At(minutes(20)) + seconds(1));
  ASSERT_TRUE(q.Finish(100, At(minutes(20))));
  ASSERT_TRUE(q.Release(100));
  EXPECT_EQ(q.Schedule(At(minutes(21))),
            (std::vector<Placement>{{2, {0, 2}, At(minutes(21)), At(minutes(31))}}));
}

TEST(MachineQueue, GpuCountShrinksAndGrows) {
  MachineQueue q(4);
  ASSERT_TRUE(q.Restore(100, {3}, At(minutes(10))).ok());
  ASSERT_TRUE(q.Enqueue(Count(1, 4, minutes(10))).ok());
  ASSERT_TRUE(q.Enqueue(Named(2, {2}, minutes(15))).ok());
  ASSERT_TRUE(q.Enqueue(Count(3, 1, minutes(15))).ok());
  EXPECT_THAT(q.Schedule(kT0), IsEmpty());  // 2 and 3 would delay 1

  q.SetGpuCount(2);
  EXPECT_EQ(q.gpu_count(), 2);
  EXPECT_THAT(q.Estimates(kT0),
              ElementsAre(Pair(1, std::nullopt), Pair(2, std::nullopt), Pair(3, kT0)));
  EXPECT_EQ(q.Schedule(kT0), (std::vector<Placement>{{3, {0}, kT0, At(minutes(15))}}));
  // The lease on the vanished GPU 3 stays until released.
  EXPECT_EQ(q.state(100), TaskState::kRunning);
  EXPECT_FALSE(q.Restore(101, {3}, At(minutes(10))).ok());

  q.SetGpuCount(4);
  EXPECT_THAT(q.Estimates(At(minutes(1))),
              ElementsAre(Pair(1, At(minutes(15))), Pair(2, At(minutes(25)))));
  ASSERT_TRUE(q.Release(100));
  q.SetGpuCount(8);
  EXPECT_THAT(Ids(q.Schedule(At(minutes(2)))), ElementsAre(1));
  EXPECT_EQ(q.EstimatedStart(2, At(minutes(2))), At(minutes(12)));
}

TEST(MachineQueue, CancelLetsTasksBehindMoveUp) {
  MachineQueue q(1);
  ASSERT_TRUE(q.Restore(100, {0}, At(minutes(10))).ok());
  ASSERT_TRUE(q.Enqueue(Count(1, 1, minutes(30))).ok());
  ASSERT_TRUE(q.Enqueue(Count(2, 1, minutes(30))).ok());
  EXPECT_EQ(q.EstimatedStart(2, kT0), At(minutes(40)));
  EXPECT_TRUE(q.Cancel(1));
  EXPECT_FALSE(q.Cancel(1));
  EXPECT_FALSE(q.Cancel(100));  // a lease, not queued
  EXPECT_EQ(q.state(1), TaskState::kUnknown);
  EXPECT_EQ(q.EstimatedStart(1, kT0), std::nullopt);
  EXPECT_EQ(q.EstimatedStart(2, kT0), At(minutes(10)));
}

TEST(MachineQueue, RestoreChecksItsInput) {
  MachineQueue q(2);
  EXPECT_EQ(q.Restore(1, {}, kT0).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(q.Restore(1, {1, 1}, kT0).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(q.Restore(1, {-1}, kT0).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(q.Restore(1, {2'000'000'000}, kT0).error().code, ErrorCode::kInvalidArgument);
  ASSERT_TRUE(q.Restore(1, {1, 5}, At(minutes(5))).ok());  // GPU 5 may be reported later
  EXPECT_EQ(q.Restore(2, {0, 1}, kT0).error().code, ErrorCode::kConflict);
  EXPECT_EQ(q.Restore(1, {0}, kT0).error().code, ErrorCode::kConflict);
  ASSERT_TRUE(q.Enqueue(Count(3, 1, minutes(5))).ok());
  EXPECT_EQ(q.Restore(3, {0}, kT0).error().code, ErrorCode::kConflict);
  EXPECT_EQ(q.running(), 1u);
}

TEST(MachineQueue, FinishAndReleaseOnlyApplyToLeases) {
  MachineQueue q(1);
  ASSERT_TRUE(q.Enqueue(Count(1, 1, minutes(5))).ok());
  EXPECT_FALSE(q.Finish(1, kT0));
  EXPECT_FALSE(q.Release(1));
  EXPECT_FALSE(q.Finish(42, kT0));
  EXPECT_EQ(q.state(1), TaskState::kQueued);
  ASSERT_THAT(Ids(q.Schedule(kT0)), ElementsAre(1));
  EXPECT_TRUE(q.Release(1));  // straight from running
  EXPECT_EQ(q.running(), 0u);
}

TEST(MachineQueue, ScheduleReturnsStartsInQueueOrder) {
  MachineQueue q(8);
  for (int64_t id = 10; id > 0; --id) {
    ASSERT_TRUE(q.Enqueue(Count(id, 1, minutes(id), At(minutes(-id)))).ok());
  }
  EXPECT_THAT(Ids(q.Schedule(kT0)), ElementsAre(10, 9, 8, 7, 6, 5, 4, 3));
  EXPECT_THAT(q.Estimates(kT0), ElementsAre(Pair(2, At(minutes(3))), Pair(1, At(minutes(4)))));
}

TEST(MachineQueue, StartsPlannedTasksWhenTheirTimeComes) {
  MachineQueue q(2);
  ASSERT_TRUE(q.Restore(100, {0}, At(minutes(10))).ok());
  ASSERT_TRUE(q.Enqueue(Count(1, 2, minutes(20))).ok());
  ASSERT_TRUE(q.Enqueue(Count(2, 1, minutes(10))).ok());
  EXPECT_THAT(Ids(q.Schedule(kT0)), ElementsAre(2));
  ASSERT_TRUE(q.Enqueue(Count(3, 1, minutes(5))).ok());  // appended to a planned queue
  EXPECT_EQ(q.EstimatedStart(3, At(minutes(1))), At(minutes(30)));
  // At 10 both leases end; the agent reports them.
  for (int64_t id : {100, 2}) {
    ASSERT_TRUE(q.Finish(id, At(minutes(10))));
    ASSERT_TRUE(q.Release(id));
  }
  EXPECT_THAT(Ids(q.Schedule(At(minutes(10)))), ElementsAre(1));
  EXPECT_EQ(q.EstimatedStart(3, At(minutes(10))), At(minutes(30)));
}

TEST(MachineQueue, AnEarlierSubmitTimeLandsAheadOfPlannedTasks) {
  MachineQueue q(1);
  ASSERT_TRUE(q.Restore(100, {0}, At(minutes(10))).ok());
  ASSERT_TRUE(q.Enqueue(Count(1, 1, minutes(5), At(minutes(0)))).ok());
  EXPECT_EQ(q.EstimatedStart(1, kT0), At(minutes(10)));
  ASSERT_TRUE(q.Enqueue(Count(2, 1, minutes(5), At(minutes(-1)))).ok());
  EXPECT_THAT(q.Estimates(kT0), ElementsAre(Pair(2, At(minutes(10))), Pair(1, At(minutes(15)))));
}

TEST(MachineQueue, MovesWithItsState) {
  MachineQueue a(1);
  ASSERT_TRUE(a.Restore(100, {0}, At(minutes(10))).ok());
  ASSERT_TRUE(a.Enqueue(Count(1, 1, minutes(5))).ok());
  EXPECT_EQ(a.EstimatedStart(1, kT0), At(minutes(10)));  // planned: next_ is end()
  MachineQueue b(std::move(a));
  EXPECT_EQ(b.EstimatedStart(1, kT0), At(minutes(10)));
  ASSERT_TRUE(b.Enqueue(Count(2, 1, minutes(5))).ok());
  MachineQueue c(4);
  c = std::move(b);
  EXPECT_THAT(c.Estimates(kT0), ElementsAre(Pair(1, At(minutes(10))), Pair(2, At(minutes(15)))));
  ASSERT_TRUE(c.Release(100));
  EXPECT_THAT(Ids(c.Schedule(kT0)), ElementsAre(1));
}

TEST(MachineQueue, ZeroGpus) {
  MachineQueue q(0);
  ASSERT_TRUE(q.Enqueue(Count(1, 1, minutes(5))).ok());
  EXPECT_THAT(q.Schedule(kT0), IsEmpty());
  EXPECT_EQ(q.EstimatedStart(1, kT0), std::nullopt);
  q.SetGpuCount(1);
  EXPECT_THAT(Ids(q.Schedule(kT0)), ElementsAre(1));
}

// GPU 0 is free now, GPU 1 leased until 30, GPU 2 until 10. A (0 and 1 for
// 5) is reserved at 30 and ends GPU 0's free stretch there; B (1 and 2 for
// 10) at 35, which leaves GPU 2 free over [10, 35), a run across 30. P (one
// GPU for 40) is too long for anything before 35: it lands at 35 on GPU 0.
// Y (two for 10) fits on 0 and 2 over [10, 20) whatever P does: Schedule
// reserves it ahead of P. Z (one for 10) then fits GPU 0 now.
void QueueAcrossACrossingRun(MachineQueue& q, bool with_u) {
  ASSERT_TRUE(q.Restore(100, {1}, At(minutes(30))).ok());
  ASSERT_TRUE(q.Restore(101, {2}, At(minutes(10))).ok());
  ASSERT_TRUE(q.Enqueue(Named(1, {0, 1}, minutes(5))).ok());   // A
  ASSERT_TRUE(q.Enqueue(Named(2, {1, 2}, minutes(10))).ok());  // B
  ASSERT_TRUE(q.Enqueue(Count(3, 1, minutes(40))).ok());       // P
  ASSERT_TRUE(q.Enqueue(Count(4, 2, minutes(10))).ok());       // Y
  // U (1 and 2 for 5) lands at 45, after 30, yet is short enough for the
  // run across 30: Schedule cannot tell without the plan, and plans from
  // the head instead.
  if (with_u) {
    ASSERT_TRUE(q.Enqueue(Named(5, {1, 2}, minutes(5))).ok());
  }
  ASSERT_TRUE(q.Enqueue(Count(6, 1, minutes(10))).ok());  // Z
}

TEST(MachineQueue, ReservesAheadPastARunAcrossTheEndOfTheFreeTime) {
  for (bool with_u : {false, true}) {
    SCOPED_TRACE(with_u ? "with U" : "without U");
    MachineQueue q(3, minutes(0));
    QueueAcrossACrossingRun(q, with_u);
    const auto started = q.Schedule(kT0);
    ASSERT_THAT(Ids(started), ElementsAre(6));
    EXPECT_THAT(started[0].gpus, ElementsAre(0));
    std::vector<std::pair<int64_t, std::optional<TimePoint>>> expected = {
        {1, At(minutes(30))}, {2, At(minutes(35))}, {3, At(minutes(35))}, {4, At(minutes(10))}};
    if (with_u) expected.emplace_back(5, At(minutes(45)));
    EXPECT_EQ(q.Estimates(kT0), expected);
    // Y starts at 10 on the GPUs it was planned on, once Z and the lease on
    // GPU 2 are over.
    ASSERT_TRUE(q.Release(101));
    ASSERT_TRUE(q.Release(6));
    EXPECT_THAT(q.Schedule(At(minutes(10))),
                ElementsAre(Placement{4, {0, 2}, At(minutes(10)), At(minutes(20))}));
  }
}

}  // namespace
}  // namespace gpuhub::sched
