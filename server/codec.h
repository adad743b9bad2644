// Protobuf <-> tensors: the only place the server converts between KServe v2 messages and the
// core's HostTensor. The BYTES wire format (each element prefixed by its length as a 4-byte
// little-endian unsigned integer) is read and written here and nowhere else.
//
// Numeric inputs sent in `raw_input_contents` are not copied: their HostTensor borrows the
// request's bytes, which the caller keeps alive until the request completes (the batch gather
// is the first copy). Typed `contents` and BYTES elements are copied into
// tensors that own their memory. Assumes a little-endian host (x86-64, AArch64).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "grpc_service.pb.h"
#include "server_limits.h"
#include "status.h"
#include "tensor.h"

namespace engine::server {

// KServe datatype name ("FP32", "BYTES", ...) of a type; "" for kUndefined.
const char* KServeDatatype(ElementType type);
// The type for a KServe datatype name; kUndefined for unknown or unsupported ones (BF16).
ElementType ElementTypeFromKServe(std::string_view datatype);

// A ModelInferRequest read in place: every view points into the message's bytes (the fast
// reader, infer_wire.h) or into a parsed message (ViewInferRequest), which must outlive it.
struct InferParameterView {
  std::string_view key;
  inference::InferParameter::ParameterChoiceCase choice =
      inference::InferParameter::PARAMETER_CHOICE_NOT_SET;
  int64_t int64_value = 0;    // kInt64Param
  uint64_t uint64_value = 0;  // kUint64Param
  bool bool_value = false;    // kBoolParam
};

struct InferInputView {
  std::string_view name;
  std::string_view datatype;
  std::vector<int64_t> shape;
  const inference::InferTensorContents* contents = nullptr;  // typed contents, when present
  std::vector<InferParameterView> parameters;  // the input's own (protobuf path only)
};

struct InferRequestView {
  std::string_view model_name;
  std::string_view model_version;
  std::string_view id;
  std::vector<InferParameterView> parameters;  // one per key
  std::vector<InferInputView> inputs;
  std::vector<std::string_view> output_names;
  // Each requested output's parameters, parallel to output_names; empty when none has any
  // (the fast reader declines outputs with parameters, so only the protobuf path fills it).
  std::vector<std::vector<InferParameterView>> output_parameters;
  std::vector<std::string_view> raw_input_contents;
};

// The view of a message protobuf parsed (the path for whatever the fast reader declines).
void ViewInferRequest(const inference::ModelInferRequest& message, InferRequestView* out);

// What a ModelInferRequest asks for, in the core's terms.
struct DecodedRequest {
  std::vector<std::pair<std::string, HostTensor>> inputs;
  std::vector<std::string> output_names;  // empty: every output
  int priority = 0;                       // the core's scale: higher runs first
  int64_t timeout_us = -1;                // -1: the model's default
};

// Decodes inputs, requested outputs and the "priority" / "timeout" parameters, and checks
// the outputs' "classification" (classification.h). Shared-memory parameters are refused by
// name: this server has no shared memory, and ignoring them would answer wrongly. Checks the
// datatypes, shapes, element counts against `limits`, raw buffer count and sizes, and BYTES
// framing; checking against the model's signature is the core's job (validate.h). How many
// inputs, outputs and parameters a request has is bounded before it is parsed
// (CheckInferRequestBounds, infer_wire.h), not here. Returns kInvalidInput, never retryable,
// with a message that names the tensor.
Status DecodeInferRequest(const InferRequestView& request, const ServerLimits& limits,
                          DecodedRequest* out);

// Whether a stream request asks, with the bool parameter "triton_enable_empty_final_response"
// (tritonclient's enable_empty_final_response), for each response to carry the parameter
// "triton_final_response". This engine's models answer each request once, so that response
// is always the final one. DecodeInferRequest refuses a non-bool value.
bool FinalResponseFlagRequested(const InferRequestView& request);
inline constexpr std::string_view kEnableFinalResponseParameter =
    "triton_enable_empty_final_response";
inline constexpr std::string_view kFinalResponseParameter = "triton_final_response";

// BYTES framing. Decode fails (kInvalidInput naming `tensor`) unless `raw` holds exactly
// `count` length-prefixed elements.
Status DecodeBytesElements(std::string_view tensor, std::string_view raw, int64_t count,
                           std::vector<std::string>* out);
// Encode: the framed size of `elements`, and the writer of exactly that many bytes at `out`.
size_t BytesElementsSize(const std::vector<std::string>& elements);
char* WriteBytesElements(const std::vector<std::string>& elements, char* out);

}  // namespace engine::server
