// The protobuf wire format, by hand, for the ModelInfer hot path (infer_wire.h).
//
// The reader is deliberately narrow: it returns false on anything protobuf might read
// differently (a varint longer than protobuf allows, a length past the end, a zero field
// number), and its caller then hands the bytes to protobuf, which has the last word.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace engine::server::wire {

enum WireType : uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

class Reader {
 public:
  explicit Reader(std::string_view bytes) : pos_(bytes.data()), end_(pos_ + bytes.size()) {}

  bool done() const { return pos_ == end_; }

  // Each reads one item and advances, or returns false and leaves the reader unusable.
  bool ReadVarint(uint64_t* value);  // at most 10 bytes; the tenth holds bit 63 only
  bool ReadTag(uint32_t* field, WireType* type);  // field >= 1
  bool ReadLengthDelimited(std::string_view* bytes);
  bool ReadFixed64(uint64_t* value);
  // Skips a field's value as protobuf would read it (a varint of up to 10 bytes, whatever its
  // tenth holds; a group up to its end tag, nested at most kMaxGroupDepth deep).
  bool SkipValue(uint32_t field, WireType type, int depth = 0);
  static constexpr int kMaxGroupDepth = 100;  // protobuf's default recursion limit

 private:
  const char* pos_;
  const char* end_;
};

// Bytes VarintSize(value) takes on the wire, and the writer for it.
size_t VarintSize(uint64_t value);
char* WriteVarint(uint64_t value, char* out);

// A length-delimited field of a message: `field` must be below 16 (a one-byte tag).
inline size_t LengthDelimitedSize(size_t payload) { return 1 + VarintSize(payload) + payload; }
char* WriteLengthPrefix(uint32_t field, size_t payload, char* out);  // the payload follows
char* WriteLengthDelimited(uint32_t field, std::string_view payload, char* out);

}  // namespace engine::server::wire
