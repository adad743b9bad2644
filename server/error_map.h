// The one table from engine status codes to gRPC status codes, and the edge's error policy.
//
// Client-caused errors keep the core's message (it names the input and what was expected and
// never holds a path). Failures inside the engine (kExecutionFailed, kInternal, and any code
// a caller should not see) answer with a generic message and the request id; the detail goes
// to the server log under that id. No engine code maps to UNKNOWN.
#pragma once

#include <grpcpp/support/status.h>

#include <string>
#include <string_view>

#include "log.h"
#include "status.h"

namespace engine::server {

// One ERROR line from the server's native code (log.h), with the request id the client got.
inline void LogServerError(std::string_view message, std::string_view request_id = {}) {
  LogLine("ERROR", "engine.server.core", message, request_id);
}

grpc::StatusCode GrpcCodeFor(StatusCode code);

// The gRPC status a client sees for `status`; `request_id` may be empty (one is then made up
// so the log line and the client's message can be matched).
grpc::Status ToGrpcStatus(const Status& status, std::string_view request_id);

// A grpc::StatusCode by its canonical name ("INVALID_ARGUMENT"); INTERNAL for unknown names.
// Used for the Python control plane, which names codes as engine/errors.py's GRPC_STATUS does.
grpc::StatusCode GrpcCodeFromName(std::string_view name);

// A fresh server-side id ("srv-<n>") for requests that came without one.
std::string MakeRequestId();

}  // namespace engine::server
