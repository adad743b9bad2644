#include "exact_convert.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "status.h"

namespace engine {
namespace {

// Element i of a numeric tensor, exactly as stored (the buffer may be unaligned: a gRPC
// request's raw contents).
template <typename T>
T Load(const void* data, int64_t i) {
  T v;
  std::memcpy(&v, static_cast<const uint8_t*>(data) + static_cast<size_t>(i) * sizeof(T),
              sizeof(T));
  return v;
}

// Element i as the double the transforms compute with.
double NumberAt(const HostTensor& t, int64_t i) {
  switch (t.type) {
    case ElementType::kFloat16: return HalfToDouble(Load<uint16_t>(t.data, i));
    case ElementType::kFloat32: return Load<float>(t.data, i);
    case ElementType::kFloat64: return Load<double>(t.data, i);
    case ElementType::kInt8: return Load<int8_t>(t.data, i);
    case ElementType::kInt16: return Load<int16_t>(t.data, i);
    case ElementType::kInt32: return Load<int32_t>(t.data, i);
    case ElementType::kInt64: return static_cast<double>(Load<int64_t>(t.data, i));
    case ElementType::kUInt8: return Load<uint8_t>(t.data, i);
    case ElementType::kUInt16: return Load<uint16_t>(t.data, i);
    case ElementType::kUInt32: return Load<uint32_t>(t.data, i);
    case ElementType::kUInt64: return static_cast<double>(Load<uint64_t>(t.data, i));
    default: return std::numeric_limits<double>::quiet_NaN();  // not IsConvertibleNumeric
  }
}

// A float as Python's repr writes it (the in-process path's messages print the value so):
// the shortest digits that read back the same, fixed from 1e-4 up to 1e16 (with ".0" when
// whole), scientific beyond.
std::string FloatText(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buffer[64];
  auto end = std::to_chars(buffer, buffer + sizeof(buffer), v, std::chars_format::scientific).ptr;
  const std::string scientific(buffer, end);
  const int exponent = std::atoi(scientific.c_str() + scientific.find('e') + 1);
  if (exponent < -4 || exponent >= 16) return scientific;
  end = std::to_chars(buffer, buffer + sizeof(buffer), v, std::chars_format::fixed).ptr;
  std::string fixed(buffer, end);
  if (fixed.find('.') == std::string::npos) fixed += ".0";
  return fixed;
}

// Element i as the caller sent it: integers exactly, floats as Python writes them.
std::string ValueText(const HostTensor& t, int64_t i) {
  switch (t.type) {
    case ElementType::kFloat16:
    case ElementType::kFloat32:
    case ElementType::kFloat64: return FloatText(NumberAt(t, i));
    case ElementType::kInt64: return std::to_string(Load<int64_t>(t.data, i));
    case ElementType::kUInt64: return std::to_string(Load<uint64_t>(t.data, i));
    default: return std::to_string(static_cast<int64_t>(NumberAt(t, i)));  // exact: <= 32 bits
  }
}

template <typename To>
void ConvertInto(const std::string& column_name, const HostTensor& column, ElementType to,
                 To* out) {
  const int64_t count = column.element_count();
  const int64_t per_row = column.shape.empty() || column.shape[0] == 0
                              ? 1
                              : std::max<int64_t>(1, count / column.shape[0]);
  for (int64_t i = 0; i < count; ++i) {
    const double value = NumberAt(column, i);
    if (const char* why = InexactReason(value, to)) {
      throw CoreError(StatusCode::kInvalidInput,
                      "column '" + column_name + "': " + ElementTypeName(column.type) +
                          " value " + ValueText(column, i) + " does not convert exactly to " +
                          ElementTypeName(to) + ", the transform spec's dtype for this column " +
                          "(row " + std::to_string(i / per_row) + ": " + why +
                          "); cast the column first");
    }
    out[i] = static_cast<To>(value);  // exact (or NaN/inf into a float): InexactReason said so
  }
}

}  // namespace

bool IsConvertibleNumeric(ElementType type) {
  switch (type) {
    case ElementType::kFloat16:
    case ElementType::kFloat32:
    case ElementType::kFloat64:
    case ElementType::kInt8:
    case ElementType::kInt16:
    case ElementType::kInt32:
    case ElementType::kInt64:
    case ElementType::kUInt8:
    case ElementType::kUInt16:
    case ElementType::kUInt32:
    case ElementType::kUInt64: return true;
    default: return false;
  }
}

const char* InexactReason(double value, ElementType to) {
  switch (to) {
    case ElementType::kFloat64:
      return nullptr;  // the double itself
    case ElementType::kFloat32:
      if (std::isnan(value) || std::isinf(value)) return nullptr;
      // Checked before the cast: a finite double beyond float's range has no float value.
      if (std::fabs(value) > std::numeric_limits<float>::max()) return "outside float32's range";
      if (static_cast<double>(static_cast<float>(value)) != value) {
        return "float32 would round it";
      }
      return nullptr;
    case ElementType::kInt64:
      if (std::isnan(value)) return "NaN has no int64 value";
      if (std::isinf(value)) return "infinity has no int64 value";
      if (std::trunc(value) != value) return "not a whole number";
      // [-2^63, 2^63): both bounds are exact doubles; casting outside them is undefined.
      if (value < -9223372036854775808.0 || value >= 9223372036854775808.0) {
        return "outside int64's range";
      }
      return nullptr;
    default:
      return "not a dtype of a transform column";
  }
}

HostTensor ConvertExactly(const std::string& column_name, const HostTensor& column,
                          ElementType to) {
  if (!IsConvertibleNumeric(column.type)) {
    throw CoreError(StatusCode::kInvalidInput,
                    "column '" + column_name + "' must be numeric (converted exactly to " +
                        ElementTypeName(to) + "); got " + ElementTypeName(column.type));
  }
  const int64_t count = CheckedElementCount(column.shape, std::numeric_limits<int64_t>::max() / 8);
  if (count < 0 || column.byte_size != static_cast<size_t>(count) * ElementSize(column.type) ||
      (count > 0 && column.data == nullptr)) {
    throw CoreError(StatusCode::kInvalidInput,
                    "column '" + column_name + "': shape " + ShapeToString(column.shape) +
                        " does not match its " + std::to_string(column.byte_size) + " bytes");
  }
  HostTensor out = AllocateHostTensor(to, column.shape);
  switch (to) {
    case ElementType::kFloat32:
      ConvertInto(column_name, column, to, static_cast<float*>(MutableData(out)));
      break;
    case ElementType::kFloat64:
      ConvertInto(column_name, column, to, static_cast<double*>(MutableData(out)));
      break;
    case ElementType::kInt64:
      ConvertInto(column_name, column, to, static_cast<int64_t*>(MutableData(out)));
      break;
    default:
      throw CoreError(StatusCode::kInternal, std::string("transform column '") + column_name +
                                                 "' declared as " + ElementTypeName(to) +
                                                 ": no exact conversion to it");
  }
  return out;
}

}  // namespace engine
