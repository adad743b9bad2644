// Liveness, readiness, metadata and statistics: answered from the serving table at once.
#include "error_map.h"
#include "codec.h"
#include "inference_service.h"
#include "serve.h"
#include "statistics.h"

namespace engine::server {
namespace {

namespace pb = inference;

constexpr const char* kPlatform = "onnxruntime_onnx";
// Protocol extensions served (ServerMetadata.extensions).
constexpr const char* kExtensions[] = {"classification", "model_configuration",
                                       "model_repository", "statistics", "parameters"};

void Describe(const std::vector<TensorInfo>& tensors,
              google::protobuf::RepeatedPtrField<pb::ModelMetadataResponse::TensorMetadata>* out) {
  for (const auto& t : tensors) {
    auto* m = out->Add();
    m->set_name(t.name);
    m->set_datatype(KServeDatatype(t.type));
    for (int64_t d : t.shape) m->add_shape(d);  // -1 marks a dynamic dimension
  }
}

}  // namespace

grpc::ServerUnaryReactor* InferenceService::ServerLive(Ctx* ctx, const Buf* in, Buf* out) {
  return ServeNow<pb::ServerLiveRequest, pb::ServerLiveResponse>(
      *auth_, ctx, in, out, [](const auto&, pb::ServerLiveResponse* r) {
        r->set_live(true);
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(Ctx* ctx, const Buf* in, Buf* out) {
  return ServeNow<pb::ServerReadyRequest, pb::ServerReadyResponse>(
      *auth_, ctx, in, out, [this](const auto&, pb::ServerReadyResponse* r) {
        r->set_ready(table_->server_ready());
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(Ctx* ctx, const Buf* in, Buf* out) {
  return ServeNow<pb::ModelReadyRequest, pb::ModelReadyResponse>(
      *auth_, ctx, in, out, [this](const pb::ModelReadyRequest& q, pb::ModelReadyResponse* r) {
        ServedVersion served;
        Status s = table_->FindForInference(q.name(), q.version(), &served);
        // Not found or not ready is an answer (false), as in Triton; a bad name is an error.
        if (s.code() == StatusCode::kInvalidInput) return ToGrpcStatus(s, "");
        r->set_ready(s.ok());
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(Ctx* ctx, const Buf* in, Buf* out) {
  return ServeNow<pb::ServerMetadataRequest, pb::ServerMetadataResponse>(
      *auth_, ctx, in, out, [this](const auto&, pb::ServerMetadataResponse* r) {
        r->set_name(info_.server_name);
        r->set_version(info_.server_version);
        for (const char* e : kExtensions) r->add_extensions(e);
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(Ctx* ctx, const Buf* in, Buf* out) {
  return ServeNow<pb::ModelMetadataRequest, pb::ModelMetadataResponse>(
      *auth_, ctx, in, out,
      [this](const pb::ModelMetadataRequest& q, pb::ModelMetadataResponse* r) {
        ServedVersion served;
        Status s = table_->Find(q.name(), q.version(), &served);
        std::vector<int64_t> versions;
        if (s.ok()) s = table_->Versions(q.name(), &versions);
        if (!s.ok()) return ToGrpcStatus(s, "");
        r->set_name(served.name);
        for (int64_t v : versions) r->add_versions(std::to_string(v));
        r->set_platform(kPlatform);
        Describe(served.model->inputs(), r->mutable_inputs());
        Describe(served.model->outputs(), r->mutable_outputs());
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* InferenceService::ModelStatistics(Ctx* ctx, const Buf* in, Buf* out) {
  return ServeNow<pb::ModelStatisticsRequest, pb::ModelStatisticsResponse>(
      *auth_, ctx, in, out,
      [this](const pb::ModelStatisticsRequest& q, pb::ModelStatisticsResponse* r) {
        std::vector<ServedVersion> selected;
        if (q.name().empty()) {
          selected = table_->List();  // every version of every model
        } else if (q.version().empty()) {
          std::vector<int64_t> versions;
          Status s = table_->Versions(q.name(), &versions);
          if (!s.ok()) return ToGrpcStatus(s, "");
          for (int64_t v : versions) {
            ServedVersion served;
            if (table_->Find(q.name(), std::to_string(v), &served).ok()) {
              selected.push_back(std::move(served));
            }
          }
        } else {
          ServedVersion served;
          Status s = table_->Find(q.name(), q.version(), &served);
          if (!s.ok()) return ToGrpcStatus(s, "");
          selected.push_back(std::move(served));
        }
        for (const auto& served : selected) {
          FillModelStatistics(served.name, served.version, served.model->Stats(),
                              r->add_model_stats());
        }
        return grpc::Status::OK;
      });
}

}  // namespace engine::server
