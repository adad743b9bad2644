#include "element_type.h"

#include <cmath>

namespace engine {

size_t ElementSize(ElementType type) {
  switch (type) {
    case ElementType::kBool:
    case ElementType::kUInt8:
    case ElementType::kInt8: return 1;
    case ElementType::kUInt16:
    case ElementType::kInt16:
    case ElementType::kFloat16: return 2;
    case ElementType::kUInt32:
    case ElementType::kInt32:
    case ElementType::kFloat32: return 4;
    case ElementType::kUInt64:
    case ElementType::kInt64:
    case ElementType::kFloat64: return 8;
    case ElementType::kString:
    case ElementType::kUndefined: return 0;
  }
  return 0;
}

const char* ElementTypeName(ElementType type) {
  switch (type) {
    case ElementType::kFloat32: return "float32";
    case ElementType::kFloat64: return "float64";
    case ElementType::kFloat16: return "float16";
    case ElementType::kInt8: return "int8";
    case ElementType::kInt16: return "int16";
    case ElementType::kInt32: return "int32";
    case ElementType::kInt64: return "int64";
    case ElementType::kUInt8: return "uint8";
    case ElementType::kUInt16: return "uint16";
    case ElementType::kUInt32: return "uint32";
    case ElementType::kUInt64: return "uint64";
    case ElementType::kBool: return "bool";
    case ElementType::kString: return "string";
    case ElementType::kUndefined: return "undefined";
  }
  return "undefined";
}

bool IsSupported(ElementType type) {
  return type != ElementType::kUndefined && ElementTypeFromOnnx(static_cast<int>(type)) == type;
}

ElementType ElementTypeFromOnnx(int onnx_type) {
  if (onnx_type >= 1 && onnx_type <= 13) return static_cast<ElementType>(onnx_type);
  return ElementType::kUndefined;
}

double HalfToDouble(uint16_t bits) {
  const int exponent = (bits >> 10) & 0x1f;
  const int mantissa = bits & 0x3ff;
  const double sign = (bits & 0x8000) ? -1.0 : 1.0;
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  if (exponent == 31) return mantissa ? NAN : sign * INFINITY;
  return sign * std::ldexp(mantissa + 1024, exponent - 25);
}

}  // namespace engine
