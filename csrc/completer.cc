#include "completer.h"

#include <chrono>
#include <utility>

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

Completer::Completer(Handler complete)
    : complete_(std::move(complete)), thread_([this] { Loop(); }) {}

Completer::~Completer() { Stop(); }

void Completer::Post(FinishedBatch finished) {
  const int64_t now = NowNs();
  bool posted = false;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_) {
      pending_.push_back(std::move(finished));
      posted = true;
      pacer_.OnPost(now);
      ++counts_.posted;
      // Signal only a thread that would otherwise sleep on: a busy one takes the batch on its
      // next pass, a napping one when its timer fires (soon enough, or it is woken now).
      wake = sleep_ == Sleep::kWaiting ||
             (sleep_ == Sleep::kNapping && CompletionPacer::MustWake(now, nap_until_ns_));
      if (wake) {
        sleep_ = Sleep::kAwake;
        ++counts_.woke;
      } else if (sleep_ == Sleep::kNapping) {
        ++counts_.left_to_timer;
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

void Completer::Loop() {
#ifdef __linux__
  // This thread's timers fire within 1 us of their time instead of Linux's default 50 us: its
  // naps are tens of microseconds long.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
#endif
  bool napped = false;  // napped since the last batch and found nothing: sleep until woken
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    if (pending_.empty()) {
      if (stopping_) return;
      const int64_t until = napped ? -1 : pacer_.NapUntil(NowNs());
      if (until >= 0) {
        sleep_ = Sleep::kNapping;
        nap_until_ns_ = until;
        // A batch posted meanwhile waits for the timer unless Post wakes the thread.
        ready_.wait_until(lock, AtNs(until),
                          [this] { return sleep_ != Sleep::kNapping || stopping_; });
        napped = true;
      } else {
        sleep_ = Sleep::kWaiting;
        ready_.wait(lock, [this] { return !pending_.empty() || stopping_; });
      }
      sleep_ = Sleep::kAwake;
      continue;
    }
    napped = false;
    FinishedBatch finished = std::move(pending_.front());
    pending_.pop_front();
    completing_ = true;
    lock.unlock();
    complete_(finished);
    lock.lock();
    completing_ = false;
  }
}

}  // namespace engine
