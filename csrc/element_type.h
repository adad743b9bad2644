// Tensor element types, numbered as ONNX's TensorProto.DataType so they cross to ORT unchanged.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace engine {

enum class ElementType : int {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
};

// Bytes per element; 0 for kString (variable length) and for unsupported types.
size_t ElementSize(ElementType type);

// Canonical lowercase name, as in engine/signature.py ("float32", "string", ...).
const char* ElementTypeName(ElementType type);

// True for the types the engine can run (everything above except kUndefined).
bool IsSupported(ElementType type);

// Maps ONNX's integer to ElementType; unknown values give kUndefined.
ElementType ElementTypeFromOnnx(int onnx_type);

// The value of an IEEE 754 half (kFloat16's bits), exactly: every half is a double.
double HalfToDouble(uint16_t bits);

}  // namespace engine
