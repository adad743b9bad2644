// The batching policy, driven with explicit times (the fake clock): no threads, no sleeps.
#include "batch_queue.h"

#include <gtest/gtest.h>

#include "clock.h"

namespace engine {
namespace {

class BatchQueueTest : public ::testing::Test {
 protected:
  std::unique_ptr<QueuedRequest> Make(int64_t rows, int priority = 0, int64_t key = 0,
                                      int64_t deadline_us = 0) {
    auto r = std::make_unique<QueuedRequest>();
    r->request = std::make_unique<InferRequest>();
    r->request->priority = priority;
    r->seq = next_seq_++;
    r->rows = rows;
    r->enqueue_us = clock_.NowUs();
    r->deadline_us = deadline_us;
    r->batch_key = {key};
    return r;
  }

  static std::vector<uint64_t> Seqs(const QueuedBatch& batch) {
    std::vector<uint64_t> seqs;
    for (const auto& r : batch) seqs.push_back(r->seq);
    return seqs;
  }

  FakeClock clock_;
  uint64_t next_seq_ = 1;
};

TEST_F(BatchQueueTest, ZeroDelayTakesWhatIsThereUpToMaxRows) {
  BatchQueue q(BatchingPolicy{true, 8, {}, 0, 100});
  for (int64_t rows : {3, 4, 2, 1}) ASSERT_EQ(q.Push(Make(rows)), nullptr);
  int64_t wake = 0;
  // 3 + 4 = 7; the next request (2 rows) would exceed 8 and is never skipped over.
  EXPECT_EQ(Seqs(q.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(Seqs(q.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{3, 4}));
  EXPECT_TRUE(q.TakeBatch(clock_.NowUs(), &wake).empty());
  EXPECT_EQ(wake, BatchQueue::kNever);
}

// A worker waiting out the queue delay is woken only when a push may make a batch ready (or
// starts the delay): the wake-up per request cost more than the batching saved.
TEST_F(BatchQueueTest, WorthWakingOnlyWhenABatchMayBeReady) {
  BatchQueue q(BatchingPolicy{true, 8, {4, 6}, 1000, 100});
  std::vector<bool> wakes;
  for (int i = 0; i < 5; ++i) {
    q.Push(Make(1));
    wakes.push_back(q.WorthWaking());
  }
  // First push starts the delay; the 4th reaches the smallest preferred size.
  EXPECT_EQ(wakes, (std::vector<bool>{true, false, false, true, true}));
  int64_t wake = 0;
  EXPECT_EQ(q.TakeBatch(clock_.NowUs(), &wake).size(), 4u);
  q.Push(Make(1));
  EXPECT_FALSE(q.WorthWaking());  // 2 rows queued: nothing to do before the delay ends
  BatchQueue no_delay(BatchingPolicy{true, 8, {4}, 0, 100});
  no_delay.Push(Make(1));
  no_delay.Push(Make(1));
  EXPECT_TRUE(no_delay.WorthWaking());
}

TEST_F(BatchQueueTest, FullBatchRunsAtOnceEvenWithDelay) {
  BatchQueue q(BatchingPolicy{true, 4, {}, 1000, 100});
  for (int i = 0; i < 5; ++i) q.Push(Make(1));
  int64_t wake = 0;
  EXPECT_EQ(q.TakeBatch(clock_.NowUs(), &wake).size(), 4u);
  // One request left: it waits out the delay.
  EXPECT_TRUE(q.TakeBatch(clock_.NowUs(), &wake).empty());
  EXPECT_EQ(wake, clock_.NowUs() + 1000);
  clock_.AdvanceUs(999);
  EXPECT_TRUE(q.TakeBatch(clock_.NowUs(), &wake).empty());
  clock_.AdvanceUs(1);
  EXPECT_EQ(q.TakeBatch(clock_.NowUs(), &wake).size(), 1u);
}

TEST_F(BatchQueueTest, QueueDelayCollectsLateArrivals) {
  BatchQueue q(BatchingPolicy{true, 16, {}, 500, 100});
  q.Push(Make(2));
  int64_t wake = 0;
  EXPECT_TRUE(q.TakeBatch(clock_.NowUs(), &wake).empty());
  clock_.AdvanceUs(200);
  q.Push(Make(3));
  EXPECT_TRUE(q.TakeBatch(clock_.NowUs(), &wake).empty());
  EXPECT_EQ(wake, clock_.NowUs() + 300);  // measured from the oldest request
  clock_.AdvanceUs(300);
  EXPECT_EQ(Seqs(q.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{1, 2}));
}

TEST_F(BatchQueueTest, PreferredSizeRunsWithoutWaiting) {
  BatchQueue q(BatchingPolicy{true, 32, {4, 8}, 10'000, 100});
  for (int i = 0; i < 5; ++i) q.Push(Make(1));
  int64_t wake = 0;
  // 5 rows queued: the largest preferred size a prefix fills exactly is 4.
  EXPECT_EQ(q.TakeBatch(clock_.NowUs(), &wake).size(), 4u);
  EXPECT_TRUE(q.TakeBatch(clock_.NowUs(), &wake).empty());
  for (int i = 0; i < 7; ++i) q.Push(Make(1));
  EXPECT_EQ(q.TakeBatch(clock_.NowUs(), &wake).size(), 8u);
}

// A full queue still runs the largest preferred size, not the max: with 64 requests in flight
// and preferred 32, two half batches alternate (one runs while the other is resubmitted).
TEST_F(BatchQueueTest, PreferredSizeWinsOverAFullBatch) {
  BatchQueue q(BatchingPolicy{true, 64, {32}, 500, 100});
  for (int i = 0; i < 64; ++i) q.Push(Make(1));
  int64_t wake = 0;
  EXPECT_EQ(q.TakeBatch(clock_.NowUs(), &wake).size(), 32u);
  EXPECT_EQ(q.TakeBatch(clock_.NowUs(), &wake).size(), 32u);
  // Rows that skip past every preferred size: a full batch runs at once.
  BatchQueue odd(BatchingPolicy{true, 8, {3}, 500, 100});
  for (int i = 0; i < 4; ++i) odd.Push(Make(2));
  EXPECT_EQ(odd.TakeBatch(clock_.NowUs(), &wake).size(), 4u);
}

// A request larger than the largest preferred size (or rows that step past it) runs at
// once instead of waiting out the delay for company it can no longer use.
TEST_F(BatchQueueTest, RowsPastTheLargestPreferredSizeRunWithoutWaiting) {
  BatchQueue q(BatchingPolicy{true, 64, {8}, 10'000, 100});
  q.Push(Make(16));
  int64_t wake = 0;
  EXPECT_EQ(Seqs(q.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{1}));
  for (int i = 0; i < 4; ++i) q.Push(Make(3));  // 3, 6, 9: the prefix of 9 rows runs
  EXPECT_EQ(Seqs(q.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{2, 3, 4}));
  EXPECT_TRUE(q.TakeBatch(clock_.NowUs(), &wake).empty());  // 3 rows: they wait
  EXPECT_EQ(wake, clock_.NowUs() + 10'000);
}

// One request of another shape at the head waits for company; the requests behind it that
// fill a preferred size run meanwhile instead of waiting out its delay. The head still runs
// when its delay ends.
TEST_F(BatchQueueTest, AReadyBatchBehindAWaitingHeadRunsMeanwhile) {
  BatchQueue q(BatchingPolicy{true, 16, {4}, 10'000, 100});
  const int64_t t0 = clock_.NowUs();
  q.Push(Make(1, 0, /*key=*/10));               // seq 1: the head
  for (int i = 0; i < 5; ++i) q.Push(Make(1, 0, /*key=*/20));  // seqs 2-6
  q.Push(Make(1, -1, /*key=*/30));              // seq 7, lower priority
  int64_t wake = 0;
  EXPECT_EQ(Seqs(q.TakeBatch(t0, &wake)), (std::vector<uint64_t>{2, 3, 4, 5}));
  EXPECT_TRUE(q.TakeBatch(t0, &wake).empty());  // key 20 has 1 left, key 10 and 30 have 1
  EXPECT_EQ(wake, t0 + 10'000);                 // the head's delay
  clock_.AdvanceUs(10'000);
  EXPECT_EQ(Seqs(q.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{1}));
  EXPECT_EQ(Seqs(q.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{6}));
  EXPECT_EQ(Seqs(q.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{7}));
  // A full batch of another key, at a lower priority than the head, runs meanwhile too.
  BatchQueue full(BatchingPolicy{true, 2, {}, 10'000, 100});
  full.Push(Make(1, 5, /*key=*/1));
  full.Push(Make(1, 0, /*key=*/2));
  full.Push(Make(1, 0, /*key=*/2));
  EXPECT_EQ(Seqs(full.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{9, 10}));
}

TEST_F(BatchQueueTest, HigherPriorityFirstFifoWithinALevel) {
  BatchQueue q(BatchingPolicy{true, 2, {}, 0, 100});
  q.Push(Make(1, 0));
  q.Push(Make(1, 0));
  q.Push(Make(1, 7));
  q.Push(Make(1, 3));
  int64_t wake = 0;
  EXPECT_EQ(Seqs(q.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{3, 4}));
  EXPECT_EQ(Seqs(q.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{1, 2}));
}

// Levels that empty are kept for reuse (up to a few); an empty level above the others must
// never be taken for the head, and many distinct priorities still drain in order.
TEST_F(BatchQueueTest, EmptiedPriorityLevelsNeverHideTheHead) {
  BatchQueue q(BatchingPolicy{true, 4, {}, 0, 100});
  int64_t wake = 0;
  q.Push(Make(1, 9));
  EXPECT_EQ(Seqs(q.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{1}));
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(q.TakeBatch(clock_.NowUs(), &wake).empty());
  EXPECT_EQ(wake, BatchQueue::kNever);
  q.Push(Make(1, 0));  // seq 2
  q.Push(Make(1, 5));  // seq 3
  EXPECT_EQ(Seqs(q.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{3, 2}));
  // Twenty priorities, pushed low to high, come out high to low.
  for (int p = 0; p < 20; ++p) q.Push(Make(1, p));  // seqs 4..23
  std::vector<uint64_t> order;
  while (!q.empty()) {
    QueuedBatch batch = q.TakeBatch(clock_.NowUs(), &wake);
    ASSERT_FALSE(batch.empty());
    for (uint64_t seq : Seqs(batch)) order.push_back(seq);
  }
  ASSERT_EQ(order.size(), 20u);
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], 23 - i);
  q.Push(Make(1, 0, 0, clock_.NowUs() + 10));  // seq 24: expiry and removal after all that
  q.Push(Make(1, 1));                            // seq 25
  clock_.AdvanceUs(10);
  EXPECT_EQ(Seqs(q.TakeExpired(clock_.NowUs())), (std::vector<uint64_t>{24}));
  EXPECT_NE(q.Remove(25), nullptr);
  EXPECT_TRUE(q.empty());
}

// A batch from the middle of a level (behind a request of another key) is detached without
// disturbing the rest of the level's order.
TEST_F(BatchQueueTest, BatchBehindAnotherKeyLeavesTheRestInOrder) {
  BatchQueue q(BatchingPolicy{true, 16, {}, 0, 100});
  q.Push(Make(1, 0, 10));  // seq 1: head, key 10
  q.Push(Make(1, 0, 20));  // seq 2
  q.Push(Make(1, 0, 10));  // seq 3
  q.Push(Make(1, 0, 20));  // seq 4
  q.Push(Make(1, 0, 10));  // seq 5
  int64_t wake = 0;
  EXPECT_EQ(Seqs(q.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{1, 3, 5}));
  EXPECT_EQ(Seqs(q.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{2, 4}));
  EXPECT_TRUE(q.empty());
}

TEST_F(BatchQueueTest, DifferentBatchKeysAreNotMixed) {
  BatchQueue q(BatchingPolicy{true, 16, {}, 0, 100});
  q.Push(Make(1, 0, 10));
  q.Push(Make(1, 0, 20));
  q.Push(Make(1, 0, 10));
  int64_t wake = 0;
  EXPECT_EQ(Seqs(q.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{1, 3}));
  EXPECT_EQ(Seqs(q.TakeBatch(clock_.NowUs(), &wake)), (std::vector<uint64_t>{2}));
}

TEST_F(BatchQueueTest, BatchingOffRunsOneRequestPerBatch) {
  BatchQueue q(BatchingPolicy{false, 16, {}, 0, 100});
  q.Push(Make(2));
  q.Push(Make(2));
  int64_t wake = 0;
  EXPECT_EQ(q.TakeBatch(clock_.NowUs(), &wake).size(), 1u);
}

TEST_F(BatchQueueTest, DeadlinesExpireAndWakeTheWorker) {
  BatchQueue q(BatchingPolicy{true, 16, {}, 5000, 100});
  const int64_t t0 = clock_.NowUs();
  q.Push(Make(1, 0, 0, t0 + 100));
  q.Push(Make(1, 0, 0, 0));
  EXPECT_EQ(q.NextDeadlineUs(), t0 + 100);
  EXPECT_TRUE(q.TakeExpired(t0 + 99).empty());
  QueuedBatch expired = q.TakeExpired(t0 + 100);
  EXPECT_EQ(Seqs(expired), (std::vector<uint64_t>{1}));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.NextDeadlineUs(), BatchQueue::kNever);
}

TEST_F(BatchQueueTest, ADeadlineCutsTheQueueDelayShort) {
  // A 50 ms delay and a 10 ms deadline: the batch runs 2 ms (the lead, a fifth of the
  // timeout) before the deadline rather than waiting for company until the request expired.
  BatchQueue q(BatchingPolicy{true, 16, {}, 50'000, 100});
  const int64_t t0 = clock_.NowUs();
  q.Push(Make(1, 0, 0, 0));
  q.Push(Make(1, 0, 0, t0 + 10'000));
  int64_t wake = 0;
  EXPECT_TRUE(q.TakeBatch(t0, &wake).empty());
  EXPECT_EQ(wake, t0 + 8'000);
  EXPECT_TRUE(q.TakeBatch(wake - 1, &wake).empty());
  EXPECT_TRUE(q.TakeExpired(wake).empty());
  EXPECT_EQ(Seqs(q.TakeBatch(wake, &wake)), (std::vector<uint64_t>{1, 2}));
  EXPECT_TRUE(q.empty());
}

TEST_F(BatchQueueTest, TheLeadIsAFifthOfTheTimeoutAndAtLeastOneMillisecond) {
  EXPECT_EQ(BatchQueue::DeadlineLeadUs(100), 1000);
  EXPECT_EQ(BatchQueue::DeadlineLeadUs(5000), 1000);
  EXPECT_EQ(BatchQueue::DeadlineLeadUs(200'000), 40'000);
}

TEST_F(BatchQueueTest, ANearerDeadlineWakesTheWorkerAFartherOneDoesNot) {
  // The worker sleeps until the head's delay ends or the earliest start-by time: a request
  // that must start sooner than that needs it awake; one that may start later does not.
  BatchQueue q(BatchingPolicy{true, 16, {}, 200'000, 100});
  const int64_t t0 = clock_.NowUs();
  q.Push(Make(1, 0, 0, t0 + 100'000));
  EXPECT_TRUE(q.WorthWaking());  // the first request starts the delay timer
  q.Push(Make(1, 0, 0, t0 + 150'000));
  EXPECT_FALSE(q.WorthWaking());
  q.Push(Make(1));
  EXPECT_FALSE(q.WorthWaking());
  q.Push(Make(1, 0, 0, t0 + 10'000));
  EXPECT_TRUE(q.WorthWaking());
  int64_t wake = 0;
  EXPECT_TRUE(q.TakeBatch(t0, &wake).empty());
  EXPECT_EQ(wake, t0 + 8'000);
}

TEST_F(BatchQueueTest, ADeadlineShorterThanTheLeadRunsAtOnce) {
  BatchQueue q(BatchingPolicy{true, 16, {}, 50'000, 100});
  const int64_t t0 = clock_.NowUs();
  q.Push(Make(1, 0, 0, t0 + 200));
  int64_t wake = 0;
  EXPECT_EQ(q.TakeBatch(t0, &wake).size(), 1u);
}

TEST_F(BatchQueueTest, AnotherKeysDeadlineMovesTheHeadBatchAlong) {
  // The request near its deadline cannot join the head's batch; running the head's batch
  // early lets it be next instead of waiting out the head's delay behind it.
  BatchQueue q(BatchingPolicy{true, 16, {}, 50'000, 100});
  const int64_t t0 = clock_.NowUs();
  q.Push(Make(1, 0, /*key=*/1, 0));
  q.Push(Make(1, 0, /*key=*/2, t0 + 5'000));
  int64_t wake = 0;
  EXPECT_TRUE(q.TakeBatch(t0, &wake).empty());
  EXPECT_EQ(wake, t0 + 4'000);
  EXPECT_EQ(Seqs(q.TakeBatch(wake, &wake)), (std::vector<uint64_t>{1}));
  EXPECT_EQ(Seqs(q.TakeBatch(t0 + 4'000, &wake)), (std::vector<uint64_t>{2}));
}

TEST_F(BatchQueueTest, FullQueueHandsTheRequestBack) {
  BatchQueue q(BatchingPolicy{true, 16, {}, 0, 2});
  EXPECT_EQ(q.Push(Make(1)), nullptr);
  EXPECT_EQ(q.Push(Make(1)), nullptr);
  auto refused = q.Push(Make(1));
  ASSERT_NE(refused, nullptr);
  EXPECT_EQ(refused->seq, 3u);
  EXPECT_EQ(q.size(), 2u);
}

TEST_F(BatchQueueTest, RemoveCancelsOnlyQueuedRequests) {
  BatchQueue q(BatchingPolicy{true, 16, {}, 0, 100});
  q.Push(Make(1, 0, 0, clock_.NowUs() + 50));
  q.Push(Make(1, 2));
  auto removed = q.Remove(1);
  ASSERT_NE(removed, nullptr);
  EXPECT_EQ(removed->seq, 1u);
  EXPECT_EQ(q.Remove(1), nullptr);
  EXPECT_EQ(q.Remove(42), nullptr);
  EXPECT_EQ(q.NextDeadlineUs(), BatchQueue::kNever);  // its deadline left with it
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.TakeAll().size(), 1u);
  EXPECT_TRUE(q.empty());
}

}  // namespace
}  // namespace engine
