// The ModelInfer messages as gRPC carries them: a request received as bytes and read in place,
// and a response written straight into the one slice gRPC sends.
#pragma once

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>
#include <grpcpp/support/status.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "codec.h"
#include "grpc_service.pb.h"
#include "request.h"
#include "server_limits.h"

namespace engine::server {

// One received ModelInferRequest. The view points into this object's bytes (one slice, held
// here) or, when the fast reader declined (infer_wire.h), into the protobuf message parsed
// from them; either way it lives as long as this object.
class ReceivedInferRequest {
 public:
  // INVALID_ARGUMENT when the bytes are not a ModelInferRequest or ask for more than
  // `limits` allow (checked before parsing).
  grpc::Status Parse(const grpc::ByteBuffer& in, const ServerLimits& limits);
  const InferRequestView& view() const { return view_; }

 private:
  grpc::Slice bytes_;
  std::unique_ptr<inference::ModelInferRequest> message_;  // only when protobuf parsed it
  InferRequestView view_;
};

// Sets *out to the serialized ModelInferResponse for a successful `result`, as one slice.
// With `in_stream`, it is wrapped as the infer_response of a ModelStreamInferResponse; with
// `final_flag` too, the response carries the bool parameter "triton_final_response" = true.
// A response over `max_bytes` (the server's --max-message-bytes) is not built: the result is
// RESOURCE_EXHAUSTED naming both sizes, so that a stream answers it in band and stays open
// (gRPC would end the whole stream on a message over its send limit).
grpc::Status InferResponseBuffer(std::string_view model_name, int64_t model_version,
                                 std::string_view id, const InferResult& result,
                                 int64_t max_bytes, grpc::ByteBuffer* out,
                                 bool in_stream = false, bool final_flag = false);

// The answer to `request` for its successful `result`: the request's classification
// parameters applied (classification.h; `batched`: the model has a batch dimension, as
// Triton's max_batch_size > 0), then InferResponseBuffer with the request's id (and, in a
// stream, the final-response flag it asked for). kInvalidInput's status for a classification
// of a BOOL or BYTES output.
grpc::Status AnswerInferRequest(const InferRequestView& request, std::string_view model_name,
                                int64_t model_version, bool batched, InferResult& result,
                                int64_t max_bytes, grpc::ByteBuffer* out, bool in_stream = false);

}  // namespace engine::server
