// The wrapper every unary handler goes through: token check, parse, then the handler.
#pragma once

#include <string>
#include <utility>

#include "auth.h"
#include "unary_call.h"

namespace engine::server {

// Runs `handler(call)` for an authenticated, well-formed request, else answers the error.
// The handler must Reply exactly once, now or later (e.g. from a completion callback).
// `Call` is built as Call(out, call_args...); its Parse(in) returns the status to answer a
// request it cannot take with (INVALID_ARGUMENT for malformed bytes).
template <typename Call, typename Handler, typename... CallArgs>
grpc::ServerUnaryReactor* Serve(const BearerAuth& auth, grpc::CallbackServerContext* ctx,
                                const grpc::ByteBuffer* in, grpc::ByteBuffer* out,
                                Handler&& handler, CallArgs&&... call_args) {
  auto* call = new Call(out, std::forward<CallArgs>(call_args)...);
  if (!auth.Allows(*ctx)) {
    call->Reply(grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                             "missing or wrong bearer token (metadata 'authorization')"));
    return call;
  }
  const grpc::Status parsed = call->Parse(*in);
  if (!parsed.ok()) {
    call->Reply(parsed);
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
