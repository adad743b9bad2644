#include "murmur3.h"

#include <cstring>

namespace engine {
namespace {

constexpr uint32_t kC1 = 0xcc9e2d51u;
constexpr uint32_t kC2 = 0x1b873593u;

inline uint32_t Rotl(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

inline uint32_t MixK(uint32_t k) { return Rotl(k * kC1, 15) * kC2; }

inline uint32_t MixH(uint32_t h, uint32_t k) { return Rotl(h ^ MixK(k), 13) * 5u + 0xe6546b64u; }

inline uint32_t Finalize(uint32_t h, uint32_t len) {
  h ^= len;
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

}  // namespace

uint32_t Murmur3X86_32(const void* key, size_t len, uint32_t seed) {
  const auto* bytes = static_cast<const uint8_t*>(key);
  const size_t nblocks = len / 4;
  uint32_t h = seed;
  for (size_t i = 0; i < nblocks; ++i) {
    uint32_t k;
    std::memcpy(&k, bytes + 4 * i, 4);  // unaligned-safe little-endian load
    h = MixH(h, k);
  }
  const uint8_t* tail = bytes + 4 * nblocks;
  uint32_t k = 0;
  switch (len & 3) {
    case 3: k ^= uint32_t{tail[2]} << 16; [[fallthrough]];
    case 2: k ^= uint32_t{tail[1]} << 8; [[fallthrough]];
    case 1: k ^= tail[0]; h ^= MixK(k);
  }
  // The algorithm mixes the length modulo 2^32, as the 32-bit reference does.
  return Finalize(h, static_cast<uint32_t>(len));
}

uint32_t Murmur3X86_32U64(uint64_t key, uint32_t seed) {
  uint32_t h = MixH(seed, static_cast<uint32_t>(key));
  h = MixH(h, static_cast<uint32_t>(key >> 32));
  return Finalize(h, 8);
}

}  // namespace engine
