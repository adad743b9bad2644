// Protobuf <-> tensors: the only place the server converts between KServe v2 messages and the
// core's HostTensor. The BYTES wire format (each element prefixed by its length as a 4-byte
// little-endian unsigned integer) is read and written here and nowhere else.
//
// Numeric inputs sent in `raw_input_contents` are not copied: their HostTensor borrows the
// request message's buffer, which the caller keeps alive until the request completes (the
// batch gather is the first copy). Typed `contents` and BYTES elements are copied into
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

// What a ModelInferRequest asks for, in the core's terms.
struct DecodedRequest {
  std::vector<std::pair<std::string, HostTensor>> inputs;
  std::vector<std::string> output_names;  // empty: every output
  int priority = 0;                       // the core's scale: higher runs first
  int64_t timeout_us = -1;                // -1: the model's default
};

// Decodes inputs, requested outputs and the "priority" / "timeout" parameters. Checks the
// datatypes, shapes, element counts against `limits`, raw buffer count and sizes, and BYTES
// framing; checking against the model's signature is the core's job (validate.h). Returns
// kInvalidInput, never retryable, with a message that names the tensor.
Status DecodeInferRequest(const inference::ModelInferRequest& request, const ServerLimits& limits,
                          DecodedRequest* out);

// Appends one output tensor per entry to `response`: name, datatype, shape and its data as
// raw_output_contents (the one copy out of the engine's buffers).
void EncodeInferOutputs(const std::vector<std::pair<std::string, HostTensor>>& outputs,
                        inference::ModelInferResponse* response);

// BYTES framing. Decode fails (kInvalidInput naming `tensor`) unless `raw` holds exactly
// `count` length-prefixed elements.
Status DecodeBytesElements(std::string_view tensor, std::string_view raw, int64_t count,
                           std::vector<std::string>* out);
void AppendBytesElements(const std::vector<std::string>& elements, std::string* out);

}  // namespace engine::server
