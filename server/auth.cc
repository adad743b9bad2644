#include "auth.h"

namespace engine::server {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Walk the expected length whatever `a` holds, so the time does not reveal a prefix.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < b.size(); ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

namespace {

// The scheme name is case-insensitive (RFC 9110); "Bearer " and "bearer " both match.
bool SchemeMatches(std::string_view prefix) {
  static constexpr std::string_view kLower = "bearer ";
  for (size_t i = 0; i < kLower.size(); ++i) {
    char c = prefix[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kLower[i]) return false;
  }
  return true;
}

}  // namespace

bool BearerAuth::Allows(const grpc::CallbackServerContext& context) const {
  if (token_.empty()) return true;
  static constexpr std::string_view kScheme = "Bearer ";
  const auto& metadata = context.client_metadata();
  auto range = metadata.equal_range("authorization");
  bool allowed = false;
  for (auto it = range.first; it != range.second; ++it) {
    std::string_view value(it->second.data(), it->second.size());
    if (value.size() < kScheme.size() || !SchemeMatches(value.substr(0, kScheme.size()))) continue;
    allowed |= ConstantTimeEquals(value.substr(kScheme.size()), token_);
  }
  return allowed;
}

}  // namespace engine::server
