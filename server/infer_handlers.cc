// ModelInfer: decode, submit to the model's batcher, answer from its completion callback.
#include <atomic>
#include <limits>
#include <mutex>
#include <utility>

#include "classification.h"
#include "codec.h"
#include "error_map.h"
#include "infer_message.h"
#include "inference_service.h"
#include "names.h"
#include "serve.h"

namespace engine::server {
namespace {

// A ModelInfer call: its request read in place (infer_message.h), and the means to cancel
// its queued request when the client goes away.
class InferCall final : public InlineUnaryReactor {
 public:
  InferCall(grpc::ByteBuffer* out, const ServerLimits* limits) : out_(out), limits_(limits) {}

  grpc::Status Parse(const grpc::ByteBuffer& in) { return request_.Parse(in, *limits_); }
  const InferRequestView& request() const { return request_.view(); }

  // Exactly once, from any thread: an error, or (OK) the response bytes.
  void Reply(const grpc::Status& status) { Finish(status); }
  void Reply(grpc::ByteBuffer response) {
    out_->Swap(&response);  // this gRPC's ByteBuffer has no move: assigning would copy
    Finish(grpc::Status::OK);
  }

  // Remembers where the request was queued (seq 0: refused at once, nothing to cancel).
  void Track(std::shared_ptr<Model> model, uint64_t seq) {
    std::lock_guard<std::mutex> lock(mutex_);
    model_ = std::move(model);
    seq_ = seq;
  }

  // The client cancelled or its deadline passed: a request still queued never runs.
  void OnCancel() override {
    std::shared_ptr<Model> model;
    uint64_t seq = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      model = model_;
      seq = seq_;
    }
    if (model && seq != 0) model->Cancel(seq);
  }

 private:
  ReceivedInferRequest request_;
  grpc::ByteBuffer* out_;
  const ServerLimits* limits_;
  std::mutex mutex_;
  std::shared_ptr<Model> model_;  // GUARDED_BY(mutex_)
  uint64_t seq_ = 0;              // GUARDED_BY(mutex_)
};

// Input names and datatypes against the model's signature, before any contents are decoded:
// decoding BYTES builds one string per element, so a request the model would refuse anyway
// must not get that far (16M empty BYTES elements sent to a float model cost 600 MB). The
// rule and messages are the core's own (Model::CheckInputType: exact types, but any numeric
// type for a transform model's raw numeric columns, which the model converts exactly or
// refuses); unsupported datatypes are left to the decoder. A wrong datatype is told in KServe's
// names (FP32, not the core's float32): the names the client sent.
Status CheckInputsDeclared(const InferRequestView& request, const Model& model) {
  for (const InferInputView& in : request.inputs) {
    const ElementType type = ElementTypeFromKServe(in.datatype);
    try {
      model.CheckInputType(in.name, type);
    } catch (const CoreError& e) {
      for (const TensorInfo& spec : model.inputs()) {
        if (spec.name != in.name || spec.type == type || type == ElementType::kUndefined ||
            model.TakesAnyNumericType(in.name)) {
          continue;  // the core's own message is the more precise one then
        }
        return Status(StatusCode::kInvalidInput,
                      Named("input", in.name) + ": expected datatype " +
                          KServeDatatype(spec.type) + ", got " + KServeDatatype(type) +
                          " (no implicit casts)");
      }
      return e.status();
    }
  }
  return Status::Ok();
}

}  // namespace

grpc::Status Unauthenticated() {
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "missing or wrong bearer token (metadata 'authorization')");
}

InferenceService::InferenceService(ServingTable* table, ControlExecutor* executor,
                                   ControlPlane* control, const BearerAuth* auth,
                                   ServerLimits limits, ServiceInfo info)
    : table_(table),
      executor_(executor),
      control_(control),
      auth_(auth),
      limits_(limits),
      info_(std::move(info)) {}

Status InferenceService::PrepareInfer(const InferRequestView& request,
                                      std::chrono::system_clock::time_point deadline,
                                      ServedVersion* served,
                                      std::unique_ptr<InferRequest>* out) const {
  Status s = table_->FindForInference(request.model_name, request.model_version, served);
  if (!s.ok()) return s;
  // Refused from here on, the request still counts in its model's outcomes (which must add
  // up to the requests made), as the model counts those it refuses itself.
  const auto refused = [&](Status status) {
    served->model->CountRefusedBeforeSubmit(status.code());
    return status;
  };
  s = CheckInputsDeclared(request, *served->model);
  if (!s.ok()) return refused(s);
  DecodedRequest decoded;
  s = DecodeInferRequest(request, limits_, &decoded);
  if (!s.ok()) return refused(s);
  int64_t timeout_us = decoded.timeout_us;
  if (deadline != std::chrono::system_clock::time_point::max()) {
    // The gRPC deadline bounds the queue wait as the "timeout" parameter does.
    const int64_t left_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                deadline - std::chrono::system_clock::now())
                                .count();
    if (left_us <= 0) {
      return refused(Status(StatusCode::kDeadlineExceeded,
                            "the deadline passed before the request was queued; it was not run"));
    }
    timeout_us = timeout_us < 0 ? left_us : std::min(timeout_us, left_us);
  }
  auto r = std::make_unique<InferRequest>();
  r->inputs = std::move(decoded.inputs);
  r->output_names = std::move(decoded.output_names);
  r->priority = decoded.priority;
  r->timeout_us = timeout_us;
  r->id = std::string(request.id);
  *out = std::move(r);
  return Status::Ok();
}

namespace {

// Tells a refusal for a closed model apart while Submit runs (SubmitInfer retries it), from
// every other completion (passed on). Lock-free: each request completes exactly once.
struct SubmitGate {
  enum : int { kSubmitting, kSubmitted, kRefusedClosed };
  explicit SubmitGate(InferenceService::OnComplete on_complete) : done(std::move(on_complete)) {}
  std::atomic<int> state{kSubmitting};
  InferResult refused;  // written before state becomes kRefusedClosed
  InferenceService::OnComplete done;  // the caller's callback, run once either way
};

}  // namespace

Status InferenceService::SubmitInfer(
    const InferRequestView& request, std::chrono::system_clock::time_point deadline,
    const std::function<OnComplete(const ServedVersion&)>& make_on_complete,
    std::shared_ptr<const void> keepalive, std::shared_ptr<Model>* model, uint64_t* seq,
    const std::function<void()>& on_admitted) const {
  // One retry is enough for one reload; a few cover reloads in quick succession.
  constexpr int kAttempts = 3;
  for (int attempt = 1;; ++attempt) {
    ServedVersion served;
    std::unique_ptr<InferRequest> r;
    Status s = PrepareInfer(request, deadline, &served, &r);
    if (!s.ok()) return s;
    auto gate = std::make_shared<SubmitGate>(make_on_complete(served));
    r->keepalive = keepalive;
    r->on_admitted = on_admitted;
    r->on_complete = [gate](InferResult&& result) {
      if (result.status.code() == StatusCode::kUnavailable &&
          gate->state.load(std::memory_order_acquire) == SubmitGate::kSubmitting) {
        gate->refused = std::move(result);
        int expected = SubmitGate::kSubmitting;
        if (gate->state.compare_exchange_strong(expected, SubmitGate::kRefusedClosed,
                                                std::memory_order_acq_rel)) {
          return;  // SubmitInfer decides: another model, or this answer
        }
        result = std::move(gate->refused);
      }
      gate->done(std::move(result));
    };
    // When nothing is queued and an instance is idle, run on this gRPC thread: no hand-off to
    // a worker and back. The thread then also runs the few batches that queued meanwhile
    // (Model::Submit bounds them), so under load the gRPC threads do the work and their
    // replies go out without waking a worker. Not for models told to wait for a batch to
    // fill (max_queue_delay_us > 0): the inline path would skip that wait. Nor past the
    // budget of gRPC threads that may be inside runs at once (see InlineRunBudget).
    uint64_t queued = 0;
    {
      const InlineRunBudget::Slot slot =
          served.model->options().batching_policy.max_queue_delay_us == 0
              ? inline_runs_.TryTake()
              : InlineRunBudget::Slot();
      r->allow_inline = static_cast<bool>(slot);
      queued = served.model->Submit(std::move(r));
    }
    if (gate->state.exchange(SubmitGate::kSubmitted, std::memory_order_acq_rel) !=
        SubmitGate::kRefusedClosed) {
      *model = std::move(served.model);
      *seq = queued;
      return Status::Ok();
    }
    // Refused as unavailable while being submitted: the model closed under this request.
    ServedVersion now;
    const Status found = table_->FindForInference(request.model_name, request.model_version, &now);
    if (attempt < kAttempts && found.ok() && now.model != served.model) {
      continue;  // a reload: the version is served by a new model now
    }
    // Unloaded, or the server is draining: said with the model's name rather than the core's
    // bare "model is closed".
    gate->refused.status =
        found.code() == StatusCode::kUnavailable
            ? found
            : Status(StatusCode::kUnavailable,
                     "model " + QuoteForMessage(served.name) + " version " +
                         std::to_string(served.version) +
                         " was unloaded or replaced while this request was submitted; it did not "
                         "run; retry");
    gate->done(std::move(gate->refused));
    *model = nullptr;
    *seq = 0;
    return Status::Ok();
  }
}

grpc::ServerUnaryReactor* InferenceService::ModelInfer(Ctx* ctx, const Buf* in, Buf* out) {
  calls_started_.fetch_add(1, std::memory_order_relaxed);
  return Serve<InferCall>(*auth_, ctx, in, out, [&](InferCall& call) {
    const InferRequestView& request = call.request();
    // The call (and with it the request bytes the inputs borrow from) lives until Reply. The
    // callback captures the model's name and version, never its shared_ptr: the last
    // reference to a Model must not be dropped on its own worker thread.
    auto make_on_complete = [&call, max_bytes = limits_.max_message_bytes](
                                const ServedVersion& served) -> OnComplete {
      return [&call, max_bytes, name = served.name, version = served.version,
              batched = HasBatchDimension(*served.model)](InferResult&& result) {
        if (!result.status.ok()) {
          call.Reply(ToGrpcStatus(result.status, call.request().id));
          return;
        }
        grpc::ByteBuffer response;
        const grpc::Status built = AnswerInferRequest(call.request(), name, version, batched,
                                                      result, max_bytes, &response);
        if (!built.ok()) {
          call.Reply(built);
          return;
        }
        call.Reply(std::move(response));
      };
    };
    std::shared_ptr<Model> model;
    uint64_t seq = 0;
    Status s = SubmitInfer(request, ctx->deadline(), make_on_complete, nullptr, &model, &seq);
    if (!s.ok()) {
      call.Reply(ToGrpcStatus(s, request.id));
      return;
    }
    if (seq != 0) call.Track(std::move(model), seq);
  }, &limits_);
}

}  // namespace engine::server
