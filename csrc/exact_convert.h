// Exact conversion of a transform model's raw numeric columns to their declared dtype.
//
// A model with transforms batches one dtype per raw column (the declared float32, float64 or
// int64), but callers may send a column in any integer or float dtype. The rule, defined here
// and nowhere else in the core: each value is read as the double the transforms compute with
// (transforms.h widens every number to double), and the column converts exactly when every
// such double survives the trip to the declared dtype unchanged (NaN stays NaN in a float
// column; NaN and +-inf have no integer value). Otherwise the request is refused, naming the
// column, the value, why, and the declared dtype: never a rounded value, never a wrapped one.
//
// Python applies the same rule in-process before calling the core
// (engine/transforms/columns.py, exact_numeric_column): the two must agree, so a request is
// accepted over gRPC exactly when Model.predict accepts it. Change both or neither.
#pragma once

#include <string>

#include "element_type.h"
#include "tensor.h"

namespace engine {

// True for the dtypes a raw numeric column may be sent as: every integer and float type
// (float16/32/64, int8..int64, uint8..uint64); not bool, not string.
bool IsConvertibleNumeric(ElementType type);

// Why `value` (a number as the transforms read it) does not convert exactly to `to`, which is
// kFloat32, kFloat64 or kInt64: "NaN has no int64 value", "infinity has no int64 value", "not
// a whole number", "outside int64's range", "outside float32's range", "float32 would round
// it". nullptr when it converts exactly. Pure; never throws.
const char* InexactReason(double value, ElementType to);

// `column` converted to `to` (kFloat32, kFloat64 or kInt64): a fresh tensor of the same shape
// that owns its memory. `column` must be of an IsConvertibleNumeric type with its shape and
// byte size already checked (validate.h's CheckTensor); it is only read. Throws
// CoreError(kInvalidInput, never retryable) at the first value that does not convert exactly:
// "column 'age': float64 value 2.5 does not convert exactly to int64, the transform spec's
// dtype for this column (row 1: not a whole number); cast the column first".
HostTensor ConvertExactly(const std::string& column_name, const HostTensor& column,
                          ElementType to);

}  // namespace engine
