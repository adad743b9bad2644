// ModelInferRequest and ModelInferResponse on the wire, without protobuf's message objects.
//
// Parsing into and serializing out of protobuf messages cost about 9 us of CPU per request on
// this machine (a grpc++ echo server doing both against one answering the raw bytes: 50-52
// against 41-42 us per request under h2load), a quarter of the server's own overhead. The
// reader below takes the common form of a request in place (string views into its bytes,
// raw contents included); anything else it declines, and protobuf parses the message instead.
// The writer produces the bytes protobuf would for the same response (pinned by tests).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "codec.h"
#include "server_limits.h"
#include "status.h"
#include "tensor.h"

namespace engine::server {

// Counts inputs, outputs, raw buffers, parameters and each input's dims in the bytes of a
// ModelInferRequest, without parsing it, against `limits` (kInvalidInput past one). Run
// before either parser: a small message must not be able to ask for a large parse. Counting
// stops where the bytes cannot be read; protobuf cannot read past that point either.
Status CheckInferRequestBounds(std::string_view bytes, const ServerLimits& limits);

// Reads `bytes` as a ModelInferRequest into `out` (views into `bytes`). Returns false, without
// judging the bytes, for anything beyond the common form: typed `contents`, input or output
// parameters, unknown fields, non-ASCII strings, a repeated key or value inside one parameter
// entry, or bytes protobuf might read differently. The caller then parses with protobuf,
// which also decides whether the message is malformed.
bool ReadInferRequest(std::string_view bytes, InferRequestView* out);

// What a successful ModelInferResponse holds.
struct InferResponseFields {
  std::string_view model_name;
  std::string_view model_version;
  std::string_view id;
  const std::vector<std::pair<std::string, HostTensor>>* outputs = nullptr;
};

// The serialized size of the response, and the writer of exactly that many bytes at `out`
// (returns the end). Outputs go to raw_output_contents, BYTES with their length prefixes.
size_t InferResponseSize(const InferResponseFields& response);
char* WriteInferResponse(const InferResponseFields& response, char* out);

}  // namespace engine::server
