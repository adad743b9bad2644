// An inference request and its result, as the batcher sees them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "status.h"
#include "tensor.h"

namespace engine {

// Per-request timings, in microseconds, measured by the batcher.
struct RequestTimings {
  int64_t queue_us = 0;    // submit -> start of its batch
  int64_t compute_us = 0;  // gather + run + scatter of its batch
  int64_t total_us = 0;    // submit -> completion
  int batch_rows = 0;      // rows in the batch that ran it (0 if it never ran)
  // The phases of compute_us, in nanoseconds (Triton's compute_input / _infer / _output):
  // gather and transforms; the ORT run; scatter, drift counting and result assembly.
  int64_t input_ns = 0;
  int64_t infer_ns = 0;
  int64_t output_ns = 0;
};

struct InferResult {
  Status status;
  // In the order of InferRequest::output_names (all outputs, in model order, when that was
  // empty). Numeric outputs may be views into a batch buffer they share ownership of.
  std::vector<std::pair<std::string, HostTensor>> outputs;
  RequestTimings timings;
};

// Told once after a group of on_complete calls has run: the requests of one batch, or one
// request completed on its own (refused, expired, cancelled, run alone). A consumer whose
// on_complete only queues the result (a reactor's queue, the Python binding's completion
// queue) wakes its reader here, once per group rather than once per result: each wake of a
// sleeping reader is a futex call and, when it then preempts the completing thread, two
// context switches per result.
class CompletionNotifier {
 public:
  virtual ~CompletionNotifier() = default;
  // Runs on the thread that ran the group's callbacks, after the last of them. Must not
  // block for long; what it throws is swallowed.
  virtual void Notify() = 0;
};

struct InferRequest {
  // Inputs by name. A tensor may borrow memory: `keepalive` (or the submitter, for
  // synchronous calls) keeps it valid until on_complete has been called.
  std::vector<std::pair<std::string, HostTensor>> inputs;
  std::shared_ptr<const void> keepalive;
  std::vector<std::string> output_names;  // empty = all outputs
  int priority = 0;         // higher runs first; requests of equal priority run in order
  int64_t timeout_us = -1;  // -1 = the model's default_timeout_us; 0 = no deadline
  std::string id;           // caller's request id, echoed in errors
  // The submitter may run the request itself when nothing is queued and an instance is idle:
  // no thread hand-off, lowest latency, and Submit then blocks for the run, and for up to a
  // few batches queued meanwhile, whose callbacks then run on this thread too (Infer runs
  // only its own). For callers that wait anyway (synchronous predict, a server's handler
  // threads); never for threads that must not block.
  bool allow_inline = false;
  // Optional; Submit only. Called once on the submitting thread as soon as Submit has placed
  // the request: queued, refused, or holding an instance to run on this thread (then before
  // the run). A caller that starts other work from here (a stream's next read, whose request
  // may be submitted on another thread) knows this request is ahead of that work's requests.
  std::function<void()> on_admitted;

  // Called exactly once with the outcome: from a batcher thread after a run, or from the
  // submitting thread when the request is refused at once. Must not block for long; it may
  // Submit or Cancel on the model, never Close. Exceptions it throws are swallowed.
  std::function<void(InferResult&&)> on_complete;
  // Optional. Requests of one batch that share a notifier get one Notify after the batch's
  // callbacks; every on_complete of a request that has one is followed by a Notify.
  std::shared_ptr<CompletionNotifier> notifier;
};

}  // namespace engine
