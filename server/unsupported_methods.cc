#include "unsupported_methods.h"

#include "names.h"

namespace engine::server {

namespace {

// A reactor that ends the call as soon as it starts; deletes itself when gRPC is done with it.
class Refusal final : public grpc::ServerGenericBidiReactor {
 public:
  explicit Refusal(const std::string& message) {
    Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, message));
  }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerGenericBidiReactor* UnsupportedMethods::CreateReactor(
    grpc::GenericCallbackServerContext* ctx) {
  return new Refusal(MessageFor(ctx->method()));
}

std::string UnsupportedMethods::MessageFor(std::string_view method) {
  constexpr std::string_view kService = "/inference.GRPCInferenceService/";
  if (method.substr(0, kService.size()) != kService) {
    return "method " + QuoteForMessage(method.substr(0, 200)) +
           " is not served here; this server serves inference.GRPCInferenceService (KServe "
           "v2), grpc.health.v1.Health and, without a token, server reflection";
  }
  const std::string_view name = method.substr(kService.size());
  if (name.find("SharedMemory") != std::string_view::npos) {
    return std::string(name) +
           ": shared memory is not supported by this server; send the tensors in the request "
           "(raw_input_contents) and read them from the response";
  }
  if (name == "TraceSetting") {
    return "TraceSetting: tracing is not supported by this server; per-request timings are in "
           "ModelStatistics and the Prometheus metrics";
  }
  if (name == "LogSettings") {
    return "LogSettings: log settings are not changed over gRPC; start engine serve with "
           "--log-json for JSON lines";
  }
  return std::string(QuoteForMessage(name.substr(0, 200))) +
         " is not a method this server implements (see ServerMetadata for its extensions)";
}

}  // namespace engine::server
