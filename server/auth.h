// Bearer-token authentication, checked on every RPC of the inference service (health is a
// separate service and stays open, so load balancers can probe without the token).
#pragma once

#include <grpcpp/server_context.h>

#include <string>
#include <string_view>

namespace engine::server {

class BearerAuth {
 public:
  // An empty token turns authentication off.
  explicit BearerAuth(std::string token) : token_(std::move(token)) {}

  bool enabled() const { return !token_.empty(); }

  // True when authentication is off, or the call carries `authorization: Bearer <token>`.
  // The token comparison takes the same time wherever the first difference is.
  bool Allows(const grpc::CallbackServerContext& context) const;

 private:
  std::string token_;
};

// Compares without an early exit (time depends on the lengths only).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace engine::server
