// Exact conversion of a transform model's raw numeric columns to their declared dtype.
//
// A model with transforms batches one dtype per raw column (the declared float32, float64 or
// int64), but callers may send a column in any integer or float dtype. The rule, defined here
// and nowhere else in the core: a column converts exactly when every value, as sent, has the
// same value in the declared dtype. Integers are taken as themselves, never as the double
// they round to (beyond 2^53 a double would hide the change): into int64 when in its range,
// into a float when that float holds the integer exactly. Floats convert by value: NaN stays
// NaN in a float column; NaN and +-inf have no integer value. Otherwise the request is
// refused, naming the column, the value as sent, the row, why, and the declared dtype: never a
// rounded value, never a wrapped one.
//
// Python applies the same rule in-process before calling the core
// (engine/transforms/columns.py, exact_numeric_column): the two must agree, so a request is
// accepted over gRPC exactly when Model.predict accepts it, and refused in the same words.
// Change both or neither.
#pragma once

#include <cstdint>
#include <string>

#include "element_type.h"
#include "tensor.h"

namespace engine {

// True for the dtypes a raw numeric column may be sent as: every integer and float type
// (float16/32/64, int8..int64, uint8..uint64); not bool, not string.
bool IsConvertibleNumeric(ElementType type);

// Why the float `value` (a float16, float32 or float64, read as the double that holds it
// exactly) does not convert exactly to `to`, which is kFloat32, kFloat64 or kInt64: "NaN has
// no int64 value", "infinity has no int64 value", "not a whole number", "outside int64's
// range", "outside float32's range", "float32 would round it". nullptr when it converts
// exactly. Pure; never throws.
const char* InexactReason(double value, ElementType to);

// The same for an integer (int8..int64 widened to int64, uint8..uint64 to uint64), decided
// with integer arithmetic: "outside int64's range", "float32 would round it", "float64 would
// round it". nullptr when it converts exactly. Pure; never throws.
const char* InexactIntReason(int64_t value, ElementType to);
const char* InexactUIntReason(uint64_t value, ElementType to);

// `column` converted to `to` (kFloat32, kFloat64 or kInt64): a fresh tensor of the same shape
// that owns its memory. `column` must be of an IsConvertibleNumeric type with its shape and
// byte size already checked (validate.h's CheckTensor); it is only read. Throws
// CoreError(kInvalidInput, never retryable) at the first value that does not convert exactly:
// "column 'age': float64 value 2.5 does not convert exactly to int64, the transform spec's
// dtype for this column (row 1: not a whole number); cast the column first".
HostTensor ConvertExactly(const std::string& column_name, const HostTensor& column,
                          ElementType to);

}  // namespace engine
