// The completion thread: order, drain on Stop, and completion on the caller after Stop.
#include "completer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "affinity.h"

namespace engine {
namespace {

FinishedBatch BatchOf(std::initializer_list<uint64_t> seqs) {
  FinishedBatch finished;
  for (uint64_t seq : seqs) {
    auto r = std::make_unique<QueuedRequest>();
    r->seq = seq;
    finished.batch.push_back(std::move(r));
  }
  return finished;
}

TEST(Completer, CompletesEveryBatchInPostOrderAndDrainsOnStop) {
  std::mutex mutex;
  std::vector<uint64_t> seen;
  std::vector<std::thread::id> threads;
  Completer completer([&](FinishedBatch& finished) {
    ASSERT_FALSE(finished.needs_split);
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto& r : finished.batch) seen.push_back(r->seq);
    threads.push_back(std::this_thread::get_id());
  });
  for (uint64_t i = 0; i < 1000; ++i) {
    completer.Post(BatchOf({2 * i, 2 * i + 1}));
  }
  completer.Stop();  // returns only after all 1000 batches ran
  ASSERT_EQ(seen.size(), 2000u);
  for (uint64_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i);
  for (const auto& id : threads) EXPECT_NE(id, std::this_thread::get_id());
}

TEST(Completer, PostAfterStopCompletesOnTheCaller) {
  std::atomic<int> calls{0};
  std::thread::id where;
  Completer completer([&](FinishedBatch&) {
    ++calls;
    where = std::this_thread::get_id();
  });
  completer.Stop();
  completer.Stop();  // idempotent
  completer.Post(BatchOf({1}));
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(where, std::this_thread::get_id());
}

// Busy-waits until `t`: a sleep would be far less punctual than the pace under test.
void SpinUntil(std::chrono::steady_clock::time_point t) {
  while (std::chrono::steady_clock::now() < t) {
  }
}

TEST(Completer, AtASteadyPaceWaitsWithoutBeingWokenAndStillCompletesEverythingInOrder) {
  std::mutex mutex;
  std::condition_variable done;
  std::vector<uint64_t> seen;
  Completer completer([&](FinishedBatch& finished) {
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto& r : finished.batch) seen.push_back(r->seq);
    done.notify_all();
  });
  // Rounds of 400 batches 200 us apart, as a worker running 190-us batches posts them, each
  // round ending with a pause longer than any wait. Until a round has posts that found the
  // thread spinning, or napping and left to its timer: how many do depends on how punctual
  // the machine is (under heavy CPU load a round can have none); without the pacer no round
  // has any.
  constexpr int kPerRound = 401;
  int rounds = 0;
  Completer::Counts counts;
  uint64_t seq = 0;
  while (rounds < 3 && counts.found_spinning + counts.left_to_timer == 0) {
    ++rounds;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kPerRound - 1; ++i) {
      SpinUntil(start + std::chrono::microseconds(200 * i));
      FinishedBatch finished = BatchOf({seq++});
      finished.worker_ns = 190'000;  // a busy worker
      completer.Post(std::move(finished));
    }
    // After a pause longer than any nap or spin, a batch is still completed (woken, not left
    // to a timer that is long gone).
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    completer.Post(BatchOf({seq++}));
    {
      std::unique_lock<std::mutex> lock(mutex);
      ASSERT_TRUE(done.wait_for(lock, std::chrono::seconds(10), [&] { return seen.size() == seq; }))
          << seen.size() << " of " << seq << " batches completed";
    }
    counts = completer.counts();
  }
  for (uint64_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], i);
  EXPECT_EQ(counts.posted, rounds * kPerRound);
  EXPECT_GT(counts.found_spinning + counts.left_to_timer, 0) << "in " << rounds << " rounds";
  EXPECT_LT(counts.woke, counts.posted);
  completer.Stop();
}

// Kept off the workers' CPUs, the thread spins through the short gaps between 60-us batches
// where it would otherwise nap (a halted CPU's timer wakes it late on a VM).
TEST(Completer, KeptOffTheWorkersCpusSpinsRatherThanTakeShortNaps) {
  const std::vector<int> cpus = AllowedCpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs a CPU besides the workers' to keep the thread on";
  Completer completer([](FinishedBatch&) {}, /*spin=*/true, /*avoid_cpus=*/{cpus.front()});
  const auto start = std::chrono::steady_clock::now();
  constexpr int kPosts = 400;
  for (int i = 0; i < kPosts; ++i) {
    SpinUntil(start + std::chrono::microseconds(60 * i));
    FinishedBatch finished = BatchOf({static_cast<uint64_t>(i)});
    finished.worker_ns = 55'000;  // a busy worker
    completer.Post(std::move(finished));
  }
  completer.Stop();
  const Completer::Counts counts = completer.counts();
  EXPECT_EQ(counts.posted, kPosts);
  // Sharing the workers' CPUs, it naps before nearly every batch at this pace. A pace that a
  // loaded machine broke (a gap near kMaxIntervalNs lengthens the average) may earn a few.
  EXPECT_LE(counts.naps, kPosts / 10);
}

// No post found the thread spinning or napping: it only ever slept until woken, or was busy.
void ExpectEveryPostWokeItOrFoundItBusy(const Completer::Counts& counts, int64_t posted) {
  EXPECT_EQ(counts.posted, posted);
  EXPECT_EQ(counts.found_spinning, 0);
  EXPECT_EQ(counts.left_to_timer, 0);
  EXPECT_EQ(counts.naps, 0);
}

TEST(Completer, NeverSpinsOrNapsForWorkersWithMoreSlackThanWork) {
  Completer completer([](FinishedBatch&) {});
  // A steady pace, but each batch kept its worker 50 of at least 200 us: no wait is worth a
  // spin. (Each post 200 us after the last, not on a schedule: a late one must not be followed
  // by a catch-up burst that looks like a busy worker.)
  for (uint64_t i = 0; i < 200; ++i) {
    SpinUntil(std::chrono::steady_clock::now() + std::chrono::microseconds(200));
    FinishedBatch finished = BatchOf({i});
    finished.worker_ns = 50'000;
    completer.Post(std::move(finished));
  }
  completer.Stop();
  ExpectEveryPostWokeItOrFoundItBusy(completer.counts(), 200);
}

TEST(Completer, WithSpinOffOnlySleepsEvenForBusyWorkers) {
  Completer completer([](FinishedBatch&) {}, /*spin=*/false);
  // The steady pace of busy workers that makes a spinning completer spin or nap (above).
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < 400; ++i) {
    SpinUntil(start + std::chrono::microseconds(200 * i));
    FinishedBatch finished = BatchOf({i});
    finished.worker_ns = 190'000;
    completer.Post(std::move(finished));
  }
  completer.Stop();
  ExpectEveryPostWokeItOrFoundItBusy(completer.counts(), 400);
}

}  // namespace
}  // namespace engine
