#include "model.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "affinity.h"
#include "batch_io.h"
#include "exact_convert.h"
#include "log.h"
#include "utf8.h"
#include "validate.h"

namespace engine {
namespace {

bool HasDynamicBatchDim(const std::vector<TensorInfo>& tensors) {
  for (const auto& t : tensors) {
    if (t.shape.empty() || t.shape[0] != -1) return false;
  }
  return true;
}

// Runs the callback alone, without the notifier: for a group that notifies once at its end.
void Deliver(InferRequest& request, InferResult&& result) {
  if (!request.on_complete) return;
  try {
    request.on_complete(std::move(result));
  } catch (...) {
    // A callback's failure is its own; the worker must survive it.
  }
}

void SafeNotify(CompletionNotifier& notifier) {
  try {
    notifier.Notify();
  } catch (...) {
    // As for callbacks: the notifier's failure must not take the worker down.
  }
}

// A request's optional on_admitted hook; like a callback, its failure is its own.
void SafeCall(const std::function<void()>& hook) {
  if (!hook) return;
  try {
    hook();
  } catch (...) {
  }
}

// A group of one: the callback, then its notifier.
void SafeComplete(InferRequest& request, InferResult&& result) {
  Deliver(request, std::move(result));
  if (request.notifier) SafeNotify(*request.notifier);
}

void CheckOptions(const ModelOptions& o) {
  auto bad = [](const std::string& message) {
    throw CoreError(StatusCode::kInvalidConfig, message);
  };
  if (o.instances < 1) bad("instances must be >= 1; was " + std::to_string(o.instances));
  const auto& p = o.batching_policy;
  if (p.max_batch_rows < 1) {
    bad("max_batch_size must be >= 1; was " + std::to_string(p.max_batch_rows));
  }
  for (int size : p.preferred_batch_rows) {
    if (size < 1 || size > p.max_batch_rows) {
      bad("preferred batch size " + std::to_string(size) + " is outside [1, max_batch_size=" +
          std::to_string(p.max_batch_rows) + "]");
    }
  }
  if (p.max_queue_delay_us < 0) {
    bad("max_queue_delay_us must be >= 0; was " + std::to_string(p.max_queue_delay_us));
  }
  if (p.max_queue_size < 1) bad("max_queue_size must be >= 1; was 0");
  if (o.default_timeout_us < 0) {
    bad("default_timeout_us must be >= 0; was " + std::to_string(o.default_timeout_us));
  }
  CheckCpus(o.worker_cpus);
}

template <typename Loader>
std::vector<std::unique_ptr<Session>> LoadSessions(const ModelOptions& options, Loader load) {
  CheckOptions(options);
  const int count = options.instance_mode == InstanceMode::kSessions ? options.instances : 1;
  std::vector<std::unique_ptr<Session>> sessions;
  for (int i = 0; i < count; ++i) sessions.push_back(load());
  return sessions;
}

}  // namespace

std::shared_ptr<Model> Model::LoadFromPath(const std::string& path, ModelOptions options,
                                           const Clock& clock) {
  auto sessions = LoadSessions(options, [&] { return Session::FromPath(path, options.session); });
  return Start(std::move(sessions), std::move(options), clock);
}

std::shared_ptr<Model> Model::LoadFromBytes(const std::string& bytes, ModelOptions options,
                                            const Clock& clock) {
  auto sessions =
      LoadSessions(options, [&] { return Session::FromBytes(bytes, options.session); });
  return Start(std::move(sessions), std::move(options), clock);
}

std::shared_ptr<Model> Model::Start(std::vector<std::unique_ptr<Session>> sessions,
                                    ModelOptions options, const Clock& clock) {
  const Session& first = *sessions.front();
  const bool batchable = HasDynamicBatchDim(first.inputs()) && HasDynamicBatchDim(first.outputs());
  if (options.batching == 1 && !batchable) {
    throw CoreError(StatusCode::kInvalidConfig,
                    "batching was requested but not every input and output has a dynamic first "
                    "dimension; set batching off for this model");
  }
  options.batching_policy.enabled = options.batching == 1 || (options.batching == -1 && batchable);
  std::shared_ptr<Model> model(new Model(std::move(sessions), std::move(options), clock));
  model->ConfigureInputs();
  const int instances = model->options_.instances;
  model->gather_scratch_.resize(static_cast<size_t>(instances));
  for (auto& scratch : model->gather_scratch_) scratch.resize(model->inputs_.size());
  for (const TensorInfo& output : model->outputs()) {
    size_t row_bytes = 0;
    const bool follows_the_batch = !output.shape.empty() && output.shape[0] == -1;
    if (follows_the_batch && output.type != ElementType::kString) {
      row_bytes = ElementSize(output.type);
      for (size_t d = 1; d < output.shape.size(); ++d) {
        // Unknown until the run, or empty (a run into a 0-byte buffer gains nothing).
        if (output.shape[d] <= 0) row_bytes = 0;
        row_bytes *= static_cast<size_t>(std::max<int64_t>(output.shape[d], 0));
      }
    }
    model->output_row_bytes_.push_back(row_bytes);
  }
  for (int i = 0; i < instances; ++i) {
    model->instance_sessions_.push_back(
        model->sessions_[static_cast<size_t>(i) % model->sessions_.size()].get());
    model->idle_instances_.push_back(i);
  }
  if (model->batching_enabled()) {
    model->completer_ = std::make_unique<Completer>(
        [m = model.get()](FinishedBatch& finished) { m->Complete(finished); },
        model->options_.completion_spin, model->options_.worker_cpus);
  }
  for (int i = 0; i < instances; ++i) {
    model->workers_.emplace_back([m = model.get(), i] { m->WorkerLoop(i); });
  }
  model->expiry_thread_ = std::thread([m = model.get()] { m->ExpiryLoop(); });
  return model;
}

Model::Model(std::vector<std::unique_ptr<Session>> sessions, ModelOptions options,
             const Clock& clock)
    : sessions_(std::move(sessions)),
      options_(std::move(options)),
      clock_(clock),
      // The sizes to count without a lock: what a batch may hold, or a request's bound.
      stats_(options_.batching_policy.enabled ? options_.batching_policy.max_batch_rows
             : options_.max_request_rows > 0  ? options_.max_request_rows
                                              : 64),
      queue_(options_.batching_policy) {}

Model::~Model() { Close(/*drain=*/true); }

void Model::ConfigureInputs() {
  const std::vector<TensorInfo>& model_inputs = primary().inputs();
  if (!options_.transforms) {
    inputs_ = model_inputs;
    NarrowToDeclaredShapes();
    return;
  }
  const TransformPlan& plan = *options_.transforms;
  std::string target = options_.transform_target;
  if (target.empty()) {
    if (model_inputs.size() != 1) {
      throw CoreError(StatusCode::kInvalidConfig,
                      "the model has " + std::to_string(model_inputs.size()) +
                          " inputs: name the one the transforms feed (transform_target)");
    }
    target = model_inputs[0].name;
  }
  transform_target_index_ = model_inputs.size();
  for (size_t i = 0; i < model_inputs.size(); ++i) {
    if (model_inputs[i].name == target) transform_target_index_ = i;
  }
  if (transform_target_index_ == model_inputs.size()) {
    throw CoreError(StatusCode::kInvalidConfig, "transform_target '" + target +
                                                    "' is not an input of the model");
  }
  const TensorInfo& t = model_inputs[transform_target_index_];
  if (t.type != ElementType::kFloat32 || t.shape.size() != 2 ||
      (t.shape[1] >= 0 && t.shape[1] != plan.width())) {
    throw CoreError(StatusCode::kInvalidConfig,
                    "transforms produce float32 [rows, " + std::to_string(plan.width()) +
                        "] but input '" + t.name + "' is " + ElementTypeName(t.type) + " " +
                        ShapeToString(t.shape));
  }
  for (const auto& column : plan.inputs()) {
    for (const auto& m : model_inputs) {
      if (m.name == column.name && m.name != target) {
        throw CoreError(StatusCode::kInvalidConfig,
                        "transform column '" + column.name + "' clashes with a model input");
      }
    }
    inputs_.push_back(TensorInfo{column.name, column.type, {-1}});
  }
  public_index_of_model_input_.assign(model_inputs.size(), 0);
  for (size_t i = 0; i < model_inputs.size(); ++i) {
    if (i == transform_target_index_) continue;
    public_index_of_model_input_[i] = inputs_.size();
    inputs_.push_back(model_inputs[i]);
  }
}

void Model::CheckTransformStrings(const std::vector<const HostTensor*>& bound) const {
  // The transforms read string columns as UTF-8 text, as the offline paths do (they refuse
  // other bytes): the gRPC server's BYTES, unlike Python's str, can hold anything.
  const size_t columns = options_.transforms->inputs().size();
  for (size_t i = 0; i < columns && i < bound.size(); ++i) {
    if (inputs_[i].type != ElementType::kString) continue;
    for (const std::string& s : bound[i]->strings) {
      if (!IsUtf8(s)) {
        throw CoreError(StatusCode::kInvalidInput,
                        "column '" + inputs_[i].name + "' holds bytes that are not valid UTF-8");
      }
    }
  }
}

bool Model::IsConvertibleColumn(const TensorInfo& spec) const {
  if (!options_.transforms || spec.type == ElementType::kString) return false;
  // The raw columns come first in inputs_ (ConfigureInputs).
  return static_cast<size_t>(&spec - inputs_.data()) < options_.transforms->inputs().size();
}

bool Model::TakesAnyNumericType(std::string_view name) const {
  for (const TensorInfo& spec : inputs_) {
    if (spec.name == name) return IsConvertibleColumn(spec);
  }
  return false;
}

void Model::CheckInputType(std::string_view name, ElementType type) const {
  const TensorInfo& spec = FindInputSpec(inputs_, name);
  if (type == ElementType::kUndefined || type == spec.type) return;
  if (!IsConvertibleColumn(spec)) CheckElementType(spec, type);  // exact types only
  if (!IsConvertibleNumeric(type)) {
    throw CoreError(StatusCode::kInvalidInput,
                    "column '" + spec.name + "' must be numeric; got " + ElementTypeName(type));
  }
}

void Model::ConvertRawColumns(InferRequest& request) const {
  // The core batches one dtype per column; a column sent in another numeric type is converted
  // here, before validation, when no value changes (exact_convert.h; Python's in-process
  // predict converts by the same rule before it gets here, so its columns already match).
  for (auto& [name, tensor] : request.inputs) {
    const TensorInfo* spec = nullptr;
    for (const TensorInfo& s : inputs_) {
      if (s.name == name) {
        spec = &s;
        break;
      }
    }
    // Unknown names are BindInputs' to report.
    if (spec == nullptr || tensor.type == spec->type || !IsConvertibleColumn(*spec)) continue;
    CheckInputType(name, tensor.type);
    TensorInfo as_sent = *spec;  // shape and byte size checked in the usual words first
    as_sent.type = tensor.type;
    CheckTensor(as_sent, tensor);
    tensor = ConvertExactly(name, tensor, spec->type);
  }
}

void Model::NarrowToDeclaredShapes() {
  // ORT accepts any size along a dynamic dim; a config that declares one (Triton's dims)
  // expects requests of that size only. A batching model's batch dim stays dynamic: batches
  // of several requests are larger than any one of them.
  const size_t first = batching_enabled() ? 1 : 0;
  for (TensorInfo& spec : inputs_) {
    const auto declared = options_.declared_input_shapes.find(spec.name);
    if (declared == options_.declared_input_shapes.end() ||
        declared->second.size() != spec.shape.size()) {
      continue;  // a mismatch is the config check's to report (engine.signature)
    }
    for (size_t d = first; d < spec.shape.size(); ++d) {
      if (spec.shape[d] < 0 && declared->second[d] >= 0) spec.shape[d] = declared->second[d];
    }
  }
}

std::vector<HostTensor> Model::ModelInputs(const std::vector<const HostTensor*>& gathered) const {
  const TransformPlan& plan = *options_.transforms;
  std::vector<const HostTensor*> columns(gathered.begin(),
                                         gathered.begin() + static_cast<long>(plan.inputs().size()));
  const size_t count = primary().inputs().size();
  std::vector<HostTensor> model_inputs(count);
  // One thread per batch: the instances already run batches in parallel.
  model_inputs[transform_target_index_] = ApplyTransforms(plan, columns, /*max_threads=*/1);
  for (size_t i = 0; i < count; ++i) {
    if (i != transform_target_index_) model_inputs[i] = *gathered[public_index_of_model_input_[i]];
  }
  return model_inputs;
}

void Model::BatchKey(const std::vector<const HostTensor*>& inputs,
                     const std::vector<size_t>& output_indices, std::vector<int64_t>* key) {
  key->clear();
  for (const HostTensor* t : inputs) {
    key->insert(key->end(), t->shape.begin() + (t->shape.empty() ? 0 : 1), t->shape.end());
    key->push_back(-1);  // dims are >= 0, so -1 separates inputs unambiguously
  }
  key->push_back(-2);
  for (size_t i : output_indices) key->push_back(static_cast<int64_t>(i));
}

int64_t Model::CheckRows(const std::vector<const HostTensor*>& bound) const {
  if (batching_enabled()) {
    const int64_t rows = bound.empty() ? 1 : bound[0]->rows();
    for (size_t i = 0; i < bound.size(); ++i) {
      if (bound[i]->rows() != rows) {
        throw CoreError(StatusCode::kInvalidInput,
                        "inputs disagree on the batch dimension: '" + inputs()[0].name +
                            "' has " + std::to_string(rows) + " rows, '" + inputs()[i].name +
                            "' has " + std::to_string(bound[i]->rows()) +
                            "; batching joins requests along the first dimension, so every "
                            "input needs the same rows (a model whose inputs differ in rows "
                            "by design needs batching off: batching=False, or no "
                            "dynamic_batching in its config.pbtxt)");
      }
    }
    if (rows > options_.batching_policy.max_batch_rows) {
      throw CoreError(StatusCode::kInvalidInput,
                      "request has " + std::to_string(rows) + " rows; max_batch_size is " +
                          std::to_string(options_.batching_policy.max_batch_rows));
    }
    return rows;
  }
  if (options_.max_request_rows > 0) {
    for (size_t i = 0; i < bound.size(); ++i) {
      const TensorInfo& spec = inputs()[i];
      const int64_t rows = bound[i]->rows();
      if (!spec.shape.empty() && spec.shape[0] < 0 && rows > options_.max_request_rows) {
        throw CoreError(StatusCode::kInvalidInput,
                        "input '" + spec.name + "' has " + std::to_string(rows) +
                            " rows; max_batch_size is " +
                            std::to_string(options_.max_request_rows));
      }
    }
  }
  // A run of its own: its rows are those of its first input's dynamic first dimension, or 1
  // (one inference) for a model without one.
  const bool dynamic_rows = !bound.empty() && !inputs()[0].shape.empty() &&
                            inputs()[0].shape[0] < 0;
  return dynamic_rows ? bound[0]->rows() : 1;
}

bool Model::Prepare(std::unique_ptr<InferRequest>& request, QueuedRequest& queued) {
  stats_.AddInFlight(1);
  try {
    if (options_.transforms) ConvertRawColumns(*request);
    BindInputsInto(inputs(), request->inputs, &queued.bound_inputs);
    SelectOutputsInto(outputs(), request->output_names, &queued.output_indices);
    if (options_.transforms) CheckTransformStrings(queued.bound_inputs);
    queued.rows = CheckRows(queued.bound_inputs);
  } catch (const CoreError& e) {
    Refuse(std::move(request), e.code(), e.what(), Outcome::kInvalid);
    return false;
  }
  const int64_t now = clock_.NowUs();
  const int64_t timeout_us = request->timeout_us < 0 ? options_.default_timeout_us
                                                     : request->timeout_us;
  queued.enqueue_us = now;
  // A deadline beyond the clock's range is never reached: none, and no signed overflow.
  const bool bounded =
      timeout_us > 0 && timeout_us < BatchQueue::kNever - std::max<int64_t>(now, 0);
  queued.deadline_us = bounded ? now + timeout_us : 0;
  queued.request = std::move(request);
  queued.seq = next_seq_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool Model::InlineAllowed(const InferRequest& request) const {
  // Only when the policy would run a lone request at once anyway: a queue delay means
  // waiting for company, which only a worker does.
  return request.allow_inline &&
         (!batching_enabled() || options_.batching_policy.max_queue_delay_us == 0);
}

int Model::TakeInstanceForInline() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_ || !queue_.empty() || idle_instances_.empty()) return -1;
  const int instance = idle_instances_.back();
  idle_instances_.pop_back();
  return instance;
}

InferResult Model::RunInline(int instance, QueuedRequest& queued) {
  InferResult result = ExecuteOne(instance, queued);
  Record(queued, result);  // before the release: Close, waiting for it, then sees it counted
  ReleaseInstance(instance);
  return result;
}

uint64_t Model::Submit(std::unique_ptr<InferRequest> request) {
  // Taken out first: once queued, the request may complete and be freed on another thread.
  const std::function<void()> admitted = std::move(request->on_admitted);
  std::unique_ptr<QueuedRequest> prepared = request_pool_.Take();
  if (!Prepare(request, *prepared)) {
    SafeCall(admitted);
    return 0;
  }
  const uint64_t seq = prepared->seq;
  if (InlineAllowed(*prepared->request)) {
    const int instance = TakeInstanceForInline();
    if (instance >= 0) {
      SafeCall(admitted);  // the instance is held: what is submitted from here queues behind
      InferResult result = ExecuteOne(instance, *prepared);
      Record(*prepared, result);
      SafeComplete(*prepared->request, std::move(result));
      RunQueuedInline(instance);
      return seq;
    }
  }
  const bool queued = Enqueue(std::move(prepared));
  SafeCall(admitted);
  return queued ? seq : 0;
}

void Model::RunQueuedInline(int instance) {
  for (int runs = 0; runs < kMaxQueuedInlineRuns; ++runs) {
    QueuedBatch expired;
    QueuedBatch batch;
    bool wake_expiry = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (closed_) break;  // the workers drain or refuse what is left
      const int64_t now = clock_.NowUs();
      expired = queue_.TakeExpired(now);
      int64_t wake_us = 0;
      batch = queue_.TakeBatch(now, &wake_us);
      stats_.SetQueueDepth(static_cast<int64_t>(queue_.size()));
      wake_expiry = ArmExpiryLocked();
    }
    if (wake_expiry) expiry_ready_.notify_one();
    RefuseExpired(expired);
    if (batch.empty()) break;
    FinishedBatch finished = Execute(instance, std::move(batch));
    Complete(finished);
  }
  ReleaseInstance(instance);  // wakes a worker for anything still queued
}

namespace {

// Where a synchronous Infer waits when its request had to be queued.
class ResultSlot {
 public:
  void Set(InferResult&& result) {
    std::lock_guard<std::mutex> lock(mutex_);
    result_ = std::move(result);
    done_ = true;
    // Under the lock: the waiter may return and destroy this slot as soon as it sees done_.
    ready_.notify_one();
  }
  InferResult Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [this] { return done_; });
    return std::move(result_);
  }
  // The result once set within `timeout`; nullopt otherwise.
  std::optional<InferResult> WaitFor(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!ready_.wait_for(lock, timeout, [this] { return done_; })) return std::nullopt;
    return std::move(result_);
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  InferResult result_;
  bool done_ = false;
};

}  // namespace

InferResult Model::Infer(std::unique_ptr<InferRequest> request,
                         const std::function<bool()>& give_up) {
  ResultSlot slot;
  request->on_complete = [&slot](InferResult&& r) { slot.Set(std::move(r)); };
  std::unique_ptr<QueuedRequest> prepared = request_pool_.Take();
  if (!Prepare(request, *prepared)) return slot.Wait();  // refused: already completed
  if (InlineAllowed(*prepared->request)) {
    const int instance = TakeInstanceForInline();
    // No callback on this path: the result goes straight back to the caller.
    if (instance >= 0) return RunInline(instance, *prepared);
  }
  const uint64_t seq = prepared->seq;
  Enqueue(std::move(prepared));
  if (!give_up) return slot.Wait();
  bool cancelled = false;
  while (true) {
    if (std::optional<InferResult> result = slot.WaitFor(kGiveUpPoll)) return std::move(*result);
    // Asked once: a request that already runs is waited for (its callback refers to `slot`).
    if (!cancelled && give_up()) {
      cancelled = true;
      Cancel(seq);
    }
  }
}

bool Model::Enqueue(std::unique_ptr<QueuedRequest> queued) {
  std::unique_ptr<QueuedRequest> refused;
  bool closed = false;
  bool wake_worker = false;
  bool wake_expiry = false;
  BatchKey(queued->bound_inputs, queued->output_indices, &queued->batch_key);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) {
      closed = true;
      refused = std::move(queued);
    } else {
      refused = queue_.Push(std::move(queued));
      stats_.SetQueueDepth(static_cast<int64_t>(queue_.size()));
      // With every instance busy, the worker that frees one looks at the queue anyway; an
      // idle one waiting out the queue delay needs no wake-up unless a batch may be ready.
      const bool worth_looking = !refused && queue_.WorthWaking();
      if (!refused) enqueued_.fetch_add(1, std::memory_order_relaxed);
      if (worth_looking) worth_looking_.fetch_add(1, std::memory_order_release);
      wake_worker = worth_looking && !idle_instances_.empty();
      wake_expiry = !refused && ArmExpiryLocked();
    }
  }
  if (closed) {
    Refuse(std::move(refused), StatusCode::kUnavailable, Named() + " is closed",
           Outcome::kUnavailable);
    return false;
  }
  if (refused) {
    Refuse(std::move(refused), StatusCode::kOverloaded,
           "queue is full (max_queue_size=" +
               std::to_string(options_.batching_policy.max_queue_size) + "); retry later",
           Outcome::kOverloaded);
    return false;
  }
  if (wake_worker) work_ready_.notify_one();
  if (wake_expiry) expiry_ready_.notify_one();
  return true;
}

bool Model::ArmExpiryLocked() {
  if (!idle_instances_.empty()) return false;
  const int64_t next = queue_.NextDeadlineUs();
  if (next >= expiry_wake_us_) return false;
  expiry_wake_us_ = next;
  return true;
}

void Model::ExpiryLoop() {
  NameThisThread("engine-expiry");
  KeepThisThreadOff(options_.worker_cpus);
  std::unique_lock<std::mutex> lock(mutex_);
  while (!expiry_stop_) {
    const int64_t now = clock_.NowUs();
    QueuedBatch expired = queue_.TakeExpired(now);
    if (!expired.empty()) {
      stats_.SetQueueDepth(static_cast<int64_t>(queue_.size()));
      lock.unlock();
      RefuseExpired(expired);
      lock.lock();
      continue;
    }
    // Armed for the queue's earliest deadline; a later Enqueue or worker moves it earlier.
    expiry_wake_us_ = queue_.NextDeadlineUs();
    if (expiry_wake_us_ == BatchQueue::kNever) {
      expiry_ready_.wait(lock);
    } else {
      // Real time, as in WorkerLoop: a fake clock is re-read at least this often.
      const int64_t delay_us = std::max<int64_t>(expiry_wake_us_ - now, 1);
      expiry_ready_.wait_for(lock, std::chrono::microseconds(std::min<int64_t>(delay_us, 1000000)));
    }
  }
}

bool Model::Cancel(uint64_t seq) {
  std::unique_ptr<QueuedRequest> removed;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    removed = queue_.Remove(seq);
    stats_.SetQueueDepth(static_cast<int64_t>(queue_.size()));
  }
  if (!removed) return false;
  Refuse(std::move(removed), StatusCode::kCancelled, "request was cancelled before it ran",
         Outcome::kCancelled);
  return true;
}

void Model::Refuse(std::unique_ptr<QueuedRequest> r, StatusCode code, const std::string& message,
                   Outcome outcome) {
  Refuse(std::move(r->request), code, message, outcome);
}

void Model::RefuseExpired(QueuedBatch& expired) {
  const int64_t now = clock_.NowUs();
  for (auto& r : expired) {
    // Both times, so that the caller can tell a timeout set too short from a queue too long.
    const std::string message = "deadline exceeded while queued: its timeout of " +
                                std::to_string(r->deadline_us - r->enqueue_us) +
                                " us passed after " + std::to_string(now - r->enqueue_us) +
                                " us in the queue; the request was not run";
    Refuse(std::move(r), StatusCode::kDeadlineExceeded, message, Outcome::kExpired);
  }
}

void Model::Refuse(std::unique_ptr<InferRequest> r, StatusCode code, const std::string& message,
                   Outcome outcome) {
  stats_.CountRequest(outcome);
  InferResult result;
  result.status = Status(code, message);
  stats_.AddInFlight(-1);  // before the callback, so a caller that wakes sees it counted
  SafeComplete(*r, std::move(result));
}

namespace {

// A pause for busy-wait loops: lets the core's other work (and a hyperthread) through.
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

bool Model::SpinWhileIdle(int64_t max_us) {
  const uint64_t seen = worth_looking_.load(std::memory_order_acquire);
  uint64_t queued = enqueued_.load(std::memory_order_relaxed);
  // Real time, not clock_: a fake clock never moves by itself. Never past the worker's own
  // wake-up time (`max_us`, capped so that the sum cannot overflow).
  const auto start = std::chrono::steady_clock::now();
  const auto limit = start + std::chrono::microseconds(std::min<int64_t>(max_us, 1000000));
  auto until = std::min(limit, start + std::chrono::microseconds(kIdleSpinUs));
  while (worth_looking_.load(std::memory_order_acquire) == seen) {
    const auto now = std::chrono::steady_clock::now();
    const uint64_t now_queued = enqueued_.load(std::memory_order_relaxed);
    if (now_queued != queued) {
      // A batch filling up, row by row: each row earns another spin.
      queued = now_queued;
      until = std::min(limit, now + std::chrono::microseconds(kIdleSpinUs));
    }
    if (now >= until) return false;
    CpuRelax();
  }
  return true;
}

void Model::WorkerLoop(int index) {
  NameThisThread("engine-worker");
  const std::vector<int>& cpus = options_.worker_cpus;
  if (!cpus.empty()) {
    const int cpu = cpus[static_cast<size_t>(index) % cpus.size()];
    if (!PinThisThread(cpu)) {  // CheckCpus allowed it at load; the system may have changed
      LogLine("WARNING", "engine.core",
              Named() + ": could not pin a worker to CPU " + std::to_string(cpu) +
                  "; it runs unpinned");
    }
  }
  bool spun = false;  // spun since the last request was queued, in vain: sleep now
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    const int64_t now = clock_.NowUs();
    QueuedBatch expired = queue_.TakeExpired(now);
    int64_t wake_us = queue_.NextDeadlineUs();
    QueuedBatch batch;
    int instance = -1;
    if (!idle_instances_.empty()) {
      // Draining: do not wait out the queue delay, run what is there.
      batch = queue_.TakeBatch(closed_ ? BatchQueue::kNever / 2 : now, &wake_us);
      if (!batch.empty()) {
        instance = idle_instances_.back();
        idle_instances_.pop_back();
      }
    }
    stats_.SetQueueDepth(static_cast<int64_t>(queue_.size()));
    if (!expired.empty() || instance >= 0) {
      const bool wake_expiry = instance >= 0 && ArmExpiryLocked();
      lock.unlock();
      if (wake_expiry) expiry_ready_.notify_one();
      RefuseExpired(expired);
      if (instance >= 0) {
        const bool lone = batch.size() == 1;
        const auto run_start = std::chrono::steady_clock::now();
        FinishedBatch finished = Execute(instance, std::move(batch));
        finished.worker_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now() - run_start)
                                 .count();
        if (completer_ && (!lone || HasQueuedWork() || !completer_->Idle())) {
          // The completion thread splits and runs the callbacks while this instance runs the
          // next batch. A lone request goes there too while it still completes earlier ones,
          // so that completions keep the order in which batches ran.
          completer_->Post(std::move(finished));
          ReleaseInstance(instance);
        } else {
          // Callbacks first, then the instance: requests that completions trigger (a closed
          // loop) join the next batch instead of trickling into many small ones.
          Complete(finished);
          ReleaseInstance(instance);
        }
      }
      lock.lock();
      continue;
    }
    if (closed_ && queue_.empty()) {
      // Another worker may sleep with no timeout while callers' inline runs hold the
      // instances; its release finds the queue empty and wakes no one. Wake it to exit too.
      work_ready_.notify_all();
      instance_released_.notify_all();  // a WaitDrained: the queue may have emptied by expiry
      return;
    }
    // Real time, not clock_: a fake clock never moves by itself, so waits stay short then.
    const int64_t delay_us = wake_us == BatchQueue::kNever
                                 ? BatchQueue::kNever
                                 : std::max<int64_t>(wake_us - clock_.NowUs(), 1);
    if (!spun && !closed_ && !idle_instances_.empty()) {
      lock.unlock();
      // Each request that comes while it spins earns another spin: a batch filling up keeps
      // its worker's core busy.
      spun = !SpinWhileIdle(delay_us);
      lock.lock();
      continue;  // looks at the queue again before sleeping
    }
    spun = false;
    if (wake_us == BatchQueue::kNever) {
      work_ready_.wait(lock);
    } else {
      work_ready_.wait_for(lock, std::chrono::microseconds(std::min<int64_t>(delay_us, 1000000)));
    }
  }
}

std::vector<HostTensor> Model::RunOnInstance(int instance,
                                             const std::vector<const HostTensor*>& public_inputs,
                                             const std::vector<size_t>& output_indices,
                                             PhaseTimer& timer, RequestTimings* phases,
                                             const RunSpec& spec) {
  const Session& session = *instance_sessions_[static_cast<size_t>(instance)];
  auto run = [&](const std::vector<const HostTensor*>& inputs) {
    timer.Mark(&phases->input_ns);
    if (spec.into == nullptr) return session.Run(inputs, output_indices, spec.quiet);
    session.RunInto(inputs, output_indices, *spec.into, spec.quiet);
    return std::move(*spec.into);
  };
  std::vector<HostTensor> outputs;
  if (!options_.transforms) {
    outputs = run(public_inputs);
  } else {
    std::vector<HostTensor> model_inputs = ModelInputs(public_inputs);
    std::vector<const HostTensor*> run_inputs;
    run_inputs.reserve(model_inputs.size());
    for (const auto& t : model_inputs) run_inputs.push_back(&t);
    outputs = run(run_inputs);
  }
  timer.Mark(&phases->infer_ns);
  if (auto drift = spec.count_drift ? std::atomic_load(&drift_) : nullptr) {
    // Drift is counted on what callers sent: raw columns when there are transforms.
    drift->Observe(instance, public_inputs, outputs, output_indices);
  }
  return outputs;
}

bool Model::TakeOutputBuffers(const std::vector<size_t>& output_indices, int64_t rows,
                              std::vector<HostTensor>* buffers) {
  const size_t count = output_indices.empty() ? outputs().size() : output_indices.size();
  auto index_of = [&](size_t k) { return output_indices.empty() ? k : output_indices[k]; };
  for (size_t k = 0; k < count; ++k) {
    if (output_row_bytes_[index_of(k)] == 0) return false;  // before taking any buffer
  }
  buffers->clear();
  buffers->reserve(count);
  for (size_t k = 0; k < count; ++k) {
    const size_t index = index_of(k);
    const size_t row_bytes = output_row_bytes_[index];
    HostTensor t;
    t.type = outputs()[index].type;
    t.shape = outputs()[index].shape;
    t.shape[0] = rows;
    t.byte_size = row_bytes * static_cast<size_t>(rows);
    std::shared_ptr<uint8_t> buffer = output_buffers_->Take(t.byte_size);
    t.data = buffer.get();
    t.owner = std::move(buffer);
    buffers->push_back(std::move(t));
  }
  return true;
}

std::vector<HostTensor> Model::RunBatch(int instance, const std::vector<const HostTensor*>& inputs,
                                        const std::vector<size_t>& output_indices, int64_t rows,
                                        PhaseTimer& timer, RequestTimings* phases) {
  RunSpec spec;
  spec.quiet = true;
  std::vector<HostTensor> buffers;
  if (!preallocate_outputs_.load(std::memory_order_relaxed) ||
      !TakeOutputBuffers(output_indices, rows, &buffers)) {
    return RunOnInstance(instance, inputs, output_indices, timer, phases, spec);
  }
  std::string failure;
  try {
    RunSpec into = spec;
    into.into = &buffers;
    return RunOnInstance(instance, inputs, output_indices, timer, phases, into);
  } catch (const CoreError& e) {
    if (e.status().code() != StatusCode::kExecutionFailed) throw;
    failure = e.status().message();
  }
  // Either a request in the batch is bad, and this run fails too (the caller isolates it), or
  // the model's outputs are not the shape it declares, and runs into buffers are over.
  std::vector<HostTensor> outputs =
      RunOnInstance(instance, inputs, output_indices, timer, phases, spec);
  const bool split_fails = std::any_of(outputs.begin(), outputs.end(), [rows](const HostTensor& t) {
    return !SplitsIntoRows(t, rows);
  });
  // Outputs that do not follow the batch have a warning of their own (the caller's).
  if (preallocate_outputs_.exchange(false) && !split_fails) {
    LogLine("WARNING", "engine.core",
            Named() + ": a batch failed when its outputs were given the shapes the model "
                      "declares, and ran when ONNX Runtime chose them: its outputs are not "
                      "the shape it declares. Its batches now run without preallocated "
                      "outputs. Said once per model. The failure: " +
                failure);
  }
  return outputs;
}

void Model::SetTimings(const QueuedRequest& r, int64_t start_us, int64_t compute_us,
                       int64_t done_us, int64_t batch_rows, const RequestTimings& phases,
                       InferResult* result) {
  result->timings = phases;
  result->timings.queue_us = start_us - r.enqueue_us;
  result->timings.compute_us = compute_us;
  result->timings.total_us = done_us - r.enqueue_us;
  result->timings.batch_rows = static_cast<int>(batch_rows);
}

namespace {

// Runs `body`, turning what it throws into a Status.
template <typename Body>
Status Guarded(Body body) {
  try {
    body();
    return Status();
  } catch (const CoreError& e) {
    return e.status();
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, std::string("internal error: ") + e.what());
  }
}

}  // namespace

InferResult Model::ExecuteOne(int instance, QueuedRequest& r) {
  // A lone request runs on its own buffers: nothing to gather or scatter.
  const int64_t start_us = clock_.NowUs();
  PhaseTimer timer;
  RequestTimings phases;
  InferResult result;
  std::vector<HostTensor> outputs;
  const Status failure = Guarded([&] {
    outputs = RunOnInstance(instance, r.bound_inputs, r.output_indices, timer, &phases, {});
  });
  if (failure.ok()) {
    result.outputs.reserve(outputs.size());
    for (size_t o = 0; o < outputs.size(); ++o) {
      result.outputs.emplace_back(this->outputs()[r.output_indices[o]].name,
                                  std::move(outputs[o]));
    }
  } else {
    std::string message = failure.message();
    if (!r.request->id.empty()) message += " (request id " + r.request->id + ")";
    result.status = Status(failure.code(), message);
  }
  timer.Mark(&phases.output_ns);
  const int64_t end_us = clock_.NowUs();
  stats_.ObserveBatch(r.rows, end_us - start_us, phases, failure.ok());
  SetTimings(r, start_us, end_us - start_us, end_us, r.rows, phases, &result);
  return result;
}

FinishedBatch Model::Execute(int instance, QueuedBatch batch) {
  FinishedBatch finished;
  finished.batch = std::move(batch);
  const QueuedBatch& requests = finished.batch;
  if (requests.size() == 1) {
    requests.front()->result = ExecuteOne(instance, *requests.front());
    return finished;
  }
  finished.start_us = clock_.NowUs();
  const size_t input_count = inputs().size();
  for (const auto& r : requests) finished.rows += r->rows;
  PhaseTimer timer;
  const Status failure = Guarded([&] {
    std::vector<HostTensor> gathered;
    gathered.reserve(input_count);
    std::vector<const HostTensor*> parts;
    parts.reserve(requests.size());
    auto& scratch = gather_scratch_[static_cast<size_t>(instance)];
    for (size_t i = 0; i < input_count; ++i) {
      parts.clear();
      for (const auto& r : requests) parts.push_back(r->bound_inputs[i]);
      gathered.push_back(Gather(parts, &scratch[i]));
    }
    std::vector<const HostTensor*> public_inputs;
    public_inputs.reserve(input_count);
    for (const auto& t : gathered) public_inputs.push_back(&t);
    finished.outputs = RunBatch(instance, public_inputs, requests.front()->output_indices,
                                finished.rows, timer, &finished.phases);
    for (size_t o = 0; o < finished.outputs.size(); ++o) {
      // Checked here, where the batch can still be re-run, so that the split cannot fail.
      if (!SplitsIntoRows(finished.outputs[o], finished.rows)) {
        WarnOutputsDoNotFollowTheBatch(finished.outputs[o], requests.front()->output_indices, o,
                                       finished.rows);
        throw CoreError(StatusCode::kExecutionFailed,
                        "an output's first dimension does not match the batch's rows");
      }
    }
  });
  if (failure.ok()) {
    finished.ran_us = clock_.NowUs();
    finished.needs_split = true;  // the completion splits it
    return finished;
  }
  finished.outputs.clear();
  timer.Mark(&finished.phases.output_ns);
  stats_.ObserveBatch(finished.rows, clock_.NowUs() - finished.start_us, finished.phases,
                      /*ok=*/false);
  // Isolation: re-run each request alone so only the poison one fails.
  for (const auto& r : requests) r->result = ExecuteOne(instance, *r);
  return finished;
}

void Model::WarnOutputsDoNotFollowTheBatch(const HostTensor& output,
                                           const std::vector<size_t>& output_indices,
                                           size_t position, int64_t batch_rows) {
  std::call_once(unbatchable_warned_, [&] {
    const size_t index = output_indices.empty() ? position : output_indices[position];
    LogLine("WARNING", "engine.core",
            Named() + ": output '" + outputs()[index].name + "' has shape [" +
                (output.shape.empty() ? std::string() : std::to_string(output.shape[0])) +
                ", ...] for a batch of " + std::to_string(batch_rows) +
                " rows: its first dimension does not follow the batch, so each batch of this "
                "model is re-run request by request (twice the work; counted in "
                "failed_batches). Load it with batching off. Said once per model.");
  });
}

void Model::SplitOutputs(FinishedBatch& finished) {
  PhaseTimer timer;
  const QueuedBatch& requests = finished.batch;
  const std::vector<size_t>& output_indices = requests.front()->output_indices;
  int64_t first_row = 0;
  for (const auto& r : requests) {
    r->result.outputs.reserve(finished.outputs.size());
    for (size_t o = 0; o < finished.outputs.size(); ++o) {
      // Views sharing the batch buffer; Execute checked that the rows add up.
      r->result.outputs.emplace_back(outputs()[output_indices[o]].name,
                                     SliceRows(finished.outputs[o], first_row, r->rows));
    }
    first_row += r->rows;
  }
  finished.outputs.clear();
  finished.needs_split = false;
  timer.Mark(&finished.phases.output_ns);
  const int64_t done_us = clock_.NowUs();
  // The worker's part plus the split; not the wait for the completion thread in between.
  const int64_t compute_us =
      finished.ran_us - finished.start_us + finished.phases.output_ns / 1000;
  stats_.ObserveBatch(finished.rows, compute_us, finished.phases);
  for (const auto& r : requests) {
    SetTimings(*r, finished.start_us, compute_us, done_us, finished.rows, finished.phases,
               &r->result);
  }
}

void Model::Record(const QueuedRequest& r, const InferResult& result) {
  if (result.status.ok()) {
    stats_.ObserveSuccess(r.rows, result.timings);
    MaybeSample(r, result);
  } else {
    stats_.CountRequest(Outcome::kFailed);
  }
  stats_.AddInFlight(-1);  // before the callback, so a caller that wakes sees it counted
}

void Model::Complete(FinishedBatch& finished) {
  if (finished.needs_split) SplitOutputs(finished);
  // Distinct notifiers in first-seen order; a batch usually has none or one. The requests
  // (and so their notifiers) live in `finished` until the caller drops it.
  std::vector<CompletionNotifier*> notifiers;
  for (auto& r : finished.batch) {
    Record(*r, r->result);
    Deliver(*r->request, std::move(r->result));
    CompletionNotifier* notifier = r->request->notifier.get();
    if (notifier != nullptr &&
        std::find(notifiers.begin(), notifiers.end(), notifier) == notifiers.end()) {
      notifiers.push_back(notifier);
    }
  }
  for (CompletionNotifier* notifier : notifiers) SafeNotify(*notifier);
  request_pool_.Return(finished.batch);  // after the notifies: the requests own the notifiers
}

std::string Model::Named() const {
  return options_.name.empty() ? std::string("model") : "model '" + options_.name + "'";
}

bool Model::HasQueuedWork() {
  std::lock_guard<std::mutex> lock(mutex_);
  return !queue_.empty();
}

void Model::ReleaseInstance(int instance) {
  bool work_waiting = false;
  bool closing = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    idle_instances_.push_back(instance);
    work_waiting = !queue_.empty();
    closing = closed_;
  }
  // Wake a worker only when there is work: a needless wake-up costs a core on small machines.
  if (work_waiting) work_ready_.notify_one();
  if (closing) {
    instance_released_.notify_all();
    work_ready_.notify_all();  // workers re-check whether they may exit
  }
}

void Model::BeginClose() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  work_ready_.notify_all();
}

bool Model::WaitDrained(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mutex_);
  // Released instances and exiting workers notify instance_released_ once closed_ is set.
  return instance_released_.wait_until(lock, deadline, [this] {
    return queue_.empty() && idle_instances_.size() == instance_sessions_.size();
  });
}

void Model::Close(bool drain) {
  QueuedBatch dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    // Also when already closed: a Close(false) cuts short a drain under way.
    if (!drain) dropped = queue_.TakeAll();
    stats_.SetQueueDepth(static_cast<int64_t>(queue_.size()));
  }
  work_ready_.notify_all();
  for (auto& r : dropped) {
    Refuse(std::move(r), StatusCode::kUnavailable, "model was closed before the request ran",
           Outcome::kUnavailable);
  }
  std::call_once(join_once_, [this] {
    for (auto& w : workers_) {
      if (w.joinable()) w.join();
    }
    {
      // Runs on callers' threads (inline runs, warm-up) hold instances too; "running batches
      // finish" covers them. They take no new work once closed_ is set.
      std::unique_lock<std::mutex> lock(mutex_);
      // Counted against the instances set up: a load that failed part-way has fewer.
      instance_released_.wait(lock, [this] {
        return idle_instances_.size() == instance_sessions_.size();
      });
      expiry_stop_ = true;  // the workers drained the queue: no deadline is left to watch
    }
    expiry_ready_.notify_all();
    if (expiry_thread_.joinable()) expiry_thread_.join();
    // After the workers and inline runs: they post their last batches before they finish.
    if (completer_) completer_->Stop();
    // Left in flight now: only submitters that passed validation as closed_ was set, about
    // to be refused. Wait (briefly, bounded) so that the counts read after Close are final.
    for (int i = 0; i < 10000 && stats_.InFlight() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  });
}

void Model::WarmUp(const std::vector<std::pair<std::string, HostTensor>>& inputs) {
  const std::vector<const HostTensor*> bound = BindInputs(this->inputs(), inputs);
  const std::vector<size_t> every_output = SelectOutputs(outputs(), {});
  std::vector<int> taken;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) throw CoreError(StatusCode::kUnavailable, Named() + " is closed");
    taken.swap(idle_instances_);  // a busy instance has run before: it is warm
  }
  Status failure;
  for (const int instance : taken) {
    const Status s = Guarded([&] {
      PhaseTimer timer;
      RequestTimings ignored;
      RunOnInstance(instance, bound, every_output, timer, &ignored,
                    RunSpec{/*count_drift=*/false});
    });
    if (failure.ok()) failure = s;
  }
  for (const int instance : taken) ReleaseInstance(instance);
  if (!failure.ok()) throw CoreError(failure);
}

std::vector<int64_t> Model::TimeRuns(
    const std::vector<std::pair<std::string, HostTensor>>& inputs, int runs) {
  if (runs < 1 || runs > kMaxTimedRuns) {
    throw CoreError(StatusCode::kInvalidConfig, "runs must be in [1, " +
                                                    std::to_string(kMaxTimedRuns) + "]; was " +
                                                    std::to_string(runs));
  }
  const std::vector<const HostTensor*> bound = BindInputs(this->inputs(), inputs);
  if (options_.transforms) CheckTransformStrings(bound);
  CheckRows(bound);  // what a request of these rows may hold
  const std::vector<size_t> every_output = SelectOutputs(outputs(), {});
  std::vector<int64_t> times_ns;
  times_ns.reserve(static_cast<size_t>(runs));
  int instance = -1;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) throw CoreError(StatusCode::kUnavailable, Named() + " is closed");
    if (idle_instances_.empty()) {
      throw CoreError(StatusCode::kUnavailable,
                      "every instance is busy; time runs on a model that is not serving");
    }
    instance = idle_instances_.back();
    idle_instances_.pop_back();
  }
  const Status failure = Guarded([&] {
    for (int i = 0; i < runs; ++i) {
      const auto start = std::chrono::steady_clock::now();
      PhaseTimer timer;
      RequestTimings ignored;
      RunOnInstance(instance, bound, every_output, timer, &ignored,
                    RunSpec{/*count_drift=*/false});
      times_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::steady_clock::now() - start)
                             .count());
    }
  });
  ReleaseInstance(instance);
  if (!failure.ok()) throw CoreError(failure);
  return times_ns;
}

StatsSnapshot Model::Stats() const { return stats_.Snapshot(); }

Completer::Counts Model::CompletionCounts() const {
  return completer_ ? completer_->counts() : Completer::Counts{};
}

void Model::MaybeSample(const QueuedRequest& r, const InferResult& result) {
  if (!sampler_.ShouldSample()) return;
  Sample sample;
  sample.id = r.request->id;
  for (const auto& [name, tensor] : r.request->inputs) {
    sample.inputs.emplace_back(name, CopyTensor(tensor));
  }
  for (const auto& [name, tensor] : result.outputs) {
    sample.outputs.emplace_back(name, CopyTensor(tensor));
  }
  sample.total_us = result.timings.total_us;
  sample.timestamp_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  sampler_.Offer(std::move(sample));
}

void Model::SetDriftFeatures(std::vector<DriftFeature> features) {
  std::shared_ptr<DriftCounters> counters;
  if (!features.empty()) {
    counters = std::make_shared<DriftCounters>(std::move(features), inputs(), outputs(),
                                               options_.instances);
  }
  std::atomic_store(&drift_, counters);
}

std::vector<std::pair<std::string, std::vector<int64_t>>> Model::DriftCounts() const {
  std::vector<std::pair<std::string, std::vector<int64_t>>> result;
  auto drift = std::atomic_load(&drift_);
  if (!drift) return result;
  auto counts = drift->Snapshot();
  for (size_t f = 0; f < counts.size(); ++f) {
    result.emplace_back(drift->features()[f].name, std::move(counts[f]));
  }
  return result;
}

}  // namespace engine
