#include "codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "infer_wire.h"

namespace engine::server {
namespace {

using inference::InferParameter;
using inference::ModelInferRequest;

// The 4-byte little-endian prefix written byte by byte, so the test does not share the codec's
// reliance on host byte order.
std::string Le32(uint32_t n) {
  return {static_cast<char>(n & 0xff), static_cast<char>((n >> 8) & 0xff),
          static_cast<char>((n >> 16) & 0xff), static_cast<char>((n >> 24) & 0xff)};
}

std::string Framed(const std::vector<std::string>& elements) {
  std::string out;
  for (const auto& e : elements) out += Le32(static_cast<uint32_t>(e.size())) + e;
  return out;
}

template <typename T>
std::string RawOf(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

template <typename T>
std::vector<T> ValuesOf(const HostTensor& t) {
  std::vector<T> out(t.byte_size / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), t.data, out.size() * sizeof(T));
  return out;
}

ModelInferRequest::InferInputTensor* AddInput(ModelInferRequest* r, const std::string& name,
                                              const std::string& datatype,
                                              const std::vector<int64_t>& shape) {
  auto* in = r->add_inputs();
  in->set_name(name);
  in->set_datatype(datatype);
  for (int64_t d : shape) in->add_shape(d);
  return in;
}

// What a decoded tensor holds, whether borrowed or owned, for comparing two decodings.
std::string ContentOf(const HostTensor& t) {
  std::string out = std::to_string(static_cast<int>(t.type)) + ShapeToString(t.shape);
  if (t.type == ElementType::kString) {
    for (const auto& e : t.strings) out += "|" + e;
  } else if (t.byte_size != 0) {
    out.append(static_cast<const char*>(t.data), t.byte_size);
  }
  return out;
}

// Decodes `r` as the server does when protobuf parsed it. When the fast reader
// (infer_wire.h) takes the same message's bytes, its decoding must agree exactly: every test
// here then checks both paths.
Status Decode(const ModelInferRequest& r, DecodedRequest* out, const ServerLimits& limits = {}) {
  InferRequestView view;
  ViewInferRequest(r, &view);
  Status s = DecodeInferRequest(view, limits, out);
  const std::string bytes = r.SerializeAsString();
  InferRequestView fast;
  if (ReadInferRequest(bytes, &fast)) {
    DecodedRequest other;
    const Status t = DecodeInferRequest(fast, limits, &other);
    EXPECT_EQ(t.code(), s.code());
    EXPECT_EQ(t.message(), s.message());
    if (s.ok() && t.ok()) {
      EXPECT_EQ(other.priority, out->priority);
      EXPECT_EQ(other.timeout_us, out->timeout_us);
      EXPECT_EQ(other.output_names, out->output_names);
      EXPECT_EQ(other.inputs.size(), out->inputs.size());
      for (size_t i = 0; i < std::min(other.inputs.size(), out->inputs.size()); ++i) {
        EXPECT_EQ(other.inputs[i].first, out->inputs[i].first);
        EXPECT_EQ(ContentOf(other.inputs[i].second), ContentOf(out->inputs[i].second));
      }
    }
  }
  return s;
}

// Every decode error is kInvalidInput; the fragment pins down which check fired.
::testing::AssertionResult IsInvalid(const Status& s, const std::string& fragment) {
  if (s.code() != StatusCode::kInvalidInput) {
    return ::testing::AssertionFailure()
           << "code " << StatusCodeName(s.code()) << ", message \"" << s.message() << "\"";
  }
  if (s.message().find(fragment) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "message \"" << s.message() << "\" lacks \"" << fragment << "\"";
  }
  return ::testing::AssertionSuccess();
}

// --- Datatype names ------------------------------------------------------------------------

TEST(KServeDatatype, RoundTripsEverySupportedType) {
  const std::vector<std::pair<ElementType, std::string>> names = {
      {ElementType::kBool, "BOOL"},     {ElementType::kUInt8, "UINT8"},
      {ElementType::kUInt16, "UINT16"}, {ElementType::kUInt32, "UINT32"},
      {ElementType::kUInt64, "UINT64"}, {ElementType::kInt8, "INT8"},
      {ElementType::kInt16, "INT16"},   {ElementType::kInt32, "INT32"},
      {ElementType::kInt64, "INT64"},   {ElementType::kFloat16, "FP16"},
      {ElementType::kFloat32, "FP32"},  {ElementType::kFloat64, "FP64"},
      {ElementType::kString, "BYTES"}};
  for (const auto& [type, name] : names) {
    EXPECT_EQ(KServeDatatype(type), name);
    EXPECT_EQ(ElementTypeFromKServe(name), type) << name;
  }
  EXPECT_STREQ(KServeDatatype(ElementType::kUndefined), "");
  // Case matters in KServe, and BF16 has no core type.
  for (const char* name : {"", "fp32", "BF16", "FP8", "STRING", "FP32 "}) {
    EXPECT_EQ(ElementTypeFromKServe(name), ElementType::kUndefined) << name;
  }
}

// --- raw_input_contents --------------------------------------------------------------------

TEST(DecodeInferRequest, RawFp32BorrowsTheRequestBuffer) {
  ModelInferRequest r;
  AddInput(&r, "x", "FP32", {2, 3});
  r.add_raw_input_contents(RawOf<float>({1.5f, -2.f, 0.f, 3.25f, 1e-3f, 7.f}));
  DecodedRequest out;
  ASSERT_TRUE(Decode(r, &out).ok());
  ASSERT_EQ(out.inputs.size(), 1u);
  const auto& [name, t] = out.inputs[0];
  EXPECT_EQ(name, "x");
  EXPECT_EQ(t.type, ElementType::kFloat32);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.byte_size, 24u);
  // No copy on the hot path: the tensor points into the message and owns nothing.
  EXPECT_EQ(t.data, static_cast<const void*>(r.raw_input_contents(0).data()));
  EXPECT_EQ(t.owner, nullptr);
  EXPECT_EQ(ValuesOf<float>(t), (std::vector<float>{1.5f, -2.f, 0.f, 3.25f, 1e-3f, 7.f}));
}

TEST(DecodeInferRequest, RawInt64BoolFp16SeveralInputsInOrder) {
  ModelInferRequest r;
  AddInput(&r, "ids", "INT64", {3});
  AddInput(&r, "mask", "BOOL", {1, 4});
  AddInput(&r, "half", "FP16", {2});
  const std::vector<int64_t> ids = {std::numeric_limits<int64_t>::min(), -1, int64_t{1} << 40};
  r.add_raw_input_contents(RawOf(ids));
  r.add_raw_input_contents(RawOf<uint8_t>({1, 0, 0, 1}));
  r.add_raw_input_contents(RawOf<uint16_t>({0x3c00, 0xc000}));  // 1.0 and -2.0 in IEEE half
  DecodedRequest out;
  ASSERT_TRUE(Decode(r, &out).ok());
  ASSERT_EQ(out.inputs.size(), 3u);
  EXPECT_EQ(out.inputs[0].first, "ids");
  EXPECT_EQ(out.inputs[0].second.type, ElementType::kInt64);
  EXPECT_EQ(ValuesOf<int64_t>(out.inputs[0].second), ids);
  EXPECT_EQ(out.inputs[1].first, "mask");
  EXPECT_EQ(out.inputs[1].second.type, ElementType::kBool);
  EXPECT_EQ(out.inputs[1].second.shape, (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(ValuesOf<uint8_t>(out.inputs[1].second), (std::vector<uint8_t>{1, 0, 0, 1}));
  EXPECT_EQ(out.inputs[2].first, "half");
  EXPECT_EQ(out.inputs[2].second.type, ElementType::kFloat16);
  EXPECT_EQ(out.inputs[2].second.byte_size, 4u);
  EXPECT_EQ(ValuesOf<uint16_t>(out.inputs[2].second), (std::vector<uint16_t>{0x3c00, 0xc000}));
}

TEST(DecodeInferRequest, RawBoolElementsAreZeroOrOne) {
  ModelInferRequest r;
  AddInput(&r, "mask", "BOOL", {3});
  r.add_raw_input_contents(RawOf<uint8_t>({0, 1, 2}));
  DecodedRequest out;
  const Status s = Decode(r, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_EQ(s.message(),
            "input 'mask': BOOL element 2 is the byte 2; a BOOL element is 0 (false) or 1 (true)");
}

TEST(DecodeInferRequest, RawScalarAndEmptyShapes) {
  ModelInferRequest r;
  AddInput(&r, "scalar", "FP64", {});
  AddInput(&r, "none", "INT32", {0, 5});
  r.add_raw_input_contents(RawOf<double>({2.5}));
  r.add_raw_input_contents("");
  DecodedRequest out;
  ASSERT_TRUE(Decode(r, &out).ok());
  EXPECT_TRUE(out.inputs[0].second.shape.empty());
  EXPECT_EQ(ValuesOf<double>(out.inputs[0].second), std::vector<double>{2.5});
  EXPECT_EQ(out.inputs[1].second.shape, (std::vector<int64_t>{0, 5}));
  EXPECT_EQ(out.inputs[1].second.byte_size, 0u);
}

TEST(DecodeInferRequest, RawByteSizeMismatch) {
  for (const size_t size : {7u, 9u, 0u, 16u}) {
    ModelInferRequest r;
    AddInput(&r, "x", "FP32", {2});
    r.add_raw_input_contents(std::string(size, '\0'));
    DecodedRequest out;
    EXPECT_TRUE(IsInvalid(Decode(r, &out), "input 'x': raw_input_contents holds " +
                                               std::to_string(size) +
                                               " bytes; shape [2] of FP32 needs 8"));
  }
  // FP16 is two bytes an element, not four.
  ModelInferRequest r;
  AddInput(&r, "h", "FP16", {3});
  r.add_raw_input_contents(std::string(12, '\0'));
  DecodedRequest out;
  EXPECT_TRUE(IsInvalid(Decode(r, &out), "holds 12 bytes; shape [3] of FP16 needs 6"));
}

TEST(DecodeInferRequest, RawBufferCountMustMatchInputs) {
  ModelInferRequest more;
  AddInput(&more, "x", "FP32", {1});
  more.add_raw_input_contents(RawOf<float>({1.f}));
  more.add_raw_input_contents(RawOf<float>({2.f}));
  DecodedRequest out;
  EXPECT_TRUE(IsInvalid(Decode(more, &out), "raw_input_contents has 2 buffers for 1 inputs"));

  ModelInferRequest fewer;
  AddInput(&fewer, "a", "FP32", {1});
  AddInput(&fewer, "b", "FP32", {1});
  fewer.add_raw_input_contents(RawOf<float>({1.f}));
  EXPECT_TRUE(IsInvalid(Decode(fewer, &out), "raw_input_contents has 1 buffers for 2 inputs"));

  ModelInferRequest none;
  none.add_raw_input_contents(RawOf<float>({1.f}));
  EXPECT_TRUE(IsInvalid(Decode(none, &out), "has 1 buffers for 0 inputs"));
}

TEST(DecodeInferRequest, RawAndContentsTogetherAreRefused) {
  ModelInferRequest r;
  auto* in = AddInput(&r, "x", "FP32", {1});
  in->mutable_contents()->add_fp32_contents(1.f);
  r.add_raw_input_contents(RawOf<float>({1.f}));
  DecodedRequest out;
  EXPECT_TRUE(IsInvalid(Decode(r, &out), "both in 'contents' and in raw_input_contents"));
}

TEST(DecodeInferRequest, RawSizeCheckDoesNotWrapAround) {
  // With the element limit raised to its maximum, shape [2^61] of INT64 needs 2^64 bytes,
  // which wraps to 0 in uint64: an empty buffer must still be refused (it once passed).
  ServerLimits limits;
  limits.max_tensor_elements = std::numeric_limits<int64_t>::max();
  ModelInferRequest r;
  AddInput(&r, "x", "INT64", {int64_t{1} << 61});
  r.add_raw_input_contents("");
  DecodedRequest out;
  EXPECT_TRUE(IsInvalid(Decode(r, &out, limits), "input 'x'"));
}

// --- BYTES framing -------------------------------------------------------------------------

TEST(DecodeInferRequest, RawBytesLengthPrefixed) {
  const std::vector<std::string> elements = {"ab", "", std::string("c\0d", 3),
                                             std::string(300, 'z')};
  ModelInferRequest r;
  AddInput(&r, "text", "BYTES", {2, 2});
  r.add_raw_input_contents(Framed(elements));
  DecodedRequest out;
  ASSERT_TRUE(Decode(r, &out).ok());
  const HostTensor& t = out.inputs[0].second;
  EXPECT_EQ(t.type, ElementType::kString);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(t.strings, elements);
  EXPECT_EQ(t.data, nullptr);
}

TEST(DecodeBytesElements, TruncatedLengthPrefix) {
  std::vector<std::string> out;
  EXPECT_TRUE(IsInvalid(DecodeBytesElements("t", std::string("\x02\x00\x00", 3), 1, &out),
                        "input 't': BYTES data ends inside the length prefix of element 0 of 1"));
  // One whole element, then two bytes of the next prefix.
  EXPECT_TRUE(IsInvalid(DecodeBytesElements("t", Framed({"a"}) + std::string(2, '\0'), 2, &out),
                        "ends inside the length prefix of element 1 of 2"));
  // Fewer elements than the shape asks for ends the same way.
  EXPECT_TRUE(IsInvalid(DecodeBytesElements("t", Framed({"a", "b"}), 3, &out),
                        "length prefix of element 2 of 3"));
  EXPECT_TRUE(IsInvalid(DecodeBytesElements("t", "", 1, &out), "element 0 of 1"));
}

TEST(DecodeBytesElements, LengthPastTheEnd) {
  std::vector<std::string> out;
  EXPECT_TRUE(IsInvalid(DecodeBytesElements("t", Le32(5) + "ab", 1, &out),
                        "BYTES element 0 declares 5 bytes but only 2 remain"));
  EXPECT_TRUE(IsInvalid(DecodeBytesElements("t", Le32(3) + "ab", 1, &out),
                        "BYTES element 0 declares 3 bytes but only 2 remain"));  // one past
  // A length near 2^32 must not wrap a position check.
  EXPECT_TRUE(IsInvalid(DecodeBytesElements("t", Framed({"ok"}) + Le32(0xffffffffu) + "x", 2, &out),
                        "BYTES element 1 declares 4294967295 bytes but only 1 remain"));
}

TEST(DecodeBytesElements, TrailingBytesAreRefused) {
  std::vector<std::string> out;
  EXPECT_TRUE(IsInvalid(DecodeBytesElements("t", Framed({"a", "b"}), 1, &out),
                        "5 bytes left after the 1 BYTES elements"));
  EXPECT_TRUE(IsInvalid(DecodeBytesElements("t", "x", 0, &out), "1 bytes left after the 0"));
}

TEST(DecodeBytesElements, ReadsLittleEndianLengths) {
  // 258 = 0x0102: a big-endian reader would see 0x02010000 and fail.
  const std::string payload(258, 'q');
  std::vector<std::string> out = {"stale"};
  ASSERT_TRUE(DecodeBytesElements("t", std::string("\x02\x01\x00\x00", 4) + payload, 1, &out).ok());
  EXPECT_EQ(out, std::vector<std::string>{payload});
  ASSERT_TRUE(DecodeBytesElements("t", "", 0, &out).ok());
  EXPECT_TRUE(out.empty());
}

TEST(DecodeInferRequest, BytesFramingErrorsNameTheInput) {
  ModelInferRequest r;
  AddInput(&r, "x", "FP32", {1});
  AddInput(&r, "words", "BYTES", {2});
  r.add_raw_input_contents(RawOf<float>({1.f}));
  r.add_raw_input_contents(Framed({"one"}) + Le32(9) + "tw");
  DecodedRequest out;
  EXPECT_TRUE(IsInvalid(Decode(r, &out), "input 'words': BYTES element 1 declares 9 bytes"));
}

TEST(WriteBytesElements, WritesLittleEndianPrefixes) {
  const std::vector<std::string> elements = {"ab", "", std::string(258, 'q')};
  std::string out(BytesElementsSize(elements), '?');
  EXPECT_EQ(WriteBytesElements(elements, out.data()), out.data() + out.size());
  const std::string expected = std::string("\x02\x00\x00\x00", 4) + "ab" +
                               std::string(4, '\0') + std::string("\x02\x01\x00\x00", 4) +
                               std::string(258, 'q');
  EXPECT_EQ(out, expected);
}

// --- Typed contents ------------------------------------------------------------------------

TEST(DecodeInferRequest, TypedContentsAreCopiedIntoOwnedTensors) {
  ModelInferRequest r;
  auto* f = AddInput(&r, "f", "FP32", {2});
  f->mutable_contents()->add_fp32_contents(0.5f);
  f->mutable_contents()->add_fp32_contents(-4.f);
  auto* i = AddInput(&r, "i", "INT64", {1, 2});
  i->mutable_contents()->add_int64_contents(std::numeric_limits<int64_t>::max());
  i->mutable_contents()->add_int64_contents(-3);
  auto* b = AddInput(&r, "b", "BOOL", {3});
  for (bool v : {true, false, true}) b->mutable_contents()->add_bool_contents(v);
  auto* s = AddInput(&r, "s", "BYTES", {2});
  s->mutable_contents()->add_bytes_contents("hello");
  s->mutable_contents()->add_bytes_contents(std::string("\0x", 2));
  auto* i8 = AddInput(&r, "i8", "INT8", {2});
  i8->mutable_contents()->add_int_contents(-128);
  i8->mutable_contents()->add_int_contents(127);
  auto* u16 = AddInput(&r, "u16", "UINT16", {1});
  u16->mutable_contents()->add_uint_contents(65535);
  DecodedRequest out;
  ASSERT_TRUE(Decode(r, &out).ok());
  ASSERT_EQ(out.inputs.size(), 6u);
  for (const auto& [name, t] : out.inputs) {
    if (t.type != ElementType::kString) {
      EXPECT_NE(t.owner, nullptr) << name;
    }
  }
  EXPECT_EQ(ValuesOf<float>(out.inputs[0].second), (std::vector<float>{0.5f, -4.f}));
  EXPECT_EQ(out.inputs[1].second.shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(ValuesOf<int64_t>(out.inputs[1].second),
            (std::vector<int64_t>{std::numeric_limits<int64_t>::max(), -3}));
  EXPECT_EQ(out.inputs[2].second.type, ElementType::kBool);
  EXPECT_EQ(ValuesOf<uint8_t>(out.inputs[2].second), (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(out.inputs[3].second.strings,
            (std::vector<std::string>{"hello", std::string("\0x", 2)}));
  EXPECT_EQ(ValuesOf<int8_t>(out.inputs[4].second), (std::vector<int8_t>{-128, 127}));
  EXPECT_EQ(ValuesOf<uint16_t>(out.inputs[5].second), std::vector<uint16_t>{65535});
}

TEST(DecodeInferRequest, TypedValuesOutOfRangeAreRefusedNotWrapped) {
  const std::vector<std::pair<std::string, int64_t>> cases = {
      {"INT8", 128}, {"INT8", -129}, {"INT16", 32768}, {"UINT8", 256}, {"UINT16", 65536}};
  for (const auto& [datatype, value] : cases) {
    ModelInferRequest r;
    auto* in = AddInput(&r, "x", datatype, {1});
    if (datatype[0] == 'U') {
      in->mutable_contents()->add_uint_contents(static_cast<uint32_t>(value));
    } else {
      in->mutable_contents()->add_int_contents(static_cast<int32_t>(value));
    }
    DecodedRequest out;
    EXPECT_TRUE(IsInvalid(Decode(r, &out), "a value in 'contents' is out of range for " + datatype))
        << datatype << " " << value;
  }
}

TEST(DecodeInferRequest, TypedContentsFieldMustMatchDatatype) {
  ModelInferRequest r;
  AddInput(&r, "x", "FP32", {1})->mutable_contents()->add_int_contents(1);
  DecodedRequest out;
  EXPECT_TRUE(IsInvalid(Decode(r, &out),
                        "input 'x': 'contents' uses a field that does not match datatype FP32"));
  // The right field plus a stray one is refused too.
  ModelInferRequest both;
  auto* in = AddInput(&both, "y", "INT64", {1});
  in->mutable_contents()->add_int64_contents(1);
  in->mutable_contents()->add_fp64_contents(1.0);
  EXPECT_TRUE(IsInvalid(Decode(both, &out), "does not match datatype INT64"));
}

TEST(DecodeInferRequest, TypedCountMustMatchShape) {
  ModelInferRequest r;
  auto* in = AddInput(&r, "x", "FP64", {2, 2});
  for (double v : {1.0, 2.0, 3.0}) in->mutable_contents()->add_fp64_contents(v);
  DecodedRequest out;
  EXPECT_TRUE(IsInvalid(Decode(r, &out), "input 'x': 'contents' holds 3 elements; shape [2, 2] "
                                         "needs 4"));
  // No data at all for a non-empty shape.
  ModelInferRequest empty;
  AddInput(&empty, "y", "INT32", {2});
  EXPECT_TRUE(IsInvalid(Decode(empty, &out), "'contents' holds 0 elements; shape [2] needs 2"));
}

TEST(DecodeInferRequest, Fp16HasNoTypedContents) {
  ModelInferRequest r;
  AddInput(&r, "h", "FP16", {1})->mutable_contents()->add_fp32_contents(1.f);
  DecodedRequest out;
  EXPECT_TRUE(IsInvalid(Decode(r, &out), "FP16 has no typed 'contents' field"));
}

// --- Datatypes and shapes ------------------------------------------------------------------

TEST(DecodeInferRequest, UnknownDatatype) {
  for (const char* datatype : {"FP8", "BF16", "fp32", ""}) {
    ModelInferRequest r;
    AddInput(&r, "x", datatype, {1});
    r.add_raw_input_contents(std::string(4, '\0'));
    DecodedRequest out;
    EXPECT_TRUE(IsInvalid(Decode(r, &out), "input 'x': unsupported datatype '" +
                                               std::string(datatype) + "'"))
        << datatype;
  }
}

TEST(DecodeInferRequest, NegativeDimension) {
  ModelInferRequest r;
  AddInput(&r, "x", "FP32", {-1, 4});
  r.add_raw_input_contents("");
  DecodedRequest out;
  EXPECT_TRUE(IsInvalid(Decode(r, &out), "input 'x': shape [-1, 4] has a negative dimension"));
}

TEST(DecodeInferRequest, ErrorMessagesQuoteHostileNames) {
  // A client-chosen name reaches the message escaped, never raw.
  ModelInferRequest r;
  AddInput(&r, std::string("a\0\n", 3), "NOPE", {1});
  DecodedRequest out;
  const Status s = Decode(r, &out);
  EXPECT_TRUE(IsInvalid(s, "input 'a\\x00\\x0a': unsupported datatype 'NOPE'"));
  EXPECT_EQ(s.message().find('\n'), std::string::npos);
}

// --- Limits --------------------------------------------------------------------------------

TEST(DecodeInferRequest, TensorElementLimit) {
  ServerLimits limits;
  limits.max_tensor_elements = 6;
  DecodedRequest out;
  {
    ModelInferRequest r;
    AddInput(&r, "x", "UINT8", {2, 3});
    r.add_raw_input_contents(std::string(6, '\1'));
    EXPECT_TRUE(Decode(r, &out, limits).ok());
  }
  {
    ModelInferRequest r;
    AddInput(&r, "x", "UINT8", {7});
    r.add_raw_input_contents(std::string(7, '\1'));
    EXPECT_TRUE(IsInvalid(Decode(r, &out, limits),
                          "input 'x': shape [7] has more than the limit of 6 elements"));
  }
  {
    // BYTES counts elements too, checked before any framing is read.
    ModelInferRequest r;
    AddInput(&r, "s", "BYTES", {7, 1});
    r.add_raw_input_contents(Framed(std::vector<std::string>(7, "w")));
    EXPECT_TRUE(IsInvalid(Decode(r, &out, limits), "has more than the limit of 6 elements"));
  }
  {
    // A product that overflows int64 is over any limit, not a small wrapped number.
    ServerLimits unlimited;
    unlimited.max_tensor_elements = std::numeric_limits<int64_t>::max();
    ModelInferRequest r;
    AddInput(&r, "x", "FP32", {int64_t{1} << 32, int64_t{1} << 32, 16});
    r.add_raw_input_contents("");
    EXPECT_TRUE(IsInvalid(Decode(r, &out, unlimited),
                          "has more than the limit of 9223372036854775807 elements"));
  }
  {
    // No element, yet a row of 2^62: refused without claiming it has too many elements.
    ModelInferRequest r;
    AddInput(&r, "x", "FP32", {0, int64_t{1} << 62});
    r.add_raw_input_contents("");
    EXPECT_TRUE(IsInvalid(Decode(r, &out, limits),
                          "input 'x': shape [0, 4611686018427387904] has no element, but its "
                          "other dimensions multiply to more than the limit of 6 elements"));
  }
}

TEST(DecodeInferRequest, BytesElementLimitIsCheckedBeforeFraming) {
  ServerLimits limits;
  limits.max_string_elements = 3;
  DecodedRequest out;
  {
    ModelInferRequest r;
    AddInput(&r, "s", "BYTES", {3});
    r.add_raw_input_contents(Framed({"a", "", "c"}));
    EXPECT_TRUE(Decode(r, &out, limits).ok());
  }
  {
    ModelInferRequest r;
    AddInput(&r, "s", "BYTES", {2, 2});
    r.add_raw_input_contents("");  // never read: the count alone refuses it
    EXPECT_TRUE(IsInvalid(Decode(r, &out, limits),
                          "input 's': shape [2, 2] has 4 BYTES elements; the limit is 3"));
  }
  {
    // Numeric tensors are bounded by max_tensor_elements only.
    ModelInferRequest r;
    AddInput(&r, "x", "UINT8", {4});
    r.add_raw_input_contents(std::string(4, '\1'));
    EXPECT_TRUE(Decode(r, &out, limits).ok());
  }
}

// --- Outputs and parameters ----------------------------------------------------------------

TEST(DecodeInferRequest, RequestedOutputsKeepTheirOrder) {
  ModelInferRequest r;
  DecodedRequest out;
  out.output_names = {"stale"};
  ASSERT_TRUE(Decode(r, &out).ok());
  EXPECT_TRUE(out.output_names.empty());  // none requested: every output
  r.add_outputs()->set_name("probabilities");
  r.add_outputs()->set_name("label");
  ASSERT_TRUE(Decode(r, &out).ok());
  EXPECT_EQ(out.output_names, (std::vector<std::string>{"probabilities", "label"}));
}

// No shared memory here: a tensor naming a region is refused by name, not read from (or
// answered into) the message as if the parameter were not there.
TEST(DecodeInferRequest, SharedMemoryParametersAreRefused) {
  ModelInferRequest r;
  auto* in = AddInput(&r, "x", "FP32", {1});
  r.add_raw_input_contents(RawOf<float>({1}));
  DecodedRequest out;
  ASSERT_TRUE(Decode(r, &out).ok());
  (*in->mutable_parameters())["shared_memory_region"].set_string_param("region");
  EXPECT_TRUE(IsInvalid(Decode(r, &out), "input 'x': parameter 'shared_memory_region': shared "
                                         "memory is not supported by this server"));
  in->clear_parameters();
  auto* y = r.add_outputs();
  y->set_name("y");
  (*y->mutable_parameters())["shared_memory_byte_size"].set_int64_param(4);
  EXPECT_TRUE(IsInvalid(Decode(r, &out), "requested output 'y': parameter "
                                         "'shared_memory_byte_size': shared memory is not"));
  y->clear_parameters();
  (*y->mutable_parameters())["binary_data"].set_bool_param(true);  // HTTP's: meaningless here
  EXPECT_TRUE(Decode(r, &out).ok());
}

TEST(DecodeInferRequest, ClassificationIsCheckedWhenDecoded) {
  ModelInferRequest r;
  auto* y = r.add_outputs();
  y->set_name("y");
  (*y->mutable_parameters())["classification"].set_int64_param(2);
  DecodedRequest out;
  ASSERT_TRUE(Decode(r, &out).ok());
  InferRequestView view;
  ViewInferRequest(r, &view);
  ASSERT_EQ(view.output_parameters.size(), 1u);  // kept for the answer (classification.h)
  (*y->mutable_parameters())["classification"].set_int64_param(0);
  EXPECT_TRUE(IsInvalid(Decode(r, &out), "requested output 'y': parameter 'classification' "
                                         "must be a positive integer"));
}

TEST(DecodeInferRequest, FinalResponseFlagMustBeABool) {
  ModelInferRequest r;
  InferRequestView view;
  DecodedRequest out;
  ViewInferRequest(r, &view);
  EXPECT_FALSE(FinalResponseFlagRequested(view));
  InferParameter p;
  p.set_bool_param(true);
  (*r.mutable_parameters())["triton_enable_empty_final_response"] = p;
  ViewInferRequest(r, &view);
  EXPECT_TRUE(FinalResponseFlagRequested(view));
  EXPECT_TRUE(Decode(r, &out).ok());
  p.set_bool_param(false);
  (*r.mutable_parameters())["triton_enable_empty_final_response"] = p;
  ViewInferRequest(r, &view);
  EXPECT_FALSE(FinalResponseFlagRequested(view));
  p.set_int64_param(1);
  (*r.mutable_parameters())["triton_enable_empty_final_response"] = p;
  ViewInferRequest(r, &view);
  EXPECT_FALSE(FinalResponseFlagRequested(view));
  EXPECT_TRUE(IsInvalid(Decode(r, &out),
                        "parameter 'triton_enable_empty_final_response' must be a bool"));
}

TEST(DecodeInferRequest, PriorityAndTimeoutParameters) {
  constexpr int kLevels = 1 << 20;
  auto decode_with = [](const std::string& key, const InferParameter& p, DecodedRequest* out) {
    ModelInferRequest r;
    (*r.mutable_parameters())[key] = p;
    return Decode(r, out);
  };
  InferParameter p;
  DecodedRequest out;
  ASSERT_TRUE(Decode(ModelInferRequest(), &out).ok());
  EXPECT_EQ(out.priority, 0);
  EXPECT_EQ(out.timeout_us, -1);

  // Triton's level 1 is the most urgent: the core's highest priority.
  p.set_int64_param(1);
  ASSERT_TRUE(decode_with("priority", p, &out).ok());
  EXPECT_EQ(out.priority, kLevels - 1);
  p.set_uint64_param(3);
  ASSERT_TRUE(decode_with("priority", p, &out).ok());
  EXPECT_EQ(out.priority, kLevels - 3);
  p.set_uint64_param(0);
  ASSERT_TRUE(decode_with("priority", p, &out).ok());
  EXPECT_EQ(out.priority, 0);
  for (int64_t bad : {int64_t{-1}, int64_t{kLevels}}) {
    p.set_int64_param(bad);
    EXPECT_TRUE(IsInvalid(decode_with("priority", p, &out), "parameter 'priority' must be an "
                                                            "integer in [0, 1048575]"));
  }
  p.set_uint64_param(std::numeric_limits<uint64_t>::max());
  EXPECT_TRUE(IsInvalid(decode_with("priority", p, &out), "parameter 'priority'"));
  p.set_string_param("1");
  EXPECT_TRUE(IsInvalid(decode_with("priority", p, &out), "parameter 'priority'"));

  p.set_int64_param(2500);
  ASSERT_TRUE(decode_with("timeout", p, &out).ok());
  EXPECT_EQ(out.timeout_us, 2500);
  p.set_int64_param(0);  // KServe's "not given"
  ASSERT_TRUE(decode_with("timeout", p, &out).ok());
  EXPECT_EQ(out.timeout_us, -1);
  p.set_int64_param(-5);
  EXPECT_TRUE(IsInvalid(decode_with("timeout", p, &out), "parameter 'timeout' must be a "
                                                         "non-negative integer"));
  p.set_uint64_param(std::numeric_limits<uint64_t>::max());
  EXPECT_TRUE(IsInvalid(decode_with("timeout", p, &out), "parameter 'timeout'"));

  p.set_uint64_param(7);
  EXPECT_TRUE(IsInvalid(decode_with("sequence_id", p, &out),
                        "parameter 'sequence_id': sequence batching is not supported"));
  ASSERT_TRUE(decode_with("binary_data_output", p, &out).ok());  // meaningless here: ignored
}

}  // namespace
}  // namespace engine::server
