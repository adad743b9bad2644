// The model name and version grammar at the gRPC edge: the same rules as engine/names.py.
//
// Every RPC that carries a model name checks it here before any lookup, so a name that could
// reach the filesystem (`../x`, `/etc`, `a/.`, `%2e%2e`, NUL) is refused as invalid rather
// than reported "not found" after a search.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace engine::server {

inline constexpr size_t kMaxModelNameLength = 128;
inline constexpr int64_t kMaxModelVersion = 2147483647;

// Empty when `name` follows the grammar, else the rule it breaks (for the error message).
// NAME := [A-Za-z0-9_] [A-Za-z0-9_.-]*, 1..128 characters, ASCII, nothing decoded.
std::string ModelNameProblem(std::string_view name);

// Parses a version: "" gives 0 (the model's default version); otherwise a decimal integer in
// [1, 2147483647] without sign or leading zeros. Returns false for anything else.
bool ParseModelVersion(std::string_view text, int64_t* version);

// Quotes a client-supplied string for an error message: printable ASCII kept, everything
// else escaped as \xNN, cut at 80 characters.
std::string QuoteForMessage(std::string_view text);

// "input 'x'", "requested output 'y'": a tensor named in an error message, its name quoted.
std::string Named(std::string_view kind, std::string_view name);

}  // namespace engine::server
