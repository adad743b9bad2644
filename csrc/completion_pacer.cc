#include "completion_pacer.h"

namespace engine {

void CompletionPacer::OnPost(int64_t now_ns) {
  if (last_post_ns_ >= 0) {
    const int64_t interval = now_ns - last_post_ns_;
    if (interval < 0 || interval > kMaxIntervalNs) {
      // A pause; or two workers' posts racing (each reads the time before the lock): start
      // over rather than learn a wrong pace.
      interval_ns_ = 0;
    } else if (interval_ns_ == 0) {
      interval_ns_ = interval;
    } else {
      // Weight 1/8 for the newest: follows a change of pace within a few batches without
      // jumping at one batch's jitter.
      interval_ns_ += (interval - interval_ns_) / 8;
    }
  }
  last_post_ns_ = now_ns;
}

int64_t CompletionPacer::NapUntil(int64_t now_ns) const {
  if (interval_ns_ == 0) return -1;
  const int64_t until = last_post_ns_ + interval_ns_ + kMarginNs;
  // Overdue (the pace broke) or too close to bother: sleep until woken.
  if (until - now_ns < kMinNapNs) return -1;
  return until;
}

}  // namespace engine
