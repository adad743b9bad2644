#include "infer_message.h"

#include <grpc/slice.h>

#include <charconv>
#include <string_view>

#include "classification.h"
#include "error_map.h"
#include "infer_wire.h"
#include "wire_format.h"

namespace engine::server {

grpc::Status ReceivedInferRequest::Parse(const grpc::ByteBuffer& in, const ServerLimits& limits) {
  const grpc::Status malformed(grpc::StatusCode::INVALID_ARGUMENT,
                               "malformed request: not a valid inference.ModelInferRequest "
                               "message");
  // Messages of a few KB arrive as one slice, referenced here without a copy; larger ones
  // are joined into one (the only copy of their raw contents before the batch gather).
  if (!in.TrySingleSlice(&bytes_).ok() && !in.DumpToSingleSlice(&bytes_).ok()) return malformed;
  const std::string_view bytes(reinterpret_cast<const char*>(bytes_.begin()), bytes_.size());
  const Status bounded = CheckInferRequestBounds(bytes, limits);
  if (!bounded.ok()) return ToGrpcStatus(bounded, "");
  if (ReadInferRequest(bytes, &view_)) return grpc::Status::OK;
  message_ = std::make_unique<inference::ModelInferRequest>();
  if (!message_->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return malformed;
  ViewInferRequest(*message_, &view_);
  return grpc::Status::OK;
}

grpc::Status InferResponseBuffer(std::string_view model_name, int64_t model_version,
                                 std::string_view id, const InferResult& result,
                                 int64_t max_bytes, grpc::ByteBuffer* out_buffer,
                                 bool in_stream, bool final_flag) {
  char version[24];
  const auto printed = std::to_chars(version, version + sizeof(version), model_version);
  InferResponseFields fields;
  fields.model_name = model_name;
  fields.model_version = std::string_view(version, static_cast<size_t>(printed.ptr - version));
  fields.id = id;
  fields.outputs = &result.outputs;
  // parameters = 4: one map entry {key = 1, value = 2: InferParameter{bool_param = 1: true}},
  // after the other fields (a parser takes fields in any order).
  static constexpr char kTrue[] = {0x08, 0x01};
  const std::string_view true_param(kTrue, sizeof(kTrue));
  const size_t entry = wire::LengthDelimitedSize(kFinalResponseParameter.size()) +
                       wire::LengthDelimitedSize(true_param.size());
  const size_t size =
      InferResponseSize(fields) + (final_flag ? wire::LengthDelimitedSize(entry) : 0);
  // ModelStreamInferResponse: infer_response = 2, before it an empty error_message (omitted).
  const size_t total = in_stream ? wire::LengthDelimitedSize(size) : size;
  if (total > static_cast<size_t>(max_bytes)) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "the response would be " + std::to_string(total) +
                            " bytes, more than the server's limit of " +
                            std::to_string(max_bytes) +
                            " bytes (--max-message-bytes); request fewer rows or outputs");
  }
  grpc_slice slice = grpc_slice_malloc(total);
  char* out = reinterpret_cast<char*>(GRPC_SLICE_START_PTR(slice));
  if (in_stream) out = wire::WriteLengthPrefix(2, size, out);
  out = WriteInferResponse(fields, out);
  if (final_flag) {
    out = wire::WriteLengthPrefix(4, entry, out);
    out = wire::WriteLengthDelimited(1, kFinalResponseParameter, out);
    wire::WriteLengthDelimited(2, true_param, out);
  }
  grpc::Slice owned(slice, grpc::Slice::STEAL_REF);
  grpc::ByteBuffer built(&owned, 1);
  out_buffer->Swap(&built);  // this gRPC's ByteBuffer has no move
  return grpc::Status::OK;
}

grpc::Status AnswerInferRequest(const InferRequestView& request, std::string_view model_name,
                                int64_t model_version, bool batched, InferResult& result,
                                int64_t max_bytes, grpc::ByteBuffer* out, bool in_stream) {
  if (!request.output_parameters.empty()) {
    std::vector<int64_t> counts;
    Status s = ClassCounts(request, &counts);  // decoded before: it only fails there
    if (s.ok()) s = Classify(counts, batched, &result);
    if (!s.ok()) return ToGrpcStatus(s, request.id);
  }
  return InferResponseBuffer(model_name, model_version, request.id, result, max_bytes, out,
                             in_stream, in_stream && FinalResponseFlagRequested(request));
}

}  // namespace engine::server
