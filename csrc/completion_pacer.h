// When a model's next finished batch should reach its completion thread, so that the thread
// can wait for it on its own instead of being woken by the worker.
//
// Why: waking a sleeping thread on another core is, on a VM, an inter-processor interrupt that
// costs the waking worker 5-10 us per batch, on the pipeline's critical path (the worker's next
// ORT run waits for it); on a busy host, a vCPU that halted can take far longer to run again.
// While batches flow at a steady pace, the intervals between them predict the next one. The
// thread naps on a timer until shortly before that time, then spins until a little after it:
// it keeps its core, polling and yielding it to any other thread ready to run there. A batch
// posted in that window is taken without any wake, and the nap leaves the core to whoever the
// last completions woke (a reactor, Python) while they run.
// A batch that comes before the window still wakes the thread when the nap has more than
// kMaxLateNs left, so a completion is held back at most that much plus the timer's lateness.
// Only while the workers are busy at least half the time: then the wake is on the critical
// path of the next run. With more slack than that, the CPU a spin burns buys little, and the
// thread sleeps until woken.
// A thread kept off the workers' CPUs naps only when the nap is long (kMinNapOffWorkersNs):
// its spin cannot take a worker's CPU there, and a short nap leaves its CPU idle, which a VM
// then halts; the timer that ends the nap must wait for the host to run that CPU again, and
// the batch it was due to take waits with it. In batcher_bench (worker pinned, 66-us
// batches, 60 alternating rounds, twice) the worker reached 0.897 of raw ORT spinning through
// against 0.875 napping, better in 44 of 60 rounds both times.
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
  // The spin window around the predicted time: from half an interval before it, up to
  // kMaxSpinEarlyNs, until one interval after it, up to kMaxSpinLateNs. At most their sum of
  // CPU per batch, and only while batches come less than kMaxIntervalNs apart.
  static constexpr int64_t kMaxSpinEarlyNs = 50'000;
  static constexpr int64_t kMaxSpinLateNs = 100'000;
  // A batch posted while the thread naps with at most this left is left for the timer.
  static constexpr int64_t kMaxLateNs = 10'000;
  // Not worth a timer: the thread spins from now instead.
  static constexpr int64_t kMinNapNs = 5'000;
  // The same for a thread that keeps off the workers' CPUs (see above): below this, it spins.
  static constexpr int64_t kMinNapOffWorkersNs = 100'000;

  // A batch was posted at `now_ns`, after its worker ran it for `worker_ns` (0 when not
  // measured: counted as a worker with no work, so never a reason to spin).
  void OnPost(int64_t now_ns, int64_t worker_ns);

  // How the completion thread, idle at `now_ns`, waits for the next batch: nap until
  // `nap_until_ns` (-1: no nap; never one shorter than `min_nap_ns`), then spin until
  // `spin_until_ns`; after that, or when both are -1 (no confident prediction, workers with
  // much slack, or the batch is long overdue), it sleeps until a Post wakes it.
  struct Wait {
    int64_t nap_until_ns = -1;
    int64_t spin_until_ns = -1;
  };
  Wait PlanWait(int64_t now_ns, int64_t min_nap_ns = kMinNapNs) const;

  // Whether a batch posted at `now_ns`, while the thread naps until `until_ns`, must wake it
  // now rather than wait for the timer.
  static bool MustWake(int64_t now_ns, int64_t until_ns) {
    return until_ns - now_ns > kMaxLateNs;
  }

  int64_t interval_ns() const { return interval_ns_; }
  int64_t worker_ns() const { return worker_ns_; }

 private:
  int64_t last_post_ns_ = -1;  // -1: none yet
  int64_t interval_ns_ = 0;    // moving average of recent intervals; 0: unknown
  int64_t worker_ns_ = 0;      // moving average of the workers' time per batch
};

}  // namespace engine
