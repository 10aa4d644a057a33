#include "sched/profile.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace gpuhub::sched::detail {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using ::testing::ElementsAre;

const TimePoint kT0 = TimePoint{} + hours(24 * 365 * 56);

TEST(LengthClass, IsMonotoneAndBounded) {
  std::mt19937_64 rng(7);
  std::vector<int64_t> samples = {0, 1, 2, 7, 8, 9, 15, 16, 17, 1000, 1023, 1024, 1025};
  for (int i = 0; i < 2000; ++i) {  // up to 2^43 ms, about what a Duration holds
    samples.push_back(static_cast<int64_t>(rng() >> (rng() % 43 + 21)));
  }
  for (int64_t ms : samples) {
    const int c = LengthClass(milliseconds(ms));
    ASSERT_GE(c, 0);
    ASSERT_LT(c, kLengthClasses);
    EXPECT_LT(Duration(milliseconds(ms)), LengthClassBound(c)) << ms;
    EXPECT_LE(LengthClass(milliseconds(ms)), LengthClass(milliseconds(ms + 1))) << ms;
    if (c > 0) {
      EXPECT_GE(Duration(milliseconds(ms)), LengthClassBound(c - 1)) << ms;
    }
  }
  // Sub-millisecond lengths share class 0.
  EXPECT_EQ(LengthClass(std::chrono::microseconds(999)), 0);
  // A quarter octave: [1024, 1280) ms is one class.
  EXPECT_EQ(LengthClass(milliseconds(1024)), LengthClass(milliseconds(1279)));
  EXPECT_NE(LengthClass(milliseconds(1279)), LengthClass(milliseconds(1280)));
}

TEST(ClassSet, IteratesFromAndChecksUpTo) {
  ClassSet s;
  EXPECT_FALSE(s.Any());
  for (int c : {3, 63, 64, 130, 255}) s.Add(c);
  std::vector<int> seen;
  s.ForEachFrom(4, [&](int c) { seen.push_back(c); });
  EXPECT_THAT(seen, ElementsAre(63, 64, 130, 255));
  EXPECT_FALSE(s.AnyUpTo(2));
  EXPECT_TRUE(s.AnyUpTo(3));
  s.Remove(3);
  EXPECT_FALSE(s.AnyUpTo(62));
  EXPECT_TRUE(s.AnyUpTo(63));
  EXPECT_TRUE(s.AnyUpTo(255));
  s.Clear();
  EXPECT_FALSE(s.Any());
}

TEST(Profile, FillsHolesAndTails) {
  // GPU 0 free at 10, GPU 1 at 30, GPU 2 now.
  Profile p;
  p.Reset(kT0, {kT0 + minutes(10), kT0 + minutes(30), kT0});
  EXPECT_EQ(p.free_open(), 1);
  EXPECT_EQ(p.MaxOpenWindow(), Duration::max());
  std::vector<int> gpus;
  // All three, for 10 minutes: at 30. Leaves holes [10, 30) on 0 and [0, 30) on 2.
  EXPECT_EQ(p.PlaceCount(3, minutes(10), &gpus), kT0 + minutes(30));
  EXPECT_THAT(gpus, ElementsAre(0, 1, 2));
  EXPECT_EQ(p.MaxOpenWindow(), minutes(30));
  // Two for 20: GPUs 0 and 2 at 10.
  EXPECT_EQ(p.PlaceCount(2, minutes(20), &gpus), kT0 + minutes(10));
  EXPECT_THAT(gpus, ElementsAre(0, 2));
  // GPU 2 for 10: what is left of its hole, now.
  EXPECT_EQ(p.PlaceGpus({2}, minutes(10)), kT0);
  EXPECT_EQ(p.free_open(), 0);
  // GPU 1 for 5: after the first reservation, at 40.
  EXPECT_EQ(p.PlaceGpus({1}, minutes(5)), kT0 + minutes(40));
  // One for 11 minutes: no hole is long enough; GPU 0's tail at 40.
  EXPECT_EQ(p.PlaceCount(1, minutes(11), &gpus), kT0 + minutes(40));
  EXPECT_THAT(gpus, ElementsAre(0));
}

TEST(Profile, ReanchorKeepsTheFuture) {
  Profile p;
  p.Reset(kT0, {kT0, kT0, kT0 + minutes(20)});
  std::vector<int> gpus;
  EXPECT_EQ(p.PlaceCount(3, minutes(10), &gpus), kT0 + minutes(20));
  p.Reanchor(kT0 + minutes(5));
  // GPUs 0 and 1 are free from now (5) until 20.
  EXPECT_EQ(p.MaxOpenWindow(), minutes(15));
  EXPECT_EQ(p.PlaceCount(2, minutes(15), &gpus), kT0 + minutes(5));
  EXPECT_THAT(gpus, ElementsAre(0, 1));
  EXPECT_EQ(p.PlaceCount(1, minutes(1), &gpus), kT0 + minutes(30));
}

TEST(Profile, CrossingRunsAtATime) {
  // GPU 0 free now, GPU 1 at 20, GPU 2 at 50.
  Profile p;
  p.Reset(kT0, {kT0, kT0 + minutes(20), kT0 + minutes(50)});
  // Every tail starts before 60.
  EXPECT_EQ(p.Crossing(kT0 + minutes(60)), Duration::max());
  std::vector<int> gpus;
  // All three at 50 for 10: holes [0, 50) on 0 and [20, 50) on 1, tails at 60.
  EXPECT_EQ(p.PlaceCount(3, minutes(10), &gpus), kT0 + minutes(50));
  EXPECT_EQ(p.Crossing(kT0 + minutes(50)), Duration::zero());
  EXPECT_EQ(p.Crossing(kT0 + minutes(55)), Duration::zero());
  EXPECT_EQ(p.Crossing(kT0 + minutes(60)), Duration::zero());
  EXPECT_EQ(p.Crossing(kT0 + minutes(61)), Duration::max());  // the tails
  EXPECT_EQ(p.Crossing(kT0 + minutes(30)), minutes(50));      // the holes on 0 and 1
  // Take [20, 50) on GPU 1 and [0, 25) on GPU 0: only [25, 50) on 0 crosses 30.
  EXPECT_EQ(p.PlaceGpus({1}, minutes(30)), kT0 + minutes(20));
  EXPECT_EQ(p.PlaceGpus({0}, minutes(25)), kT0);
  EXPECT_EQ(p.Crossing(kT0 + minutes(30)), minutes(25));
  EXPECT_EQ(p.Crossing(kT0 + minutes(25)), Duration::zero());
  EXPECT_EQ(p.PlaceGpus({0}, minutes(25)), kT0 + minutes(25));
  EXPECT_EQ(p.Crossing(kT0 + minutes(30)), Duration::zero());
}

TEST(Profile, LongestRunBeforeATime) {
  // GPU 0 free now, GPU 1 at 20, GPU 2 at 50; all three reserved at [50, 60).
  Profile p;
  p.Reset(kT0, {kT0, kT0 + minutes(20), kT0 + minutes(50)});
  std::vector<int> gpus;
  EXPECT_EQ(p.PlaceCount(3, minutes(10), &gpus), kT0 + minutes(50));
  EXPECT_EQ(p.LongestRunBefore(kT0 + minutes(50)), minutes(50));  // GPU 0's hole
  EXPECT_EQ(p.LongestRunBefore(kT0 + minutes(30)), minutes(30));  // its first 30
  EXPECT_EQ(p.LongestRunBefore(kT0 + minutes(90)), minutes(50));  // the tails: 30
  // GPU 0 taken [0, 35): GPU 1's [20, 50) is the longest left.
  EXPECT_EQ(p.PlaceGpus({0}, minutes(35)), kT0);
  EXPECT_EQ(p.LongestRunBefore(kT0 + minutes(50)), minutes(30));
  EXPECT_EQ(p.LongestRunBefore(kT0 + minutes(25)), minutes(5));
  EXPECT_EQ(p.LongestRunBefore(kT0 + minutes(20)), Duration::zero());
}

TEST(Profile, ManyNamedPlacementsKeepTailsOrdered) {
  // Each placement on a named GPU's tail leaves a stale heap entry behind;
  // enough of them make the profile rebuild its heap.
  Profile p;
  p.Reset(kT0, {kT0, kT0 + minutes(500), kT0 + minutes(1)});
  for (int i = 0; i < 200; ++i) EXPECT_EQ(p.PlaceGpus({0}, minutes(1)), kT0 + minutes(i));
  EXPECT_EQ(p.PlaceGpus({2}, minutes(1)), kT0 + minutes(1));
  std::vector<int> gpus;
  EXPECT_EQ(p.PlaceCount(1, minutes(1), &gpus), kT0 + minutes(2));
  EXPECT_THAT(gpus, ElementsAre(2));
  EXPECT_EQ(p.PlaceCount(3, minutes(1), &gpus), kT0 + minutes(500));
  EXPECT_THAT(gpus, ElementsAre(0, 1, 2));
  // What the three left in front of 500 on GPU 2: [3, 500).
  EXPECT_EQ(p.PlaceCount(1, minutes(400), &gpus), kT0 + minutes(3));
  EXPECT_THAT(gpus, ElementsAre(2));
}

}  // namespace
}  // namespace gpuhub::sched::detail
