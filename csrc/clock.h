// Time, injected: the batcher asks a Clock, so tests can drive time by hand.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace engine {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic microseconds since an arbitrary epoch.
  virtual int64_t NowUs() const = 0;
};

class SteadyClock final : public Clock {
 public:
  int64_t NowUs() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  static const SteadyClock& Instance() {
    static const SteadyClock clock;
    return clock;
  }
};

// A clock that moves only when told. Thread-safe: tests advance it while workers read it.
class FakeClock final : public Clock {
 public:
  int64_t NowUs() const override { return now_us_.load(std::memory_order_acquire); }
  void AdvanceUs(int64_t delta_us) { now_us_.fetch_add(delta_us, std::memory_order_acq_rel); }
  void SetUs(int64_t now_us) { now_us_.store(now_us, std::memory_order_release); }

 private:
  std::atomic<int64_t> now_us_{1'000'000};
};

}  // namespace engine
