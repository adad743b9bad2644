// A model's completion thread: runs the completions of finished batches (stats, sampling and
// each request's on_complete) in the order they were posted, so that the worker that ran a
// batch can start the next ORT run at once. The callbacks of a batch (encoding a response,
// submitting a follow-up request) then run on a second core beside ORT instead of before it.
//
// A lone request of an idle model does not come here: it completes on its worker, where a
// thread hop would only add a wake-up to its latency. While batches come at a steady pace,
// the thread naps on a timer until shortly before the next is due, then spins until it comes
// (CompletionPacer), rather than making each worker wake it. Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "batch_queue.h"
#include "completion_pacer.h"
#include "request.h"

namespace engine {

// A batch that ran, as its worker hands it over to be completed.
struct FinishedBatch {
  QueuedBatch batch;
  // False: each request's `result` is final (a lone request, or a batch re-run request by
  // request after a failure). True: `outputs` holds the whole batch's outputs, each with the
  // batch's rows along dim 0, still to be split into the requests' results. Splitting is left
  // to the completion so that the worker can start its next run sooner.
  bool needs_split = false;
  std::vector<HostTensor> outputs;
  RequestTimings phases;  // the batch's phases so far
  int64_t start_us = 0;   // when the batch's compute started
  int64_t ran_us = 0;     // when its run ended (needs_split only)
  int64_t rows = 0;       // the batch's rows
  // Real time its worker spent running it (steady clock, ns; 0 if not measured): set against
  // the intervals between batches, how busy the workers are (see CompletionPacer).
  int64_t worker_ns = 0;
};

class Completer {
 public:
  // Runs `complete(finished)` for each posted batch, on the completion thread.
  using Handler = std::function<void(FinishedBatch&)>;

  // `spin`: while batches come at a steady pace from busy workers, the thread naps, then
  // spins for the next one (CompletionPacer). False: it only sleeps until woken, which costs
  // the workers a wake per batch but no CPU beyond the completions. The thread keeps off
  // `avoid_cpus` (the workers' pinned CPUs) while the process may use another CPU; kept off
  // them, it naps only when the nap is long (CompletionPacer::kMinNapOffWorkersNs).
  explicit Completer(Handler complete, bool spin = true, std::vector<int> avoid_cpus = {});
  // Stop()s.
  ~Completer();
  Completer(const Completer&) = delete;
  Completer& operator=(const Completer&) = delete;

  // Queues a finished batch; never blocks on the handler. After Stop, runs it on this thread.
  void Post(FinishedBatch finished);

  // Completes everything posted so far, then ends the thread. Idempotent; must not be called
  // from the handler.
  void Stop();

  // Nothing posted is waiting or being completed: a batch completed elsewhere now cannot
  // overtake an earlier one's completion.
  bool Idle() const;

  // Batches posted; of them, those that woke the thread, those that found it napping and
  // left it to its timer, and those that found it spinning. The rest found it busy. And the
  // naps the thread took.
  struct Counts {
    int64_t posted = 0;
    int64_t woke = 0;
    int64_t left_to_timer = 0;
    int64_t found_spinning = 0;
    int64_t naps = 0;
  };
  Counts counts() const;

 private:
  void Loop();
  // Polls, without the lock, until a Post or Stop after `seen` or until `until_ns`.
  void SpinFor(uint64_t seen, int64_t until_ns) const;

  Handler complete_;
  const bool spin_;
  const std::vector<int> avoid_cpus_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<FinishedBatch> pending_;  // guarded by mutex_
  // The thread sleeps on ready_ until woken (kWaiting) or until nap_until_ns_ (kNapping), or
  // polls events_ (kSpinning).
  enum class Sleep { kAwake, kWaiting, kNapping, kSpinning };
  Sleep sleep_ = Sleep::kAwake;  // guarded by mutex_
  int64_t nap_until_ns_ = 0;     // guarded by mutex_
  CompletionPacer pacer_;        // guarded by mutex_
  Counts counts_;                // guarded by mutex_
  bool completing_ = false;      // the thread runs a handler; guarded by mutex_
  bool stopping_ = false;        // guarded by mutex_
  // Posts and Stops so far, bumped under mutex_: what a spinning thread watches.
  std::atomic<uint64_t> events_{0};
  std::thread thread_;
};

}  // namespace engine
