// inference.GRPCInferenceService on the grpc++ callback API.
//
// Handlers are thin: decode (codec.h), call the engine (serving_table.h, model.h), encode.
// Cross-cutting work lives in one place, Serve(): the bearer token, parsing the raw message
// (malformed bytes -> INVALID_ARGUMENT) and the error mapping (error_map.h). ModelInfer and
// ModelStreamInfer run entirely in C++: the response is sent from the batcher's completion
// callback. Control RPCs are handed to the ControlExecutor (Python, off gRPC's threads).
#pragma once

#include <grpcpp/support/server_callback.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "auth.h"
#include "codec.h"
#include "control_executor.h"
#include "control_plane.h"
#include "grpc_service.grpc.pb.h"
#include "inline_run_budget.h"
#include "server_limits.h"
#include "request.h"
#include "serving_table.h"

namespace engine::server {

using Svc = inference::GRPCInferenceService;
// Every method of the service as a raw (ByteBuffer) callback method.
using RawInferenceService = Svc::WithRawCallbackMethod_ServerLive<
    Svc::WithRawCallbackMethod_ServerReady<Svc::WithRawCallbackMethod_ModelReady<
        Svc::WithRawCallbackMethod_ServerMetadata<Svc::WithRawCallbackMethod_ModelMetadata<
            Svc::WithRawCallbackMethod_ModelInfer<Svc::WithRawCallbackMethod_ModelStreamInfer<
                Svc::WithRawCallbackMethod_ModelConfig<Svc::WithRawCallbackMethod_ModelStatistics<
                    Svc::WithRawCallbackMethod_RepositoryIndex<
                        Svc::WithRawCallbackMethod_RepositoryModelLoad<
                            Svc::WithRawCallbackMethod_RepositoryModelUnload<
                                Svc::Service>>>>>>>>>>>>;

struct ServiceInfo {
  std::string server_name = "engine";
  std::string server_version;
};

// An open ModelStreamInfer stream, as the drain sees it.
class DrainableStream {
 public:
  virtual ~DrainableStream() = default;
  // The server is shutting down: the stream answers what it has read, then finishes with
  // UNAVAILABLE instead of waiting for its client to close it. Never blocks.
  virtual void BeginDrain() = 0;
};

class InferenceService final : public RawInferenceService {
 public:
  // Borrows everything; all of it outlives the gRPC server this service is registered with.
  // `control` may be null: the control RPCs then answer UNAVAILABLE.
  InferenceService(ServingTable* table, ControlExecutor* executor, ControlPlane* control,
                   const BearerAuth* auth, ServerLimits limits, ServiceInfo info);

  using Reactor = grpc::ServerUnaryReactor;
  using Ctx = grpc::CallbackServerContext;
  using Buf = grpc::ByteBuffer;

  Reactor* ServerLive(Ctx* ctx, const Buf* in, Buf* out) override;
  Reactor* ServerReady(Ctx* ctx, const Buf* in, Buf* out) override;
  Reactor* ModelReady(Ctx* ctx, const Buf* in, Buf* out) override;
  Reactor* ServerMetadata(Ctx* ctx, const Buf* in, Buf* out) override;
  Reactor* ModelMetadata(Ctx* ctx, const Buf* in, Buf* out) override;
  Reactor* ModelInfer(Ctx* ctx, const Buf* in, Buf* out) override;
  grpc::ServerBidiReactor<Buf, Buf>* ModelStreamInfer(Ctx* ctx) override;
  Reactor* ModelConfig(Ctx* ctx, const Buf* in, Buf* out) override;
  Reactor* ModelStatistics(Ctx* ctx, const Buf* in, Buf* out) override;
  Reactor* RepositoryIndex(Ctx* ctx, const Buf* in, Buf* out) override;
  Reactor* RepositoryModelLoad(Ctx* ctx, const Buf* in, Buf* out) override;
  Reactor* RepositoryModelUnload(Ctx* ctx, const Buf* in, Buf* out) override;

  // Shared by ModelInfer and ModelStreamInfer: finds the model, decodes the request and
  // builds the core request (on_complete left to the caller). Tensors borrow from `request`.
  Status PrepareInfer(const InferRequestView& request,
                      std::chrono::system_clock::time_point deadline, ServedVersion* served,
                      std::unique_ptr<InferRequest>* out) const;

  // PrepareInfer, then Submit to the model found, with the on_complete `make_on_complete`
  // returns for it (called with the ServedVersion) and `keepalive`. A model closed between
  // the lookup and Submit (a reload replaced it, and the old one was closed) refuses the
  // request as unavailable: then, when the table now serves another model for the request,
  // the request is submitted there instead (its callback was not called for the refusal).
  // Returns the error to answer with when nothing was submitted (on_complete never runs);
  // else OK, and `*model` / `*seq` where the request was queued (seq 0: answered already).
  // `on_admitted`, when set, becomes the core request's (see InferRequest): a retry after a
  // reload calls it again, so it must tolerate that.
  using OnComplete = std::function<void(InferResult&&)>;
  Status SubmitInfer(const InferRequestView& request,
                     std::chrono::system_clock::time_point deadline,
                     const std::function<OnComplete(const ServedVersion&)>& make_on_complete,
                     std::shared_ptr<const void> keepalive, std::shared_ptr<Model>* model,
                     uint64_t* seq, const std::function<void()>& on_admitted = {}) const;

  const BearerAuth& auth() const { return *auth_; }
  const ServerLimits& limits() const { return limits_; }

  // Drains every open stream, and streams opened from now on (see DrainableStream): an idle
  // stream would otherwise hold the shutdown for the whole grace period.
  void BeginDrain();
  // ModelInfer and ModelStreamInfer calls started so far: what a drain watches to tell when
  // clients have stopped sending here.
  uint64_t InferenceCallsStarted() const { return calls_started_.load(std::memory_order_relaxed); }
  // A stream registers itself while open; false (not added) once the server drains.
  bool AddStream(DrainableStream* stream);
  void RemoveStream(DrainableStream* stream);

 private:
  ServingTable* table_;
  ControlExecutor* executor_;
  ControlPlane* control_;
  const BearerAuth* auth_;
  ServerLimits limits_;
  ServiceInfo info_;
  // Taken by SubmitInfer for a request that may run on its gRPC thread (mutable: SubmitInfer
  // is const, and the budget is the one thing it changes here).
  mutable InlineRunBudget inline_runs_{InlineRunBudget::ForThisMachine()};
  std::atomic<uint64_t> calls_started_{0};
  std::mutex streams_mutex_;
  std::unordered_set<DrainableStream*> streams_;  // GUARDED_BY(streams_mutex_)
  bool draining_ = false;                         // GUARDED_BY(streams_mutex_)
};

// The answer to a call without the right bearer token.
grpc::Status Unauthenticated();

}  // namespace engine::server
