// When a model's next finished batch should reach its completion thread, so that the thread
// can sleep until then on its own timer instead of being woken by the worker.
//
// Why: waking a sleeping thread on another core is, on a VM, an inter-processor interrupt that
// costs the waking worker 5-10 us per batch, on the pipeline's critical path (the worker's next
// ORT run waits for it). While batches flow at a steady pace, the intervals between them
// predict the next one well; a thread that wakes on its own shortly after that time finds the
// batch there and nobody paid for a wake. A batch that comes much earlier still wakes the
// thread, so a request's completion is held back at most kMaxLateNs by this, plus how late
// the timer fires (a few microseconds on an idle core, more on a busy one).
//
// Pure logic on times the caller passes (nanoseconds on one monotonic clock); not thread-safe:
// the Completer calls it under its mutex.
#pragma once

#include <cstdint>

namespace engine {

class CompletionPacer {
 public:
  // Gaps longer than this mean batches are not flowing: no prediction from them.
  static constexpr int64_t kMaxIntervalNs = 1'000'000;
  // Sleep this much past the predicted time: a batch a little late is still found.
  static constexpr int64_t kMarginNs = 2'000;
  // A batch posted while the thread sleeps with at most this left is left for the timer.
  static constexpr int64_t kMaxLateNs = 10'000;
  // Not worth a timer: the thread sleeps until woken instead.
  static constexpr int64_t kMinNapNs = 5'000;

  // A batch was posted at `now_ns`.
  void OnPost(int64_t now_ns);

  // When the completion thread, idle at `now_ns`, should wake to find the next batch, or -1
  // when there is no confident prediction (it then sleeps until a Post wakes it).
  int64_t NapUntil(int64_t now_ns) const;

  // Whether a batch posted at `now_ns`, while the thread sleeps until `until_ns`, must wake it
  // now rather than wait for the timer.
  static bool MustWake(int64_t now_ns, int64_t until_ns) {
    return until_ns - now_ns > kMaxLateNs;
  }

  int64_t interval_ns() const { return interval_ns_; }

 private:
  int64_t last_post_ns_ = -1;  // -1: none yet
  int64_t interval_ns_ = 0;    // moving average of recent intervals; 0: unknown
};

}  // namespace engine
