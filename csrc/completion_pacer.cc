#include "completion_pacer.h"

#include <algorithm>

namespace engine {

void CompletionPacer::OnPost(int64_t now_ns, int64_t worker_ns) {
  if (last_post_ns_ >= 0) {
    const int64_t interval = now_ns - last_post_ns_;
    if (interval < 0 || interval > kMaxIntervalNs) {
      // A pause; or two workers' posts racing (each reads the time before the lock): start
      // over rather than learn a wrong pace.
      interval_ns_ = 0;
    } else if (interval_ns_ == 0) {
      interval_ns_ = interval;
      worker_ns_ = worker_ns;
    } else {
      // Weight 1/8 for the newest: follows a change of pace within a few batches without
      // jumping at one batch's jitter.
      interval_ns_ += (interval - interval_ns_) / 8;
      worker_ns_ += (worker_ns - worker_ns_) / 8;
    }
  }
  last_post_ns_ = now_ns;
}

CompletionPacer::Wait CompletionPacer::PlanWait(int64_t now_ns, int64_t min_nap_ns) const {
  Wait wait;
  // No pace, or workers idle more than half the time: nothing worth spinning for.
  if (interval_ns_ == 0 || 2 * worker_ns_ < interval_ns_) return wait;
  const int64_t due = last_post_ns_ + interval_ns_;
  const int64_t spin_until = due + std::min(interval_ns_, kMaxSpinLateNs);
  if (now_ns >= spin_until) return wait;  // overdue: the pace broke
  wait.spin_until_ns = spin_until;
  const int64_t spin_from = due - std::min(interval_ns_ / 2, kMaxSpinEarlyNs);
  if (spin_from - now_ns >= min_nap_ns) wait.nap_until_ns = spin_from;
  return wait;
}

}  // namespace engine
