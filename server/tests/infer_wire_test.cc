// The hand-written ModelInfer wire codec against protobuf itself: the writer must produce
// protobuf's bytes, and the reader must never accept bytes protobuf refuses nor read them
// differently (a seeded differential test over mutated messages).
#include "infer_wire.h"

#include <grpcpp/support/byte_buffer.h>

#include <google/protobuf/stubs/logging.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "infer_message.h"
#include "wire_format.h"

namespace engine::server {
namespace {

using inference::InferParameter;
using inference::ModelInferRequest;
using inference::ModelInferResponse;

// A canonical text of a view (parameters sorted by key), for comparing two readings.
std::string Describe(const InferRequestView& v) {
  std::string out = "name=" + std::string(v.model_name) + ";version=" +
                    std::string(v.model_version) + ";id=" + std::string(v.id) + ";params(" +
                    std::to_string(v.parameters.size()) + ")=";
  std::map<std::string, std::tuple<int, int64_t, uint64_t, bool>> params;
  for (const auto& p : v.parameters) {
    params[std::string(p.key)] = {static_cast<int>(p.choice), p.int64_value, p.uint64_value,
                                  p.bool_value};
  }
  for (const auto& [key, value] : params) {
    out += key + ":" + std::to_string(std::get<0>(value)) + "/" +
           std::to_string(std::get<1>(value)) + "/" + std::to_string(std::get<2>(value)) + "/" +
           (std::get<3>(value) ? "true" : "false") + ",";
  }
  out += ";inputs=";
  for (const auto& in : v.inputs) {
    out += std::string(in.name) + "|" + std::string(in.datatype) + "|" + ShapeToString(in.shape) +
           (in.contents != nullptr ? "|contents" : "") + ",";
  }
  out += ";outputs=";
  for (const auto& o : v.output_names) out += std::string(o) + ",";
  out += ";raw=";
  for (const auto& r : v.raw_input_contents) out += std::to_string(r.size()) + ":" + std::string(r);
  return out;
}

std::string ProtobufReading(const std::string& bytes, bool* parsed) {
  ModelInferRequest message;
  *parsed = message.ParseFromString(bytes);
  if (!*parsed) return "";
  InferRequestView view;
  ViewInferRequest(message, &view);
  return Describe(view);
}

// tritonclient's request for one FP32 input, as the benchmark sends it.
ModelInferRequest TritonStyleRequest() {
  ModelInferRequest r;
  r.set_model_name("mlp");
  r.set_id("req-7");
  auto* in = r.add_inputs();
  in->set_name("x");
  in->set_datatype("FP32");
  in->add_shape(1);
  in->add_shape(32);
  r.add_outputs()->set_name("y");
  r.add_raw_input_contents(std::string(128, '\x01'));
  return r;
}

// --- Reader --------------------------------------------------------------------------------

TEST(ReadInferRequest, ReadsTheCommonFormInPlace) {
  ModelInferRequest r = TritonStyleRequest();
  r.set_model_version("3");
  (*r.mutable_parameters())["priority"].set_uint64_param(2);
  (*r.mutable_parameters())["timeout"].set_int64_param(-4);
  const std::string bytes = r.SerializeAsString();
  InferRequestView view;
  ASSERT_TRUE(ReadInferRequest(bytes, &view));
  EXPECT_EQ(view.model_name, "mlp");
  EXPECT_EQ(view.model_version, "3");
  EXPECT_EQ(view.id, "req-7");
  ASSERT_EQ(view.inputs.size(), 1u);
  EXPECT_EQ(view.inputs[0].shape, (std::vector<int64_t>{1, 32}));
  EXPECT_EQ(view.inputs[0].contents, nullptr);
  ASSERT_EQ(view.raw_input_contents.size(), 1u);
  // In place: the raw contents point into the bytes, no copy.
  EXPECT_GE(view.raw_input_contents[0].data(), bytes.data());
  EXPECT_LE(view.raw_input_contents[0].data() + 128, bytes.data() + bytes.size());
  bool parsed = false;
  EXPECT_EQ(Describe(view), ProtobufReading(bytes, &parsed));
  EXPECT_TRUE(parsed);
}

TEST(ReadInferRequest, DeclinesWhatProtobufMustRead) {
  auto declines = [](const ModelInferRequest& r) {
    InferRequestView view;
    return !ReadInferRequest(r.SerializeAsString(), &view);
  };
  ModelInferRequest typed = TritonStyleRequest();
  typed.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1.f);
  EXPECT_TRUE(declines(typed));
  ModelInferRequest input_parameter = TritonStyleRequest();
  (*input_parameter.mutable_inputs(0)->mutable_parameters())["binary_data_size"]
      .set_int64_param(128);
  EXPECT_TRUE(declines(input_parameter));
  ModelInferRequest output_parameter = TritonStyleRequest();
  (*output_parameter.mutable_outputs(0)->mutable_parameters())["classification"]
      .set_int64_param(2);
  EXPECT_TRUE(declines(output_parameter));
  ModelInferRequest non_ascii = TritonStyleRequest();
  non_ascii.set_model_name("caf\xc3\xa9");
  EXPECT_TRUE(declines(non_ascii));
  ModelInferRequest string_parameter = TritonStyleRequest();
  (*string_parameter.mutable_parameters())["note"].set_string_param("\xc3\xa9t\xc3\xa9");
  EXPECT_TRUE(declines(string_parameter));

  InferRequestView view;
  const std::string bytes = TritonStyleRequest().SerializeAsString();
  EXPECT_FALSE(ReadInferRequest(bytes + "\x48\x01", &view));        // unknown field 9
  EXPECT_FALSE(ReadInferRequest(bytes.substr(0, bytes.size() - 1), &view));  // truncated
  EXPECT_FALSE(ReadInferRequest(std::string("\x00", 1), &view));    // field number 0
  EXPECT_FALSE(ReadInferRequest("\x08\x01", &view));                 // model_name as a varint
}

TEST(ReadInferRequest, UnpackedShapeAsProtobufReadsIt) {
  // InferInputTensor {name "x", shape 2 (unpacked varint), shape [3, 300] (packed)}.
  const std::string input = std::string("\x0a\x01x", 3) + std::string("\x18\x02", 2) +
                            std::string("\x1a\x03\x03\xac\x02", 5);
  const std::string bytes = std::string("\x2a") + static_cast<char>(input.size()) + input;
  InferRequestView view;
  ASSERT_TRUE(ReadInferRequest(bytes, &view));
  EXPECT_EQ(view.inputs[0].shape, (std::vector<int64_t>{2, 3, 300}));
  bool parsed = false;
  EXPECT_EQ(Describe(view), ProtobufReading(bytes, &parsed));
  EXPECT_TRUE(parsed);
}

TEST(ReadInferRequest, RepeatedKeysAndChoicesResolveAsProtobuf) {
  auto entry = [](const std::string& key, const std::string& value) {
    const std::string body = std::string("\x0a") + static_cast<char>(key.size()) + key +
                             std::string("\x12") + static_cast<char>(value.size()) + value;
    return std::string("\x22") + static_cast<char>(body.size()) + body;
  };
  // "priority": int64 5, then a second entry int64 7 then uint64 9 (one oneof, last wins).
  const std::string bytes = entry("priority", std::string("\x10\x05", 2)) +
                            entry("priority", std::string("\x10\x07\x28\x09", 4)) +
                            entry("timeout", std::string("\x10\x03", 2));
  InferRequestView view;
  ASSERT_TRUE(ReadInferRequest(bytes, &view));
  ASSERT_EQ(view.parameters.size(), 2u);
  EXPECT_EQ(view.parameters[0].choice, InferParameter::kUint64Param);
  EXPECT_EQ(view.parameters[0].uint64_value, 9u);
  EXPECT_EQ(view.parameters[0].int64_value, 0);
  bool parsed = false;
  EXPECT_EQ(Describe(view), ProtobufReading(bytes, &parsed));
  EXPECT_TRUE(parsed);
  // A key given twice inside one entry is left to protobuf.
  const std::string twice = std::string("\x22\x06\x0a\x01" "a" "\x0a\x01" "b", 8);
  EXPECT_FALSE(ReadInferRequest(twice, &view));
}

// Random messages over every field (some the reader declines), serialized, then mutated:
// whatever the reader accepts, protobuf must parse to the same view.
ModelInferRequest RandomRequest(std::mt19937_64& rng) {
  auto pick = [&rng](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  const std::vector<std::string> words = {"", "x", "mlp", "FP32", "BYTES", "priority",
                                          "timeout", "sequence_id", "id-42"};
  auto word = [&] { return words[static_cast<size_t>(pick(static_cast<int>(words.size())))]; };
  ModelInferRequest r;
  if (pick(4)) r.set_model_name(word());
  if (pick(3) == 0) r.set_model_version(std::to_string(pick(100)));
  if (pick(2)) r.set_id(word());
  for (int i = pick(3); i > 0; --i) {
    InferParameter& p = (*r.mutable_parameters())[word()];
    switch (pick(6)) {
      case 0: p.set_bool_param(pick(2) == 1); break;
      case 1: p.set_int64_param(static_cast<int64_t>(rng()) >> pick(64)); break;
      case 2: p.set_string_param(word()); break;
      case 3: p.set_double_param(0.5 * pick(9)); break;
      case 4: p.set_uint64_param(rng() >> pick(64)); break;
      default: break;  // no choice
    }
  }
  for (int i = pick(4); i > 0; --i) {
    auto* in = r.add_inputs();
    if (pick(5)) in->set_name(word());
    if (pick(5)) in->set_datatype(word());
    for (int d = pick(4); d > 0; --d) in->add_shape(static_cast<int64_t>(rng()) >> pick(64));
    if (pick(8) == 0) in->mutable_contents()->add_int_contents(pick(9));
    if (pick(10) == 0) (*in->mutable_parameters())[word()].set_int64_param(1);
  }
  for (int i = pick(3); i > 0; --i) {
    auto* out = r.add_outputs();
    out->set_name(word());
    if (pick(10) == 0) (*out->mutable_parameters())[word()].set_bool_param(true);
  }
  for (int i = pick(4); i > 0; --i) r.add_raw_input_contents(std::string(pick(40), 'r'));
  return r;
}

std::string Mutate(std::string bytes, std::mt19937_64& rng) {
  auto pick = [&rng](size_t n) { return static_cast<size_t>(rng() % n); };
  for (int m = static_cast<int>(pick(3)); m >= 0; --m) {
    switch (pick(4)) {
      case 0:  // truncate
        bytes.resize(pick(bytes.size() + 1));
        break;
      case 1:  // flip a byte
        if (!bytes.empty()) bytes[pick(bytes.size())] = static_cast<char>(rng());
        break;
      case 2:  // insert a byte
        bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(pick(bytes.size() + 1)),
                     static_cast<char>(rng()));
        break;
      default:  // set or clear the high bit of one byte (varint continuation, UTF-8)
        if (!bytes.empty()) bytes[pick(bytes.size())] ^= static_cast<char>(0x80);
        break;
    }
  }
  return bytes;
}

TEST(ReadInferRequest, NeverAcceptsOrReadsDifferentlyFromProtobuf) {
  google::protobuf::LogSilencer quiet;  // protobuf logs each invalid UTF-8 string it refuses
  std::mt19937_64 rng(20261128);
  int accepted_clean = 0;
  int accepted_mutated = 0;
  int refused_by_both = 0;
  constexpr int kMessages = 4000;
  constexpr int kMutations = 8;
  for (int i = 0; i < kMessages; ++i) {
    const std::string clean = RandomRequest(rng).SerializeAsString();
    for (int m = 0; m <= kMutations; ++m) {
      const std::string bytes = m == 0 ? clean : Mutate(clean, rng);
      InferRequestView view;
      const bool fast = ReadInferRequest(bytes, &view);
      bool parsed = false;
      const std::string expected = ProtobufReading(bytes, &parsed);
      if (fast) {
        ASSERT_TRUE(parsed) << "the reader accepted bytes protobuf refuses";
        ASSERT_EQ(Describe(view), expected);
        (m == 0 ? accepted_clean : accepted_mutated) += 1;
      } else if (!parsed) {
        ++refused_by_both;
      }
    }
  }
  // The comparison is only as good as its coverage: most clean messages take the fast path,
  // and so do some mutated ones; some mutations break the message for both.
  EXPECT_GT(accepted_clean, kMessages / 3);
  EXPECT_GT(accepted_mutated, kMessages / 10);
  EXPECT_GT(refused_by_both, kMessages / 10);
}

// --- Bounds, checked before parsing ---------------------------------------------------------

std::string Field(char tag, const std::string& payload) {
  std::string out(1, tag);
  char length[10];
  out.append(length, wire::WriteVarint(payload.size(), length));
  return out + payload;
}

std::string Repeat(const std::string& part, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += part;
  return out;
}

::testing::AssertionResult RefusedWith(const std::string& bytes, const std::string& fragment) {
  const Status s = CheckInferRequestBounds(bytes, ServerLimits{});
  if (s.code() == StatusCode::kInvalidInput && s.message().find(fragment) != std::string::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "status " << StatusCodeName(s.code()) << ": \""
                                       << s.message() << "\"";
}

TEST(CheckInferRequestBounds, CountsEveryRepeatedFieldAgainstItsLimit) {
  const std::string name = Field('\x0a', "mlp");
  EXPECT_TRUE(CheckInferRequestBounds(TritonStyleRequest().SerializeAsString(), ServerLimits{})
                  .ok());
  EXPECT_TRUE(CheckInferRequestBounds(name + Repeat(Field('\x2a', ""), 64), ServerLimits{}).ok());
  EXPECT_TRUE(RefusedWith(name + Repeat(Field('\x2a', ""), 65),
                          "request has 65 inputs; the limit is 64"));
  EXPECT_TRUE(RefusedWith(Repeat(Field('\x32', ""), 65), "request asks for 65 outputs"));
  EXPECT_TRUE(RefusedWith(Repeat(Field('\x3a', "ab"), 65), "raw_input_contents has 65 buffers"));
  EXPECT_TRUE(RefusedWith(Repeat(Field('\x22', ""), 65), "request has 65 parameters"));
  // An input's dims, packed or one varint each, and its parameters; an output's parameters.
  EXPECT_TRUE(CheckInferRequestBounds(Field('\x2a', Field('\x1a', std::string(64, '\x01'))),
                                      ServerLimits{})
                  .ok());
  EXPECT_TRUE(RefusedWith(Field('\x2a', Field('\x1a', std::string(65, '\x01'))),
                          "input 0 has a shape of 65 dimensions; the limit is 64"));
  EXPECT_TRUE(RefusedWith(Field('\x2a', "") + Field('\x2a', Repeat(std::string("\x18\x81\x01"), 65)),
                          "input 1 has a shape of 65 dimensions"));
  EXPECT_TRUE(RefusedWith(Field('\x2a', Repeat(Field('\x22', ""), 65)),
                          "input 0 has more than 64 parameters"));
  EXPECT_TRUE(RefusedWith(Field('\x32', Repeat(Field('\x12', ""), 65)),
                          "requested output 0 has more than 64 parameters"));
}

TEST(CheckInferRequestBounds, InputAndOutputLimitsAreConfigurable) {
  ServerLimits limits;
  limits.max_inputs = 2;
  limits.max_outputs = 1;
  ModelInferRequest r;
  for (const char* name : {"a", "b"}) {
    auto* in = r.add_inputs();
    in->set_name(name);
    in->set_datatype("INT32");
    in->add_shape(0);
  }
  r.add_outputs()->set_name("y");
  EXPECT_TRUE(CheckInferRequestBounds(r.SerializeAsString(), limits).ok());  // at the limits
  r.add_inputs()->set_name("c");
  Status s = CheckInferRequestBounds(r.SerializeAsString(), limits);
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_NE(s.message().find("request has 3 inputs; the limit is 2"), std::string::npos)
      << s.message();
  r.mutable_inputs()->RemoveLast();
  r.add_outputs()->set_name("z");
  s = CheckInferRequestBounds(r.SerializeAsString(), limits);
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_NE(s.message().find("request asks for 2 outputs; the limit is 1"), std::string::npos)
      << s.message();
}

TEST(CheckInferRequestBounds, SkipsWhatProtobufSkips) {
  const std::string inputs = Repeat(Field('\x2a', ""), 65);
  // Unknown fields protobuf keeps do not hide what follows them: a group (field 9, with a
  // nested group inside), a ten-byte varint whose last byte protobuf drops bits of, fixed32.
  const std::string group = std::string("\x4b") + "\x08\x01" + "\x53\x54" + "\x4c";
  EXPECT_TRUE(RefusedWith(group + inputs, "65 inputs"));
  const std::string wide_varint = "\x48" + std::string(9, '\xff') + "\x7f";
  EXPECT_TRUE(RefusedWith(wide_varint + inputs, "65 inputs"));
  EXPECT_TRUE(RefusedWith(std::string("\x4d\x01\x02\x03\x04", 5) + inputs, "65 inputs"));
  // Counting stops where the bytes cannot be read; the parser refuses them there too.
  EXPECT_TRUE(CheckInferRequestBounds(std::string("\x2a\x7f") + inputs, ServerLimits{}).ok());
  ModelInferRequest message;
  EXPECT_FALSE(message.ParseFromString(std::string("\x2a\x7f") + inputs));
}

// --- Writer --------------------------------------------------------------------------------

HostTensor Numeric(ElementType type, const std::vector<int64_t>& shape, const std::string& raw) {
  HostTensor t = AllocateHostTensor(type, shape);
  EXPECT_EQ(t.byte_size, raw.size());
  if (!raw.empty()) std::memcpy(MutableData(t), raw.data(), raw.size());
  return t;
}

HostTensor Strings(const std::vector<int64_t>& shape, std::vector<std::string> elements) {
  HostTensor t;
  t.type = ElementType::kString;
  t.shape = shape;
  t.strings = std::move(elements);
  return t;
}

// protobuf's serialization of the same response.
std::string ProtobufBytes(const InferResponseFields& fields) {
  ModelInferResponse response;
  response.set_model_name(std::string(fields.model_name));
  response.set_model_version(std::string(fields.model_version));
  response.set_id(std::string(fields.id));
  for (const auto& [name, tensor] : *fields.outputs) {
    auto* out = response.add_outputs();
    out->set_name(name);
    out->set_datatype(KServeDatatype(tensor.type));
    for (const int64_t d : tensor.shape) out->add_shape(d);
    std::string* raw = response.add_raw_output_contents();
    if (tensor.type == ElementType::kString) {
      raw->resize(BytesElementsSize(tensor.strings));
      WriteBytesElements(tensor.strings, raw->data());
    } else {
      raw->assign(static_cast<const char*>(tensor.data), tensor.byte_size);
    }
  }
  return response.SerializeAsString();
}

std::string Written(const InferResponseFields& fields) {
  std::string out(InferResponseSize(fields), '?');
  EXPECT_EQ(WriteInferResponse(fields, out.data()), out.data() + out.size());
  return out;
}

TEST(WriteInferResponse, WritesProtobufsBytes) {
  const std::vector<std::pair<std::string, HostTensor>> outputs = {
      {"probs", Numeric(ElementType::kFloat32, {1, 3}, std::string(12, '\x3f'))},
      {"label", Numeric(ElementType::kInt64, {1}, std::string(8, '\xff'))},
      {"words", Strings({2}, {"cat", std::string(258, 'q')})},
      {"half", Numeric(ElementType::kFloat16, {1}, std::string("\x00\x3c", 2))},
      {"scalar", Numeric(ElementType::kBool, {}, std::string(1, '\x01'))},
      {"empty", Numeric(ElementType::kFloat32, {0, 300}, "")},
      {"", Strings({1}, {""})},
  };
  InferResponseFields fields;
  fields.model_name = "mlp";
  fields.model_version = "12";
  fields.id = "req-1";
  fields.outputs = &outputs;
  EXPECT_EQ(Written(fields), ProtobufBytes(fields));
  fields.id = "";  // proto3 leaves empty strings out
  EXPECT_EQ(Written(fields), ProtobufBytes(fields));
  const std::vector<std::pair<std::string, HostTensor>> none;
  fields.outputs = &none;
  EXPECT_EQ(Written(fields), ProtobufBytes(fields));
}

TEST(WriteInferResponse, ParsesBackToTheTensors) {
  const std::vector<float> probs = {0.25f, 0.5f, 0.25f};
  const std::vector<std::pair<std::string, HostTensor>> outputs = {
      {"probs", Numeric(ElementType::kFloat32, {1, 3},
                        std::string(reinterpret_cast<const char*>(probs.data()), 12))},
      {"words", Strings({3}, {"", std::string("\0\xff", 2), "end"})},
  };
  InferResponseFields fields;
  fields.model_name = "m";
  fields.model_version = "1";
  fields.outputs = &outputs;
  ModelInferResponse response;
  ASSERT_TRUE(response.ParseFromString(Written(fields)));
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_EQ(response.outputs(0).name(), "probs");
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_EQ(std::vector<int64_t>(response.outputs(0).shape().begin(),
                                 response.outputs(0).shape().end()),
            (std::vector<int64_t>{1, 3}));
  EXPECT_FALSE(response.outputs(0).has_contents());  // raw only
  EXPECT_EQ(response.raw_output_contents(0), std::string(reinterpret_cast<const char*>(probs.data()), 12));
  EXPECT_EQ(response.outputs(1).datatype(), "BYTES");
  std::vector<std::string> words;
  ASSERT_TRUE(DecodeBytesElements("words", response.raw_output_contents(1), 3, &words).ok());
  EXPECT_EQ(words, outputs[1].second.strings);
}

// The stream's response: a ModelStreamInferResponse wrapping the same ModelInferResponse,
// with "triton_final_response" = true only when the request asked for it.
TEST(InferResponseBuffer, StreamResponseCarriesTheFinalFlagWhenAsked) {
  InferResult result;
  result.outputs = {{"y", Numeric(ElementType::kFloat32, {1, 1}, std::string(4, '\x3f'))}};
  auto parse = [](const grpc::ByteBuffer& buffer, auto* message) {
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(buffer.Dump(&slices).ok());
    std::string bytes;
    for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    ASSERT_TRUE(message->ParseFromString(bytes));
  };
  auto build = [&result](std::string_view id, bool in_stream, bool flag) {
    grpc::ByteBuffer buffer;
    EXPECT_TRUE(
        InferResponseBuffer("mlp", 3, id, result, 64 << 20, &buffer, in_stream, flag).ok());
    return buffer;
  };
  for (bool flag : {false, true}) {
    inference::ModelStreamInferResponse streamed;
    parse(build("id-7", /*in_stream=*/true, flag), &streamed);
    EXPECT_EQ(streamed.error_message(), "");
    const ModelInferResponse& r = streamed.infer_response();
    EXPECT_EQ(r.model_name(), "mlp");
    EXPECT_EQ(r.model_version(), "3");
    EXPECT_EQ(r.id(), "id-7");
    ASSERT_EQ(r.outputs_size(), 1);
    EXPECT_EQ(r.raw_output_contents(0), std::string(4, '\x3f'));
    if (flag) {
      ASSERT_EQ(r.parameters().count("triton_final_response"), 1u);
      EXPECT_TRUE(r.parameters().at("triton_final_response").bool_param());
      EXPECT_EQ(r.parameters_size(), 1);
    } else {
      EXPECT_EQ(r.parameters_size(), 0);
    }
  }
  ModelInferResponse unary;  // ModelInfer's answer: never wrapped, never flagged
  parse(build("", /*in_stream=*/false, false), &unary);
  EXPECT_EQ(unary.parameters_size(), 0);
  EXPECT_EQ(unary.raw_output_contents(0), std::string(4, '\x3f'));
}

// A response over the server's message limit is refused by size before it is built: a stream
// answers that in band instead of gRPC ending the whole stream on an oversized write.
TEST(InferResponseBuffer, RefusesAResponseOverTheMessageLimit) {
  InferResult result;
  result.outputs = {{"y", Numeric(ElementType::kFloat32, {256, 4}, std::string(4096, 'a'))}};
  for (bool in_stream : {false, true}) {
    grpc::ByteBuffer fits;
    ASSERT_TRUE(InferResponseBuffer("mlp", 3, "id", result, 1 << 20, &fits, in_stream).ok());
    const int64_t size = static_cast<int64_t>(fits.Length());
    grpc::ByteBuffer exact;
    EXPECT_TRUE(InferResponseBuffer("mlp", 3, "id", result, size, &exact, in_stream).ok());
    EXPECT_EQ(static_cast<int64_t>(exact.Length()), size);
    grpc::ByteBuffer over;
    const grpc::Status refused =
        InferResponseBuffer("mlp", 3, "id", result, size - 1, &over, in_stream);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_EQ(refused.error_message(),
              "the response would be " + std::to_string(size) +
                  " bytes, more than the server's limit of " + std::to_string(size - 1) +
                  " bytes (--max-message-bytes); request fewer rows or outputs");
    EXPECT_EQ(over.Length(), 0u);
  }
}

// --- Wire primitives -----------------------------------------------------------------------

TEST(WireReader, VarintBounds) {
  uint64_t v = 0;
  const std::string max = std::string(9, '\xff') + "\x01";
  wire::Reader ok(max);
  ASSERT_TRUE(ok.ReadVarint(&v));
  EXPECT_EQ(v, UINT64_MAX);
  EXPECT_TRUE(ok.done());
  const std::string wide = std::string(9, '\xff') + "\x02";  // bits past 64
  wire::Reader too_wide(wide);
  EXPECT_FALSE(too_wide.ReadVarint(&v));
  const std::string eleven = std::string(10, '\x80') + "\x00";
  wire::Reader too_long(eleven);
  EXPECT_FALSE(too_long.ReadVarint(&v));
  wire::Reader unfinished("\x80");
  EXPECT_FALSE(unfinished.ReadVarint(&v));
  for (const uint64_t value : {uint64_t{0}, uint64_t{127}, uint64_t{128}, uint64_t{300},
                               uint64_t{1} << 35, UINT64_MAX}) {
    char buffer[10];
    const char* end = wire::WriteVarint(value, buffer);
    EXPECT_EQ(static_cast<size_t>(end - buffer), wire::VarintSize(value));
    wire::Reader back(std::string_view(buffer, static_cast<size_t>(end - buffer)));
    ASSERT_TRUE(back.ReadVarint(&v));
    EXPECT_EQ(v, value);
  }
}

TEST(WireReader, LengthPastTheEndIsRefused) {
  std::string_view bytes;
  wire::Reader past("\x05" "abcd");
  EXPECT_FALSE(past.ReadLengthDelimited(&bytes));
  wire::Reader exact("\x04" "abcd");
  ASSERT_TRUE(exact.ReadLengthDelimited(&bytes));
  EXPECT_EQ(bytes, "abcd");
  EXPECT_TRUE(exact.done());
}

}  // namespace
}  // namespace engine::server
