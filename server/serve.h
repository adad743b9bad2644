// The wrapper every unary handler goes through: token check, parse, then the handler.
#pragma once

#include <string>
#include <utility>

#include "auth.h"
#include "unary_call.h"

namespace engine::server {

// Runs `handler(call)` for an authenticated, well-formed request, else answers the error.
// The handler must Reply exactly once, now or later (e.g. from a completion callback).
// `Call` is a UnaryCall or a class derived from one.
template <typename Call, typename Handler>
grpc::ServerUnaryReactor* Serve(const BearerAuth& auth, grpc::CallbackServerContext* ctx,
                                const grpc::ByteBuffer* in, grpc::ByteBuffer* out,
                                Handler&& handler) {
  using Request = typename Call::RequestType;
  auto* call = new Call(out);
  if (!auth.Allows(*ctx)) {
    call->Reply(grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                             "missing or wrong bearer token (metadata 'authorization')"));
  } else if (!call->Parse(*in)) {
    call->Reply(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                             "malformed request: not a valid " +
                                 Request::descriptor()->full_name() + " message"));
  } else {
    std::forward<Handler>(handler)(*call);
  }
  return call;
}

// For handlers that answer at once: `fn(request, response)` returns the status.
template <typename Request, typename Response, typename Fn>
grpc::ServerUnaryReactor* ServeNow(const BearerAuth& auth, grpc::CallbackServerContext* ctx,
                                   const grpc::ByteBuffer* in, grpc::ByteBuffer* out, Fn&& fn) {
  using Call = UnaryCall<Request, Response>;
  return Serve<Call>(auth, ctx, in, out, [&](Call& call) {
    call.Reply(fn(call.request(), call.response()));
  });
}

}  // namespace engine::server
