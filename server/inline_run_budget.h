// How many gRPC threads may run model work inline (on the thread that received the request)
// at once.
//
// grpc++'s callback API runs every reaction (reads, writes, new calls, health checks) on a
// small fixed pool: clamp(cores / 2, 2, 16) threads in grpc 1.51. A thread lent to a model run
// is one fewer for I/O, and with every thread inside a run the whole server stops reading and
// answering until a run ends: a liveness check waited 10-19 ms behind two 21 ms runs of two
// models on 2 cores. Keeping one thread of the pool out of runs keeps I/O moving; a request
// over the budget queues for the model's worker, as any request that finds the model busy.
#pragma once

#include <algorithm>
#include <atomic>
#include <thread>
#include <utility>

namespace engine::server {

class InlineRunBudget {
 public:
  // At least one slot: with none, every request would pay the worker hand-off.
  explicit InlineRunBudget(int slots) : free_(std::max(slots, 1)) {}

  // One less than the callback threads grpc++ starts on this machine (see above).
  static int ForThisMachine() {
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    return std::clamp(cores / 2, 2, 16) - 1;
  }

  // A slot, given back when destroyed; empty (false) when none was free.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept : budget_(std::exchange(other.budget_, nullptr)) {}
    Slot& operator=(Slot&&) = delete;
    ~Slot() {
      if (budget_ != nullptr) budget_->free_.fetch_add(1, std::memory_order_release);
    }
    explicit operator bool() const { return budget_ != nullptr; }

   private:
    friend class InlineRunBudget;
    explicit Slot(InlineRunBudget* budget) : budget_(budget) {}
    InlineRunBudget* budget_ = nullptr;
  };

  Slot TryTake() {
    int free = free_.load(std::memory_order_relaxed);
    while (free > 0) {
      if (free_.compare_exchange_weak(free, free - 1, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        return Slot(this);
      }
    }
    return Slot();
  }

  int free_slots() const { return free_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int> free_;
};

}  // namespace engine::server
