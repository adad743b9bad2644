// InlineRunBudget: slots are taken up to the budget, given back when a Slot is destroyed
// (moved-from slots give back nothing), and never over-given under concurrent use.
#include "inline_run_budget.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <utility>
#include <vector>

namespace engine::server {
namespace {

TEST(InlineRunBudgetTest, SlotsAreTakenUpToTheBudgetAndGivenBackOnDestruction) {
  InlineRunBudget budget(2);
  {
    InlineRunBudget::Slot a = budget.TryTake();
    InlineRunBudget::Slot b = budget.TryTake();
    InlineRunBudget::Slot c = budget.TryTake();
    EXPECT_TRUE(a);
    EXPECT_TRUE(b);
    EXPECT_FALSE(c);  // over the budget
    EXPECT_EQ(budget.free_slots(), 0);
    InlineRunBudget::Slot moved(std::move(a));
    EXPECT_TRUE(moved);
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from holds nothing
    EXPECT_EQ(budget.free_slots(), 0);
  }
  EXPECT_EQ(budget.free_slots(), 2);  // a (through `moved`) and b, each once
}

TEST(InlineRunBudgetTest, ABudgetBelowOneIsOne) {
  InlineRunBudget budget(0);
  InlineRunBudget::Slot slot = budget.TryTake();
  EXPECT_TRUE(slot);
}

TEST(InlineRunBudgetTest, TheMachinesBudgetLeavesOneCallbackThreadFree) {
  const int budget = InlineRunBudget::ForThisMachine();
  EXPECT_GE(budget, 1);
  EXPECT_LE(budget, 15);  // grpc 1.51 starts at most 16 callback threads
}

TEST(InlineRunBudgetTest, ConcurrentHoldersNeverExceedTheBudget) {
  constexpr int kBudget = 3;
  InlineRunBudget budget(kBudget);
  std::atomic<int> holding{0}, most{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        InlineRunBudget::Slot slot = budget.TryTake();
        if (!slot) continue;
        const int now = holding.fetch_add(1) + 1;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        holding.fetch_sub(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(most.load(), kBudget);
  EXPECT_GE(most.load(), 1);
  EXPECT_EQ(budget.free_slots(), kBudget);
}

}  // namespace
}  // namespace engine::server
