// A loaded model: per-model state (signature, options, queue, stats) plus its instances
// (ORT sessions and one worker thread each). Requests go through the dynamic batcher:
//
//   Submit ─▶ validate ─▶ BatchQueue ─▶ worker: TakeBatch ─▶ Gather ─▶ Session::Run
//                                      ─▶ Completer: SliceRows ─▶ on_complete each
//                                                    ─▶ Notify each distinct notifier once
//
// Workers pull batches themselves (no separate scheduler thread). A multi-request batch, or
// any batch while more work is queued, is split and completed on the completion thread while
// its worker runs the next batch; a lone request of an otherwise idle model completes on its
// worker (no extra hop for the latency of an idle model). An inline-allowed request that finds
// the queue empty and an instance idle runs on the submitter's thread (no hand-off); Submit
// then also runs a few batches queued meanwhile there, so that under load a server's own
// threads do the work without waking a worker per batch. A batch that ORT fails on is re-run
// request by request so that one poison request fails alone. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "batch_queue.h"
#include "clock.h"
#include "completer.h"
#include "drift.h"
#include "output_buffers.h"
#include "request.h"
#include "request_pool.h"
#include "sampler.h"
#include "session.h"
#include "stats.h"
#include "transforms.h"

namespace engine {

// Splits a batch's compute time into its phases (RequestTimings' *_ns). On the steady clock
// in nanoseconds, not the injected microsecond clock: a gather of a few rows takes well
// under a microsecond, and these durations are observed, never acted on.
class PhaseTimer {
 public:
  PhaseTimer() : last_ns_(Now()) {}
  // Adds the time since the previous mark (or construction) to *phase_ns.
  void Mark(int64_t* phase_ns) {
    const int64_t now = Now();
    *phase_ns += now - last_ns_;
    last_ns_ = now;
  }

 private:
  static int64_t Now() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  int64_t last_ns_;
};

enum class InstanceMode {
  kSessions,  // one ORT session per instance
  kShared,    // one session; `instances` runs on it at once
};

struct ModelOptions {
  // For messages and logs only ("model 'NAME' is closed"); empty: the messages name no model.
  std::string name;
  SessionOptions session;
  int instances = 1;  // runs that may execute at once, >= 1
  InstanceMode instance_mode = InstanceMode::kSessions;
  // -1: batching on when every input and output has a dynamic first dimension; 0 off; 1 on.
  int batching = -1;
  BatchingPolicy batching_policy;
  int64_t default_timeout_us = 0;  // 0 = no deadline unless a request sets one
  // Optional feature transforms, applied to each gathered batch before ORT. The model then
  // takes the plan's raw columns (each [rows], of the plan's declared type) instead of
  // `transform_target` (a float32 [rows, width] input; empty = the model's only input).
  std::shared_ptr<const TransformPlan> transforms;
  std::string transform_target;
  // Batching off: the most rows one request may have along a dynamic first dimension
  // (Triton's max_batch_size without dynamic batching); 0 = any. Batching on: max_batch_rows.
  int64_t max_request_rows = 0;
  // A config's declared input shapes (full, batch dim included): each dynamic (-1) dim of the
  // model that the config fixes is checked on every request. Not for models with transforms.
  std::map<std::string, std::vector<int64_t>> declared_input_shapes;
  // Whether the completion thread may spin-wait for the next batch while the workers are busy
  // (Completer): up to 150 us of CPU per batch, for fewer wakes of a sleeping core.
  bool completion_spin = true;
  // Worker i runs only on CPU worker_cpus[i % size] (affinity.h); empty: wherever the system
  // schedules it. Each must be a CPU this process may run on (kInvalidConfig otherwise).
  // Runs on a caller's thread (inline) are not moved. The model's completion and expiry
  // threads keep off these CPUs, unless they are all the process may use.
  std::vector<int> worker_cpus;
};

class Model {
 public:
  // Loads the sessions and starts the workers. Blocks while ORT builds the sessions.
  // Throws CoreError: kLoadFailed, kUnsupported, kInvalidConfig (bad options, or batching
  // forced on for a model without a dynamic first dimension).
  static std::shared_ptr<Model> LoadFromPath(const std::string& path, ModelOptions options,
                                             const Clock& clock = SteadyClock::Instance());
  static std::shared_ptr<Model> LoadFromBytes(const std::string& bytes, ModelOptions options,
                                              const Clock& clock = SteadyClock::Instance());
  // Closes with drain (see Close).
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // What callers send: the model's inputs, or with transforms the raw columns followed by the
  // model's other inputs.
  const std::vector<TensorInfo>& inputs() const { return inputs_; }
  const std::vector<TensorInfo>& outputs() const { return primary().outputs(); }
  const std::vector<std::string>& providers() const { return primary().providers(); }
  const ModelOptions& options() const { return options_; }
  bool batching_enabled() const { return options_.batching_policy.enabled; }

  // Throws CoreError(kInvalidInput) unless input `name` exists and takes tensors of `type`:
  // its declared type or, for a raw numeric column of a model with transforms, any integer or
  // float type (Submit converts it to the declared type, or refuses a value that would change:
  // exact_convert.h). kUndefined checks the name only. The check Submit makes, for callers that
  // want it before decoding a request's contents (the gRPC server). Does not block.
  void CheckInputType(std::string_view name, ElementType type) const;
  // Whether input `name` is a raw numeric column of the transforms, whose type CheckInputType
  // relaxes (any integer or float type); false for other inputs and unknown names.
  bool TakesAnyNumericType(std::string_view name) const;

  // Validates `request` and queues it; never blocks on the model's work. Returns the
  // request's sequence number (> 0) for Cancel. When the request is refused at once, its
  // on_complete runs on this thread before Submit returns, and Submit returns 0:
  //   kInvalidInput (never retry), kOverloaded (queue full; retry later),
  //   kUnavailable (model closed; retry elsewhere).
  uint64_t Submit(std::unique_ptr<InferRequest> request);

  // Synchronous Submit for callers that wait anyway (Python's predict): the same validation,
  // outcomes and stats, and the result is returned instead of passed to on_complete (which
  // Infer sets itself). With allow_inline and an idle instance it runs on this thread with
  // no hand-off and no callback; otherwise it queues and blocks until a worker is done.
  // While it waits for a queued request, `give_up` (if given) is asked every kGiveUpPoll;
  // once it says true (a Ctrl-C), a request still queued is cancelled (kCancelled, never
  // run); one already running is waited for.
  InferResult Infer(std::unique_ptr<InferRequest> request,
                    const std::function<bool()>& give_up = nullptr);
  static constexpr std::chrono::milliseconds kGiveUpPoll{50};

  // Cancels a queued request: it is completed with kCancelled, never runs, and true is
  // returned. False when it already started or finished (or never existed).
  bool Cancel(uint64_t seq);

  // Stops taking requests (later Submits get kUnavailable). With drain, queued requests still
  // run; without, each fails with kUnavailable, also when a drain is under way (a Close(true)
  // on another thread, or BeginClose): a drain is cut short this way. Blocks until running
  // batches finish and the workers exit; every request is completed exactly once. Idempotent.
  // Must not be called from an on_complete callback (Submit and Cancel may be).
  void Close(bool drain);

  // A drain bounded in time (a server's grace period): BeginClose stops taking requests as
  // Close does and returns at once, while queued requests still run; WaitDrained waits until
  // nothing is queued or running, or until `deadline`, and says whether it drained (the
  // completions of the last batches may still be under way); then Close(false) fails what is
  // still queued, completes the rest and joins.
  void BeginClose();
  bool WaitDrained(std::chrono::steady_clock::time_point deadline);

  // Runs `inputs` once on each idle instance (every instance of a model not yet serving), so
  // that no client pays for ORT's lazy initialisation of a session. Counts nothing (stats,
  // drift, samples) and calls no callback. Blocks; throws CoreError as a request would fail
  // (kInvalidInput, kExecutionFailed), or kUnavailable once closed.
  void WarmUp(const std::vector<std::pair<std::string, HostTensor>>& inputs);

  // Runs `inputs` `runs` times on one idle instance, back to back, and returns the wall time
  // of each run in nanoseconds: transforms and ORT, as a batch of those rows takes them (not
  // the gather of requests or the split of outputs). For tuning batch sizes (engine tune).
  // Counts nothing and calls no callback. Blocks; throws as WarmUp does, kInvalidConfig for
  // runs outside [1, kMaxTimedRuns], and kUnavailable when every instance is busy (a serving
  // model: the times would mix with its traffic). The inputs are checked as a request's are
  // (kInvalidInput), row limits included.
  std::vector<int64_t> TimeRuns(const std::vector<std::pair<std::string, HostTensor>>& inputs,
                                int runs);
  static constexpr int kMaxTimedRuns = 1'000'000;

  StatsSnapshot Stats() const;
  // How batches reached the completion thread (all zero without batching): for benchmarks.
  Completer::Counts CompletionCounts() const;
  // Output buffers kept for the next batches (OutputBufferPool): for tests.
  size_t OutputBuffersKept() const { return output_buffers_->kept(); }
  // Counts a request that a front end refused before submitting it (an input that does not
  // convert to a tensor, a field it cannot decode, a deadline already passed), so that the
  // outcomes still add up to the requests made: kDeadlineExceeded counts as expired, any
  // other code as invalid (its content was refused).
  void CountRefusedBeforeSubmit(StatusCode code) {
    stats_.CountRequest(code == StatusCode::kDeadlineExceeded ? Outcome::kExpired
                                                              : Outcome::kInvalid);
  }

  // Replaces the drift features counted on every batch (empty: off). Throws
  // CoreError(kInvalidConfig) naming a bad feature; the old counters stay then.
  void SetDriftFeatures(std::vector<DriftFeature> features);
  // (feature name, cumulative slot counts) since the last SetDriftFeatures.
  std::vector<std::pair<std::string, std::vector<int64_t>>> DriftCounts() const;

  // The prediction-log sampler (off until configured).
  Sampler& sampler() { return sampler_; }

 private:
  Model(std::vector<std::unique_ptr<Session>> sessions, ModelOptions options, const Clock& clock);
  static std::shared_ptr<Model> Start(std::vector<std::unique_ptr<Session>> sessions,
                                      ModelOptions options, const Clock& clock);
  const Session& primary() const { return *sessions_.front(); }
  // Sets inputs_ (and the transform mapping); throws kInvalidConfig for a bad target.
  void ConfigureInputs();
  // Fixes the dynamic dims of inputs_ that options_.declared_input_shapes fixes.
  void NarrowToDeclaredShapes();
  // kInvalidInput unless every string of the transforms' string columns is UTF-8.
  void CheckTransformStrings(const std::vector<const HostTensor*>& bound) const;
  // Whether `spec` (an element of inputs_) is a raw numeric column of the transforms: the
  // only inputs whose type CheckInputType and ConvertRawColumns relax.
  bool IsConvertibleColumn(const TensorInfo& spec) const;
  // Replaces each raw numeric column of `request` sent in another numeric type by its exact
  // conversion to the declared type (an owned tensor); kInvalidInput, naming the column, for a
  // value that would change, a type that is not numeric, or a shape its bytes do not fill.
  void ConvertRawColumns(InferRequest& request) const;
  // `index` numbers the worker among the model's workers (for worker_cpus).
  void WorkerLoop(int index);
  // A worker with nothing to run (an empty queue, or a batch still filling up to its
  // preferred size) keeps its core before it sleeps: until kIdleSpinUs pass with no request
  // queued, and never past `max_us` (its own wake-up time). True, early, once a request that
  // may change its decision is queued (BatchQueue::WorthWaking). A request that arrives
  // meanwhile (a closed loop's next one, a burst's stragglers, the rows that fill the batch)
  // is then taken without the submitter's futex wake and the worker's wake-up, each several
  // microseconds on a virtual machine; and a core that stays busy keeps the model in its
  // caches: on this project's VM an ORT run after its core idled took 71 us against 62 us
  // after none (30-row batches of the benchmark's MLP). Costs at most kIdleSpinUs of CPU
  // after the last request queued, then the worker sleeps.
  bool SpinWhileIdle(int64_t max_us);
  static constexpr int64_t kIdleSpinUs = 30;
  // Fails queued requests whose deadline passes while every instance is busy (idle workers
  // expire them too, but a worker inside a long run cannot), so that the error arrives at
  // the deadline rather than when a run ends. Sleeps until the earliest deadline it is armed
  // for.
  void ExpiryLoop();
  // Under mutex_: when every instance is busy and a queued deadline comes before the one the
  // expiry thread sleeps until, moves its wake-up there and returns true (the caller then
  // notifies expiry_ready_ after unlocking). Idle instances need no timer: their workers
  // expire requests themselves.
  bool ArmExpiryLocked();
  // Validates `request` into `queued` (bound inputs, outputs, rows, times, seq; takes the
  // request). On a validation error completes the request as invalid and returns false.
  bool Prepare(std::unique_ptr<InferRequest>& request, QueuedRequest& queued);
  // The rows of a request with these bound inputs; kInvalidInput when its inputs disagree on
  // them (batching) or they exceed max_batch_size (max_request_rows without batching).
  int64_t CheckRows(const std::vector<const HostTensor*>& bound) const;
  bool InlineAllowed(const InferRequest& request) const;
  // An idle instance for a request that may run on the submitter's thread: only when the
  // model is open and nothing is queued (queued work goes first). -1 when there is none.
  int TakeInstanceForInline();
  // Runs a prepared request on `instance` (taken by TakeInstanceForInline), releases the
  // instance and records the outcome; the caller delivers the result.
  InferResult RunInline(int instance, QueuedRequest& queued);
  // After an inline run, on the same thread: runs what was queued meanwhile, up to
  // kMaxQueuedInlineRuns batches, completing each here; then releases `instance`.
  void RunQueuedInline(int instance);
  // Bounds the batches a submitter's thread runs for others, so that a thread the caller
  // lent (a gRPC thread) returns to its own work; the workers take over after that.
  static constexpr int kMaxQueuedInlineRuns = 4;
  // Queues a prepared request; false when it was refused (closed, queue full) and completed.
  bool Enqueue(std::unique_ptr<QueuedRequest> queued);
  // Runs `batch` on instance `instance` (an index into instance_sessions_): gather and run,
  // with poison isolation. Completes nothing; a batch that ran as one comes back unsplit.
  FinishedBatch Execute(int instance, QueuedBatch batch);
  // Splits an unsplit batch's outputs into one result per request, and counts the batch.
  void SplitOutputs(FinishedBatch& finished);
  // One request on its own buffers: no gather, no scatter.
  InferResult ExecuteOne(int instance, QueuedRequest& r);
  // How RunOnInstance runs.
  struct RunSpec {
    bool count_drift = true;  // false: a warm-up, which is not traffic
    // A batch's run: ORT does not log its failure, since the batch's requests then run one
    // by one, and the one that fails is logged there.
    bool quiet = false;
    // Buffers that ORT writes the outputs into (Session::RunInto), or null: ORT allocates.
    std::vector<HostTensor>* into = nullptr;
  };
  // Transforms (if any), the ORT run and drift counting for one batch of public inputs.
  std::vector<HostTensor> RunOnInstance(int instance,
                                        const std::vector<const HostTensor*>& public_inputs,
                                        const std::vector<size_t>& output_indices,
                                        PhaseTimer& timer, RequestTimings* phases,
                                        const RunSpec& spec);
  // A batch's run: into buffers from output_buffers_ when every selected output's shape is
  // known, else as ORT allocates. A run into buffers that fails is tried once more without
  // them, which tells a model that breaks its declared shapes from a bad request.
  std::vector<HostTensor> RunBatch(int instance, const std::vector<const HostTensor*>& inputs,
                                   const std::vector<size_t>& output_indices, int64_t rows,
                                   PhaseTimer& timer, RequestTimings* phases);
  // Buffers for the selected outputs of a batch of `rows` rows, or false when one of them
  // cannot be allocated before the run.
  bool TakeOutputBuffers(const std::vector<size_t>& output_indices, int64_t rows,
                         std::vector<HostTensor>* buffers);
  // Timings of request `r` in a batch of `batch_rows` whose compute started at start_us and
  // took compute_us; the request's result was ready at done_us.
  static void SetTimings(const QueuedRequest& r, int64_t start_us, int64_t compute_us,
                         int64_t done_us, int64_t batch_rows, const RequestTimings& phases,
                         InferResult* result);
  // Counts a finished request's outcome (stats, sampling, in-flight).
  void Record(const QueuedRequest& r, const InferResult& result);
  // Splits (if needed), records and delivers results (on_complete), notifies, and hands the
  // spent requests to request_pool_ (`finished.batch` is left empty).
  void Complete(FinishedBatch& finished);
  void ReleaseInstance(int instance);
  // Logs, once per model, that an output of a batched run did not have the batch's rows
  // along dim 0: the model cannot be batched, and each batch is re-run request by request.
  void WarnOutputsDoNotFollowTheBatch(const HostTensor& output,
                                      const std::vector<size_t>& output_indices,
                                      size_t position, int64_t batch_rows);
  bool HasQueuedWork();
  // "model 'NAME'" for messages, or "model" when it has no name.
  std::string Named() const;
  void MaybeSample(const QueuedRequest& r, const InferResult& result);
  // Completes a request that never ran (refused, expired, cancelled, closed).
  void Refuse(std::unique_ptr<QueuedRequest> r, StatusCode code, const std::string& message,
              Outcome outcome);
  void Refuse(std::unique_ptr<InferRequest> r, StatusCode code, const std::string& message,
              Outcome outcome);
  // Completes requests whose deadline passed while they were queued (never run).
  void RefuseExpired(QueuedBatch& expired);
  // Into `key`, whose capacity is reused.
  static void BatchKey(const std::vector<const HostTensor*>& inputs,
                       const std::vector<size_t>& output_indices, std::vector<int64_t>* key);

  // Model-order inputs for one batch: the public inputs, with the transform applied.
  std::vector<HostTensor> ModelInputs(const std::vector<const HostTensor*>& gathered) const;

  std::vector<std::unique_ptr<Session>> sessions_;
  ModelOptions options_;
  std::vector<TensorInfo> inputs_;
  // With transforms: the target's position among the model's inputs, and for every other
  // model input its position among inputs_.
  size_t transform_target_index_ = 0;
  std::vector<size_t> public_index_of_model_input_;
  const Clock& clock_;
  ModelStats stats_;
  // Where completed requests go for the next submits (declared before the threads that use it).
  RequestPool request_pool_;
  std::atomic<uint64_t> next_seq_{1};
  // What an idle worker watches while it spins (SpinWhileIdle): requests queued so far that
  // may change its decision (BatchQueue::WorthWaking), on which it looks at the queue again;
  // and all requests queued so far, each of which extends its spin. Not a look per request:
  // a worker that took the lock after each row of a filling batch made the submitter,
  // blocked on that lock, sleep and be woken once per row.
  std::atomic<uint64_t> enqueued_{0};
  std::atomic<uint64_t> worth_looking_{0};

  std::mutex mutex_;
  std::condition_variable work_ready_;
  BatchQueue queue_;       // guarded by mutex_
  // Session of each instance; in shared mode the one session appears N times.
  std::vector<const Session*> instance_sessions_;
  // Indices of instances not running a batch now.
  std::vector<int> idle_instances_;  // guarded by mutex_
  // [instance][input]: reused gather buffers; an instance runs one batch at a time.
  std::vector<std::vector<std::vector<uint8_t>>> gather_scratch_;
  // Where batched runs write their outputs (OutputBufferPool), for outputs whose shape is
  // known before the run: per output, the bytes of one row when its first dim is dynamic and
  // the others static and numeric, else 0 (ORT allocates it).
  std::shared_ptr<OutputBufferPool> output_buffers_ = OutputBufferPool::Create();
  std::vector<size_t> output_row_bytes_;
  // Cleared when a batch's run into such buffers failed and the same batch then ran without
  // them: the model's outputs are not the shape it declares.
  std::atomic<bool> preallocate_outputs_{true};
  // Read once per batch with std::atomic_load; replaced whole by SetDriftFeatures.
  std::shared_ptr<DriftCounters> drift_;
  Sampler sampler_;
  bool closed_ = false;    // guarded by mutex_
  std::vector<std::thread> workers_;
  // Signalled when an instance is released after Close, for Close to wait on inline runs.
  std::condition_variable instance_released_;
  std::condition_variable expiry_ready_;
  int64_t expiry_wake_us_ = BatchQueue::kNever;  // guarded by mutex_
  bool expiry_stop_ = false;                     // guarded by mutex_
  std::thread expiry_thread_;
  // Completes batches off the workers while they run the next (batching models only).
  std::unique_ptr<Completer> completer_;
  std::once_flag join_once_;
  std::once_flag unbatchable_warned_;  // WarnOutputsDoNotFollowTheBatch said it
};

}  // namespace engine
