// Model config and repository RPCs: checked here, answered by the Python control plane on
// the ControlExecutor's thread (never on a gRPC thread, never for inference).
#include <google/protobuf/util/json_util.h>

#include <map>
#include <string>

#include "error_map.h"
#include "inference_service.h"
#include "names.h"
#include "serve.h"

namespace engine::server {
namespace {

namespace pb = inference;

grpc::Status ShuttingDown() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      "the server is shutting down; retry on another replica");
}

grpc::Status NoControlPlane() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      "this server has no model repository control plane");
}

grpc::Status CheckRepositoryName(const std::string& repository) {
  if (repository.empty()) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::NOT_FOUND,
                      "unknown repository " + QuoteForMessage(repository) +
                          "; this server has one repository: leave repository_name empty");
}

grpc::Status CheckName(const std::string& name) {
  std::string problem = ModelNameProblem(name);
  if (problem.empty()) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      "invalid model name " + QuoteForMessage(name) + ": " + problem);
}

// Runs `task(call)` on the control thread; `task` returns the status to reply with.
template <typename Call, typename Task>
void RunOnControl(ControlExecutor* executor, ControlPlane* control, Call& call, Task task) {
  if (control == nullptr) {
    call.Reply(NoControlPlane());
    return;
  }
  if (!executor->Post([&call, task]() mutable { call.Reply(task(call)); })) {
    call.Reply(ShuttingDown());
  }
}

}  // namespace

grpc::ServerUnaryReactor* InferenceService::ModelConfig(Ctx* ctx, const Buf* in, Buf* out) {
  using Call = UnaryCall<pb::ModelConfigRequest, pb::ModelConfigResponse>;
  return Serve<Call>(*auth_, ctx, in, out, [this](Call& call) {
    ServedVersion served;
    Status s = table_->Find(call.request().name(), call.request().version(), &served);
    if (!s.ok()) {
      call.Reply(ToGrpcStatus(s, ""));
      return;
    }
    RunOnControl(executor_, control_, call,
                 [control = control_, name = served.name, version = served.version](Call& c) {
                   std::string json;
                   grpc::Status status = control->ModelConfigJson(name, version, &json);
                   if (!status.ok()) return status;
                   google::protobuf::util::JsonParseOptions options;
                   options.ignore_unknown_fields = true;
                   if (!google::protobuf::util::JsonStringToMessage(
                            json, c.response()->mutable_config(), options)
                            .ok()) {
                     LogServerError("model config of " + name + " is not valid ModelConfig JSON");
                     return grpc::Status(grpc::StatusCode::INTERNAL,
                                         "the model's configuration could not be encoded");
                   }
                   return grpc::Status::OK;
                 });
  });
}

grpc::ServerUnaryReactor* InferenceService::RepositoryIndex(Ctx* ctx, const Buf* in, Buf* out) {
  using Call = UnaryCall<pb::RepositoryIndexRequest, pb::RepositoryIndexResponse>;
  return Serve<Call>(*auth_, ctx, in, out, [this](Call& call) {
    grpc::Status s = CheckRepositoryName(call.request().repository_name());
    if (!s.ok()) {
      call.Reply(s);
      return;
    }
    RunOnControl(executor_, control_, call, [control = control_](Call& c) {
      std::vector<ControlPlane::IndexEntry> entries;
      grpc::Status status = control->RepositoryIndex(c.request().ready(), &entries);
      for (const auto& e : entries) {
        auto* m = c.response()->add_models();
        m->set_name(e.name);
        m->set_version(e.version);
        m->set_state(e.state);
        m->set_reason(e.reason);
      }
      return status;
    });
  });
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelLoad(Ctx* ctx, const Buf* in,
                                                                Buf* out) {
  using Call = UnaryCall<pb::RepositoryModelLoadRequest, pb::RepositoryModelLoadResponse>;
  return Serve<Call>(*auth_, ctx, in, out, [this](Call& call) {
    const auto& q = call.request();
    grpc::Status s = CheckRepositoryName(q.repository_name());
    if (s.ok()) s = CheckName(q.model_name());
    if (s.ok() && table_->draining()) s = ShuttingDown();
    std::map<std::string, std::string> parameters;
    for (const auto& [key, p] : q.parameters()) {
      if (!s.ok()) break;
      switch (p.parameter_choice_case()) {
        case pb::ModelRepositoryParameter::kStringParam: parameters[key] = p.string_param(); break;
        case pb::ModelRepositoryParameter::kBoolParam:
          parameters[key] = p.bool_param() ? "true" : "false";
          break;
        case pb::ModelRepositoryParameter::kInt64Param:
          parameters[key] = std::to_string(p.int64_param());
          break;
        default:
          s = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                           "load parameter " + QuoteForMessage(key) +
                               ": file uploads (bytes parameters) are not supported");
      }
    }
    if (!s.ok()) {
      call.Reply(s);
      return;
    }
    RunOnControl(executor_, control_, call,
                 [control = control_, name = q.model_name(), parameters](Call&) {
                   return control->LoadModel(name, parameters);
                 });
  });
}

grpc::ServerUnaryReactor* InferenceService::RepositoryModelUnload(Ctx* ctx, const Buf* in,
                                                                  Buf* out) {
  using Call = UnaryCall<pb::RepositoryModelUnloadRequest, pb::RepositoryModelUnloadResponse>;
  return Serve<Call>(*auth_, ctx, in, out, [this](Call& call) {
    const auto& q = call.request();
    grpc::Status s = CheckRepositoryName(q.repository_name());
    if (s.ok()) s = CheckName(q.model_name());
    if (s.ok() && table_->draining()) s = ShuttingDown();
    if (!s.ok()) {
      call.Reply(s);
      return;
    }
    RunOnControl(executor_, control_, call, [control = control_, name = q.model_name()](Call&) {
      return control->UnloadModel(name);
    });
  });
}

}  // namespace engine::server
