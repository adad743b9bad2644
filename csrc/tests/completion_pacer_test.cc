// CompletionPacer: how the completion thread waits (nap, then spin), from the times batches
// were posted.
#include "completion_pacer.h"

#include <gtest/gtest.h>

namespace engine {
namespace {

constexpr int64_t kUs = 1000;

// Posts at `start`, start + interval, ... (`count` posts), each run by a worker for
// `worker` (default: the whole interval, a saturated worker); returns the last post's time.
int64_t PostEvery(CompletionPacer& pacer, int64_t start, int64_t interval, int count,
                  int64_t worker = -1) {
  int64_t t = start;
  for (int i = 0; i < count; ++i) {
    t = start + i * interval;
    pacer.OnPost(t, worker < 0 ? interval : worker);
  }
  return t;
}

void ExpectWait(const CompletionPacer::Wait& wait, int64_t nap_until_ns, int64_t spin_until_ns) {
  EXPECT_EQ(wait.nap_until_ns, nap_until_ns);
  EXPECT_EQ(wait.spin_until_ns, spin_until_ns);
}

TEST(CompletionPacer, NoPredictionUntilTwoPosts) {
  CompletionPacer pacer;
  ExpectWait(pacer.PlanWait(0), -1, -1);
  pacer.OnPost(1000 * kUs, 80 * kUs);
  ExpectWait(pacer.PlanWait(1001 * kUs), -1, -1);
  pacer.OnPost(1080 * kUs, 80 * kUs);
  EXPECT_EQ(pacer.interval_ns(), 80 * kUs);
}

TEST(CompletionPacer, NapsUntilHalfAnIntervalBeforeTheBatchIsDueThenSpinsOneIntervalPastIt) {
  CompletionPacer pacer;
  const int64_t last = PostEvery(pacer, 0, 80 * kUs, 10);
  EXPECT_EQ(pacer.interval_ns(), 80 * kUs);
  // Idle 30 us after the last post (its callbacks took that long); due at last + 80 us.
  ExpectWait(pacer.PlanWait(last + 30 * kUs), last + 40 * kUs, last + 160 * kUs);
}

TEST(CompletionPacer, TheSpinWindowIsCappedForSlowBatches) {
  CompletionPacer pacer;
  const int64_t last = PostEvery(pacer, 0, 600 * kUs, 10);
  const int64_t due = last + 600 * kUs;
  ExpectWait(pacer.PlanWait(last + 30 * kUs), due - CompletionPacer::kMaxSpinEarlyNs,
             due + CompletionPacer::kMaxSpinLateNs);
}

TEST(CompletionPacer, SpinsWithoutANapInsideOrNearTheWindowAndNotAtAllPastIt) {
  CompletionPacer pacer;
  const int64_t last = PostEvery(pacer, 0, 80 * kUs, 10);
  const int64_t spin_from = last + 40 * kUs;
  const int64_t spin_until = last + 160 * kUs;
  ExpectWait(pacer.PlanWait(spin_from - CompletionPacer::kMinNapNs), spin_from, spin_until);
  ExpectWait(pacer.PlanWait(spin_from - CompletionPacer::kMinNapNs + kUs), -1, spin_until);
  ExpectWait(pacer.PlanWait(last + 100 * kUs), -1, spin_until);  // the batch is late
  ExpectWait(pacer.PlanWait(spin_until), -1, -1);                // the pace broke
}

TEST(CompletionPacer, OffTheWorkersCpusNapsOnlyWhenTheNapIsLong) {
  constexpr int64_t kOff = CompletionPacer::kMinNapOffWorkersNs;
  CompletionPacer pacer;
  // 80-us batches: the 10-us nap that a thread sharing the workers' CPUs takes (above) is too
  // short; it spins from now to the end of the window instead.
  int64_t last = PostEvery(pacer, 0, 80 * kUs, 10);
  ExpectWait(pacer.PlanWait(last + 30 * kUs, kOff), -1, last + 160 * kUs);
  // 600-us batches: a nap of 520 us, then the same window as with the default.
  last = PostEvery(pacer, last + CompletionPacer::kMaxIntervalNs + 1, 600 * kUs, 20);
  const int64_t due = last + 600 * kUs;
  ExpectWait(pacer.PlanWait(last + 30 * kUs, kOff), due - CompletionPacer::kMaxSpinEarlyNs,
             due + CompletionPacer::kMaxSpinLateNs);
}

TEST(CompletionPacer, NoSpinWhileTheWorkersHaveMoreSlackThanBusyTime) {
  CompletionPacer pacer;
  // Runs of 30 us every 80 us: the worker idles most of the time, a wake costs it nothing.
  int64_t last = PostEvery(pacer, 0, 80 * kUs, 10, 30 * kUs);
  ExpectWait(pacer.PlanWait(last + 10 * kUs), -1, -1);
  // Busy more than half the time: the wake delays its next run; spin.
  last = PostEvery(pacer, last + 80 * kUs, 80 * kUs, 40, 50 * kUs);
  EXPECT_NEAR(static_cast<double>(pacer.worker_ns()), 50.0 * kUs, 0.1 * kUs);
  ExpectWait(pacer.PlanWait(last + 10 * kUs), last + 40 * kUs, last + 160 * kUs);
}

TEST(CompletionPacer, APauseForgetsThePace) {
  CompletionPacer pacer;
  const int64_t last = PostEvery(pacer, 0, 80 * kUs, 10);
  const int64_t after_pause = last + CompletionPacer::kMaxIntervalNs + 1;
  pacer.OnPost(after_pause, 50 * kUs);
  EXPECT_EQ(pacer.interval_ns(), 0);
  ExpectWait(pacer.PlanWait(after_pause + kUs), -1, -1);
  pacer.OnPost(after_pause + 50 * kUs, 50 * kUs);  // a new pace starts from one interval
  EXPECT_EQ(pacer.interval_ns(), 50 * kUs);
}

TEST(CompletionPacer, AClockStepBackwardsForgetsThePace) {
  CompletionPacer pacer;
  const int64_t last = PostEvery(pacer, 1000 * kUs, 80 * kUs, 10);
  pacer.OnPost(last - 500 * kUs, 80 * kUs);
  EXPECT_EQ(pacer.interval_ns(), 0);
}

TEST(CompletionPacer, FollowsAChangeOfPaceWithoutJumpingAtOneOutlier) {
  CompletionPacer pacer;
  int64_t last = PostEvery(pacer, 0, 80 * kUs, 10);
  pacer.OnPost(last + 160 * kUs, 160 * kUs);  // one slow batch moves the estimate by an eighth
  EXPECT_EQ(pacer.interval_ns(), 90 * kUs);
  last = PostEvery(pacer, last + 160 * kUs + 40 * kUs, 40 * kUs, 40);
  EXPECT_NEAR(static_cast<double>(pacer.interval_ns()), 40.0 * kUs, 1.0 * kUs);
}

TEST(CompletionPacer, WakesOnlyWhenTheTimerIsFarOff) {
  const int64_t until = 500 * kUs;
  EXPECT_TRUE(CompletionPacer::MustWake(until - CompletionPacer::kMaxLateNs - 1, until));
  EXPECT_FALSE(CompletionPacer::MustWake(until - CompletionPacer::kMaxLateNs, until));
  EXPECT_FALSE(CompletionPacer::MustWake(until + kUs, until));  // the timer is firing
}

}  // namespace
}  // namespace engine
