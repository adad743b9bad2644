// MurmurHash3 x86 32-bit (Austin Appleby's public-domain algorithm), written for the transforms.
//
// Equal to numpy's engine/transforms/murmur3.py and to ONNX Runtime's com.microsoft.MurmurHash3
// with positive=1. Keys are read as little-endian 4-byte blocks; the engine only targets
// little-endian hosts (x86-64, aarch64), where this equals the reference algorithm.
// Pure functions: no allocation, thread-safe, never throw.
#pragma once

#include <cstddef>
#include <cstdint>

namespace engine {

// Hash of `len` bytes at `key` with `seed`.
uint32_t Murmur3X86_32(const void* key, size_t len, uint32_t seed);

// Hash of the 8 little-endian bytes of `key` (the crossed-feature combiner).
uint32_t Murmur3X86_32U64(uint64_t key, uint32_t seed);

}  // namespace engine
