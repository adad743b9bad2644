// Strict UTF-8, as Python's and Arrow's decoders read it: no overlong forms, no surrogates,
// nothing above U+10FFFF. Shared by the log writer (JSON lines must be UTF-8), the bindings
// and the transforms' string columns (bytes are read as UTF-8 text in every path).
#pragma once

#include <cstddef>
#include <string_view>

namespace engine {

// Length of the well-formed sequence starting at text[i] (1 for ASCII, 2-4 otherwise), or 0
// when none starts there.
size_t Utf8SequenceAt(std::string_view text, size_t i);

bool IsUtf8(std::string_view text);

}  // namespace engine
