// The completion thread: order, drain on Stop, and completion on the caller after Stop.
#include "completer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

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

}  // namespace
}  // namespace engine
