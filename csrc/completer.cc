#include "completer.h"

#include <chrono>
#include <thread>
#include <utility>

#include "affinity.h"

#ifdef __linux__
#include <sys/prctl.h>
#endif

namespace engine {

namespace {

using Steady = std::chrono::steady_clock;

// Real time, not a model's injected clock: this paces a thread's sleep.
int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Steady::now().time_since_epoch())
      .count();
}

Steady::time_point AtNs(int64_t ns) {
  return Steady::time_point(std::chrono::duration_cast<Steady::duration>(
      std::chrono::nanoseconds(ns)));
}

}  // namespace

Completer::Completer(Handler complete, bool spin, std::vector<int> avoid_cpus)
    : complete_(std::move(complete)),
      spin_(spin),
      avoid_cpus_(std::move(avoid_cpus)),
      thread_([this] { Loop(); }) {}

Completer::~Completer() { Stop(); }

void Completer::Post(FinishedBatch finished) {
  const int64_t now = NowNs();
  bool posted = false;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_) {
      pacer_.OnPost(now, finished.worker_ns);
      pending_.push_back(std::move(finished));
      posted = true;
      events_.fetch_add(1, std::memory_order_release);
      ++counts_.posted;
      // Signal only a thread that would otherwise sleep on: a busy or spinning one takes the
      // batch on its next pass, a napping one when its timer fires (soon enough, or it is
      // woken now).
      wake = sleep_ == Sleep::kWaiting ||
             (sleep_ == Sleep::kNapping && CompletionPacer::MustWake(now, nap_until_ns_));
      if (wake) {
        sleep_ = Sleep::kAwake;
        ++counts_.woke;
      } else if (sleep_ == Sleep::kNapping) {
        ++counts_.left_to_timer;
      } else if (sleep_ == Sleep::kSpinning) {
        ++counts_.found_spinning;
      }
    }
  }
  if (wake) ready_.notify_one();
  if (!posted) complete_(finished);  // stopped: complete here
}

void Completer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    events_.fetch_add(1, std::memory_order_release);
  }
  ready_.notify_one();
  if (thread_.joinable()) thread_.join();
}

bool Completer::Idle() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pending_.empty() && !completing_;
}

Completer::Counts Completer::counts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return counts_;
}

void Completer::SpinFor(uint64_t seen, int64_t until_ns) const {
  // Yields rather than pauses: a thread the last completions woke (a reactor, the Python
  // drain thread) that was queued on this core runs at once instead of waiting out the spin
  // or moving to the worker's core. With nothing else to run, the yield returns at once.
  while (events_.load(std::memory_order_acquire) == seen && NowNs() < until_ns) {
    std::this_thread::yield();
  }
}

void Completer::Loop() {
  NameThisThread("engine-complete");
  const int64_t min_nap_ns = KeepThisThreadOff(avoid_cpus_)
                                 ? CompletionPacer::kMinNapOffWorkersNs
                                 : CompletionPacer::kMinNapNs;
#ifdef __linux__
  // This thread's timers fire within 1 us of their time instead of Linux's default 50 us: its
  // naps are tens of microseconds long.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
#endif
  bool waited = false;  // napped and spun since the last batch, and found nothing
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    if (!pending_.empty()) {
      waited = false;
      FinishedBatch finished = std::move(pending_.front());
      pending_.pop_front();
      completing_ = true;
      lock.unlock();
      complete_(finished);
      lock.lock();
      completing_ = false;
      continue;
    }
    if (stopping_) return;
    const CompletionPacer::Wait plan =
        waited || !spin_ ? CompletionPacer::Wait{} : pacer_.PlanWait(NowNs(), min_nap_ns);
    if (plan.spin_until_ns < 0) {
      // No batch expected soon: sleep until a Post wakes the thread.
      sleep_ = Sleep::kWaiting;
      ready_.wait(lock, [this] { return !pending_.empty() || stopping_; });
      sleep_ = Sleep::kAwake;
      continue;
    }
    waited = true;
    if (plan.nap_until_ns >= 0) {
      sleep_ = Sleep::kNapping;
      nap_until_ns_ = plan.nap_until_ns;
      ++counts_.naps;
      // A batch posted meanwhile waits for the timer unless Post wakes the thread.
      ready_.wait_until(lock, AtNs(plan.nap_until_ns),
                        [this] { return sleep_ != Sleep::kNapping || stopping_; });
      if (!pending_.empty() || stopping_) {
        sleep_ = Sleep::kAwake;
        continue;
      }
    }
    sleep_ = Sleep::kSpinning;
    const uint64_t seen = events_.load(std::memory_order_acquire);
    lock.unlock();
    SpinFor(seen, plan.spin_until_ns);
    lock.lock();
    sleep_ = Sleep::kAwake;
  }
}

}  // namespace engine
