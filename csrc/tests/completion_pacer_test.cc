// CompletionPacer: when the completion thread naps until, from the times batches were posted.
#include "completion_pacer.h"

#include <gtest/gtest.h>

namespace engine {
namespace {

constexpr int64_t kUs = 1000;

// Posts at `start`, start + interval, ... (`count` posts); returns the last post's time.
int64_t PostEvery(CompletionPacer& pacer, int64_t start, int64_t interval, int count) {
  int64_t t = start;
  for (int i = 0; i < count; ++i) {
    t = start + i * interval;
    pacer.OnPost(t);
  }
  return t;
}

TEST(CompletionPacer, NoPredictionUntilTwoPosts) {
  CompletionPacer pacer;
  EXPECT_EQ(pacer.NapUntil(0), -1);
  pacer.OnPost(1000 * kUs);
  EXPECT_EQ(pacer.NapUntil(1001 * kUs), -1);
  pacer.OnPost(1080 * kUs);
  EXPECT_EQ(pacer.interval_ns(), 80 * kUs);
}

TEST(CompletionPacer, NapsUntilTheNextBatchIsDuePlusTheMargin) {
  CompletionPacer pacer;
  const int64_t last = PostEvery(pacer, 0, 80 * kUs, 10);
  EXPECT_EQ(pacer.interval_ns(), 80 * kUs);
  // Idle 30 us after the last post (its callbacks took that long).
  EXPECT_EQ(pacer.NapUntil(last + 30 * kUs), last + 80 * kUs + CompletionPacer::kMarginNs);
}

TEST(CompletionPacer, NoNapWhenTheBatchIsOverdueOrAlmostDue) {
  CompletionPacer pacer;
  const int64_t last = PostEvery(pacer, 0, 80 * kUs, 10);
  const int64_t due = last + 80 * kUs + CompletionPacer::kMarginNs;
  EXPECT_EQ(pacer.NapUntil(due + kUs), -1);                                  // overdue
  EXPECT_EQ(pacer.NapUntil(due - CompletionPacer::kMinNapNs + kUs), -1);     // too short
  EXPECT_EQ(pacer.NapUntil(due - CompletionPacer::kMinNapNs), due);          // just long enough
}

TEST(CompletionPacer, APauseForgetsThePace) {
  CompletionPacer pacer;
  const int64_t last = PostEvery(pacer, 0, 80 * kUs, 10);
  const int64_t after_pause = last + CompletionPacer::kMaxIntervalNs + 1;
  pacer.OnPost(after_pause);
  EXPECT_EQ(pacer.interval_ns(), 0);
  EXPECT_EQ(pacer.NapUntil(after_pause + kUs), -1);
  pacer.OnPost(after_pause + 50 * kUs);  // a new pace starts from one interval
  EXPECT_EQ(pacer.interval_ns(), 50 * kUs);
}

TEST(CompletionPacer, AClockStepBackwardsForgetsThePace) {
  CompletionPacer pacer;
  const int64_t last = PostEvery(pacer, 1000 * kUs, 80 * kUs, 10);
  pacer.OnPost(last - 500 * kUs);
  EXPECT_EQ(pacer.interval_ns(), 0);
}

TEST(CompletionPacer, FollowsAChangeOfPaceWithoutJumpingAtOneOutlier) {
  CompletionPacer pacer;
  int64_t last = PostEvery(pacer, 0, 80 * kUs, 10);
  pacer.OnPost(last + 160 * kUs);  // one slow batch moves the estimate by an eighth
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
