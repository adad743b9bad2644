// Finite bounds on what one request may ask of the server, most configurable from
// `engine serve`; a request past a bound is refused before any work is queued for it.
#pragma once

#include <cstdint>

namespace engine::server {

struct ServerLimits {
  // Largest request or response message; gRPC itself answers RESOURCE_EXHAUSTED past it.
  int64_t max_message_bytes = 64 << 20;
  // Inputs and requested outputs per request (INVALID_ARGUMENT past them).
  int max_inputs = 64;
  int max_outputs = 64;
  // Elements per tensor, numeric or BYTES (INVALID_ARGUMENT past it).
  int64_t max_tensor_elements = 1 << 26;
  // Requests one ModelStreamInfer stream may have in the engine at once; reading pauses there.
  int max_stream_in_flight = 256;
  // Not exposed by `engine serve`: bounds no real request comes near, checked before a
  // request is parsed so that a small message cannot ask for a large parse (a 60 MB message
  // of empty inputs took 2.2 GB and 5 s before this check). Parameters count per map.
  int max_parameters = 64;
  int max_tensor_rank = 64;
  // BYTES elements per tensor: each becomes a string of its own (about 32 bytes before its
  // contents), so 4-byte empty elements would otherwise grow a 64 MB message eightfold.
  int64_t max_string_elements = 1 << 20;
};

}  // namespace engine::server
