// ModelStreamInfer: many inferences on one bidirectional stream.
//
// Reads continue while earlier requests run (up to limits.max_stream_in_flight in the engine,
// then reading pauses): the next read starts as soon as a request is placed in the model
// (queued, or holding the instance it then runs on this thread), so that requests pipelined
// on one stream reach the model in order, queue behind a running one and are batched
// together. Responses are written in completion order, one write at a time. A failed request
// answers with `error_message` and its id; the stream stays open. The stream finishes once
// the client half-closed and every request has been answered. When the client cancels the
// stream (or its deadline passes), its requests still queued in the engine are cancelled:
// they never run.
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_set>
#include <utility>
#include <vector>

#include "classification.h"
#include "error_map.h"
#include "infer_message.h"
#include "inference_service.h"
#include "unary_call.h"

namespace engine::server {
namespace {

using inference::ModelStreamInferResponse;

// One request read from the stream; the core request's inputs borrow from it (keepalive).
struct StreamItem {
  ReceivedInferRequest request;
  // Where it was queued, for OnCancel; set once Submit returned, under the stream's mutex.
  // A weak reference: the stream must not keep an unloaded model alive.
  std::weak_ptr<Model> model;
  uint64_t seq = 0;
};

class StreamInferCall final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                              public DrainableStream {
 public:
  StreamInferCall(InferenceService* service, grpc::CallbackServerContext* ctx)
      : service_(service), ctx_(ctx) {
    if (!service_->auth().Allows(*ctx_)) {
      finished_ = true;
      Finish(Unauthenticated());
      return;
    }
    registered_ = service_->AddStream(this);
    if (!registered_) {
      finished_ = true;
      Finish(ShuttingDown());
      return;
    }
    reading_ = true;
    StartRead(&read_buffer_);
  }

  void BeginDrain() override {
    Act(Decide([this] { draining_ = true; }));
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed, or the call ended
      Act(Decide([this] { reads_done_ = true; reading_ = false; }));
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Drained while this read was outstanding: the stream has already been finished.
      if (finished_) return;
    }
    auto item = std::make_shared<StreamItem>();
    const grpc::Status parsed = item->request.Parse(read_buffer_, service_->limits());
    read_buffer_.Clear();  // the item holds its own bytes: the buffer is free for the next read
    if (!parsed.ok()) {
      Respond(ErrorResponse(parsed, nullptr));
      Act(Decide([this] { ContinueReading(); }));
      return;
    }
    // Counted in flight before the next read starts (in Submit), which may complete on
    // another thread while this request still runs inline here.
    Act(Decide([this] { ++in_flight_; }));
    Submit(std::move(item));
  }

  void OnWriteDone(bool ok) override {
    Act(Decide([this, ok] {
      writing_ = false;
      if (!ok) {
        write_failed_ = true;  // the client is gone: drop what is left
        writes_.clear();
      }
    }));
  }

  // The client cancelled the stream or its deadline passed: no one reads the answers, so the
  // requests still queued are taken out (each then completes as cancelled; a request already
  // running finishes). Requests submitted from now on are cancelled as soon as they are queued.
  void OnCancel() override {
    std::vector<std::pair<std::weak_ptr<Model>, uint64_t>> queued;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      cancelled_ = true;
      for (const StreamItem* item : submitted_) {
        if (item->seq != 0) queued.emplace_back(item->model, item->seq);
      }
    }
    // Outside the mutex: Cancel completes the request here, and its callback takes the mutex.
    for (const auto& [weak, seq] : queued) {
      if (std::shared_ptr<Model> model = weak.lock()) model->Cancel(seq);
    }
  }

  void OnDone() override {
    if (registered_) service_->RemoveStream(this);
    delete this;
  }

 private:
  // What to do once the mutex is released: gRPC calls are never made under it.
  struct Action {
    bool read = false;
    bool write = false;
    bool finish = false;
    bool drained = false;  // finish as UNAVAILABLE: the server stopped the stream
  };

  static grpc::Status ShuttingDown() {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "the server is shutting down; open a new stream elsewhere");
  }

  void Submit(std::shared_ptr<StreamItem> item) {
    const InferRequestView& request = item->request.view();
    // Captures the model's name and version, never its shared_ptr: the last reference to a
    // Model must not be dropped on its own worker thread.
    auto make_on_complete = [this, item](const ServedVersion& served) {
      return InferenceService::OnComplete(
          [this, item, name = served.name, version = served.version,
           batched = HasBatchDimension(*served.model)](InferResult&& result) {
            const InferRequestView& answered = item->request.view();
            grpc::ByteBuffer response;
            const grpc::Status built =
                result.status.ok()
                    ? AnswerInferRequest(answered, name, version, batched, result,
                                         service_->limits().max_message_bytes, &response,
                                         /*in_stream=*/true)
                    : ToGrpcStatus(result.status, answered.id);
            Respond(built.ok() ? std::move(response) : ErrorResponse(built, &answered),
                    /*completes_request=*/true, item.get());
          });
    };
    {
      std::lock_guard<std::mutex> lock(mutex_);
      submitted_.insert(item.get());  // before Submit: on_complete may run before it returns
    }
    // As ModelInfer: an idle model runs the request on this gRPC thread (no hand-off to a
    // worker and back); requests read meanwhile queue and run next, as one batch. The next
    // read starts once this request is placed, not before: started earlier, a request read
    // behind it could be submitted first from another gRPC thread (this one preempted) and
    // take the idle instance, and requests pipelined behind a long one would run one by one.
    bool read_started = false;
    auto start_next_read = [this, &read_started] {
      if (read_started) return;  // a retry after a reload places the request again
      read_started = true;
      Act(Decide([this] { ContinueReading(); }));
    };
    std::shared_ptr<Model> model;
    uint64_t seq = 0;
    Status s = service_->SubmitInfer(request, ctx_->deadline(), make_on_complete, item, &model,
                                     &seq, start_next_read);
    start_next_read();  // when the request never reached a model (its error is answered below)
    if (!s.ok()) {
      Respond(ErrorResponse(ToGrpcStatus(s, request.id), &request), /*completes_request=*/true,
              item.get());
      return;
    }
    bool cancel_now = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Still in the set: not answered yet (Respond takes an answered request out).
      if (seq != 0 && submitted_.count(item.get()) != 0) {
        item->model = model;
        item->seq = seq;
        cancel_now = cancelled_;
      }
    }
    if (cancel_now) model->Cancel(seq);
  }

  // A ModelStreamInferResponse with the error, and the request's id, model and version.
  static grpc::ByteBuffer ErrorResponse(const grpc::Status& status,
                                        const InferRequestView* request) {
    ModelStreamInferResponse response;
    response.set_error_message(status.error_message());
    if (request != nullptr) {
      auto* r = response.mutable_infer_response();
      r->set_id(std::string(request->id));
      r->set_model_name(std::string(request->model_name));
      r->set_model_version(std::string(request->model_version));
      if (FinalResponseFlagRequested(*request)) {
        (*r->mutable_parameters())[std::string(kFinalResponseParameter)].set_bool_param(true);
      }
    }
    grpc::ByteBuffer buffer;
    SerializeToByteBuffer(response, &buffer);  // never fails for this message
    return buffer;
  }

  // Queues a response; `completes_request` when it ends one of the in-flight requests, and
  // `item` when that request was submitted to a model.
  void Respond(grpc::ByteBuffer buffer, bool completes_request = false,
               const StreamItem* item = nullptr) {
    Act(Decide([&] {
      if (!write_failed_) writes_.emplace_back().Swap(&buffer);  // ByteBuffer has no move
      if (item != nullptr) submitted_.erase(item);
      if (completes_request) {
        --in_flight_;
        if (!reading_ && !reads_done_ && in_flight_ < service_->limits().max_stream_in_flight) {
          reading_ = true;  // resume after a pause at the in-flight bound
          read_now_ = true;
        }
      }
    }));
  }

  // After a read: starts the next one unless the in-flight bound pauses reading (Respond
  // resumes it). Under the mutex.
  void ContinueReading() {
    reading_ = in_flight_ < service_->limits().max_stream_in_flight;
    read_now_ = reading_;
  }

  // Applies `change` under the mutex, then picks the next gRPC operations.
  template <typename Change>
  Action Decide(Change&& change) {
    std::lock_guard<std::mutex> lock(mutex_);
    change();
    Action a;
    if (finished_) {  // no read or write may start after Finish
      writes_.clear();
      return a;
    }
    a.read = read_now_;
    read_now_ = false;
    if (!writing_ && !writes_.empty()) {
      writing_ = true;
      current_write_.Swap(&writes_.front());
      writes_.pop_front();
      a.write = true;
    }
    if ((reads_done_ || draining_) && in_flight_ == 0 && !writing_ && writes_.empty() &&
        !finished_) {
      finished_ = true;
      a.finish = true;
      a.drained = !reads_done_;
    }
    return a;
  }

  void Act(const Action& a) {
    if (a.write) StartWrite(&current_write_);
    if (a.read) StartRead(&read_buffer_);
    if (a.finish) Finish(a.drained ? ShuttingDown() : grpc::Status::OK);
  }

  InferenceService* service_;
  grpc::CallbackServerContext* ctx_;
  bool registered_ = false;  // in the service's set of open streams (set once, before reads)
  grpc::ByteBuffer read_buffer_;     // owned by the one outstanding read
  grpc::ByteBuffer current_write_;   // owned by the one outstanding write
  std::mutex mutex_;
  std::deque<grpc::ByteBuffer> writes_;  // GUARDED_BY(mutex_)
  int in_flight_ = 0;                    // GUARDED_BY(mutex_)
  bool reading_ = false;                 // GUARDED_BY(mutex_): a read is outstanding
  bool read_now_ = false;                // GUARDED_BY(mutex_): start one after unlocking
  bool reads_done_ = false;              // GUARDED_BY(mutex_)
  bool writing_ = false;                 // GUARDED_BY(mutex_)
  bool write_failed_ = false;            // GUARDED_BY(mutex_)
  bool finished_ = false;                // GUARDED_BY(mutex_)
  bool draining_ = false;                // GUARDED_BY(mutex_)
  bool cancelled_ = false;               // GUARDED_BY(mutex_): OnCancel ran
  // Requests submitted to a model and not answered yet (OnCancel cancels the queued ones).
  std::unordered_set<const StreamItem*> submitted_;  // GUARDED_BY(mutex_)
};

}  // namespace

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* InferenceService::ModelStreamInfer(
    Ctx* ctx) {
  calls_started_.fetch_add(1, std::memory_order_relaxed);
  return new StreamInferCall(this, ctx);
}

void InferenceService::BeginDrain() {
  std::lock_guard<std::mutex> lock(streams_mutex_);
  draining_ = true;
  // Under the mutex: a stream leaves the set (RemoveStream, in OnDone) before it is deleted.
  // A stream's BeginDrain may call Finish; gRPC never runs a bidi reactor's OnDone inside
  // Finish (it is not inlineable), so RemoveStream cannot be entered from here.
  for (DrainableStream* stream : streams_) stream->BeginDrain();
}

bool InferenceService::AddStream(DrainableStream* stream) {
  std::lock_guard<std::mutex> lock(streams_mutex_);
  if (draining_) return false;
  streams_.insert(stream);
  return true;
}

void InferenceService::RemoveStream(DrainableStream* stream) {
  std::lock_guard<std::mutex> lock(streams_mutex_);
  streams_.erase(stream);
}

}  // namespace engine::server
