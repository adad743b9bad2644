#include "wire_format.h"

#include <cassert>
#include <cstring>

namespace engine::server::wire {

bool Reader::ReadVarint(uint64_t* value) {
  uint64_t result = 0;
  for (int i = 0; i < 10; ++i) {
    if (pos_ == end_) return false;
    const auto byte = static_cast<uint8_t>(*pos_++);
    // The tenth byte may only carry bit 63: anything more is bits protobuf would drop.
    if (i == 9 && byte > 1) return false;
    result |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      *value = result;
      return true;
    }
  }
  return false;
}

bool Reader::ReadTag(uint32_t* field, WireType* type) {
  const char* start = pos_;
  uint64_t tag = 0;
  // A tag is a 32-bit varint: at most five bytes.
  if (!ReadVarint(&tag) || pos_ - start > 5 || tag > UINT32_MAX) return false;
  *field = static_cast<uint32_t>(tag >> 3);
  *type = static_cast<WireType>(tag & 7);
  return *field != 0;
}

bool Reader::ReadLengthDelimited(std::string_view* bytes) {
  const char* start = pos_;
  uint64_t length = 0;
  if (!ReadVarint(&length) || pos_ - start > 5) return false;
  if (length > static_cast<uint64_t>(end_ - pos_)) return false;
  *bytes = std::string_view(pos_, static_cast<size_t>(length));
  pos_ += length;
  return true;
}

bool Reader::ReadFixed64(uint64_t* value) {
  if (end_ - pos_ < 8) return false;
  std::memcpy(value, pos_, 8);  // little-endian host, as the wire
  pos_ += 8;
  return true;
}

bool Reader::SkipValue(uint32_t field, WireType type, int depth) {
  uint64_t value = 0;
  std::string_view bytes;
  switch (type) {
    case kVarint:
      for (int i = 0; i < 10; ++i) {
        if (pos_ == end_) return false;
        if ((static_cast<uint8_t>(*pos_++) & 0x80) == 0) return true;
      }
      return false;
    case kFixed64:
      return ReadFixed64(&value);
    case kLengthDelimited:
      return ReadLengthDelimited(&bytes);
    case kFixed32:
      if (end_ - pos_ < 4) return false;
      pos_ += 4;
      return true;
    case kStartGroup:
      if (depth >= kMaxGroupDepth) return false;
      while (true) {
        uint32_t inner = 0;
        WireType inner_type{};
        if (!ReadTag(&inner, &inner_type)) return false;
        if (inner_type == kEndGroup) return inner == field;
        if (!SkipValue(inner, inner_type, depth + 1)) return false;
      }
    default:
      return false;  // an end tag without its start, or wire types 6 and 7
  }
}

size_t VarintSize(uint64_t value) {
  size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

char* WriteVarint(uint64_t value, char* out) {
  while (value >= 0x80) {
    *out++ = static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  *out++ = static_cast<char>(value);
  return out;
}

char* WriteLengthPrefix(uint32_t field, size_t payload, char* out) {
  assert(field >= 1 && field < 16);
  *out++ = static_cast<char>((field << 3) | kLengthDelimited);
  return WriteVarint(payload, out);
}

char* WriteLengthDelimited(uint32_t field, std::string_view payload, char* out) {
  out = WriteLengthPrefix(field, payload.size(), out);
  if (!payload.empty()) std::memcpy(out, payload.data(), payload.size());
  return out + payload.size();
}

}  // namespace engine::server::wire
