// The classification extension (classification.h): which requests ask for it, and the
// "value:index" strings Triton would answer.
#include "classification.h"

#include <gtest/gtest.h>

#include "ort_runtime.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace engine::server {
namespace {

template <typename T>
HostTensor Tensor(ElementType type, std::vector<int64_t> shape, const std::vector<T>& values) {
  HostTensor t = AllocateHostTensor(type, shape);
  std::memcpy(MutableData(t), values.data(), values.size() * sizeof(T));
  return t;
}

InferParameterView Int64Param(std::string_view key, int64_t value) {
  InferParameterView p;
  p.key = key;
  p.choice = inference::InferParameter::kInt64Param;
  p.int64_value = value;
  return p;
}

InferResult OneOutput(HostTensor t) {
  InferResult result;
  result.outputs.emplace_back("probs", std::move(t));
  return result;
}

TEST(ClassCounts, PerRequestedOutputOrEmpty) {
  InferRequestView request;
  request.output_names = {"a", "b"};
  std::vector<int64_t> counts;
  ASSERT_TRUE(ClassCounts(request, &counts).ok());
  EXPECT_TRUE(counts.empty());
  request.output_parameters = {{}, {Int64Param("classification", 3), Int64Param("other", 1)}};
  ASSERT_TRUE(ClassCounts(request, &counts).ok());
  EXPECT_EQ(counts, (std::vector<int64_t>{0, 3}));
}

TEST(ClassCounts, RefusesAValueThatIsNotAPositiveInteger) {
  InferRequestView request;
  request.output_names = {"probs"};
  std::vector<int64_t> counts;
  for (int64_t bad : {int64_t{0}, int64_t{-2}}) {
    request.output_parameters = {{Int64Param("classification", bad)}};
    const Status s = ClassCounts(request, &counts);
    EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
    EXPECT_EQ(s.message(), "requested output 'probs': parameter 'classification' must be a "
                           "positive integer (the number of classes to return)");
  }
  InferParameterView text;
  text.key = "classification";
  text.choice = inference::InferParameter::kStringParam;
  request.output_parameters = {{text}};
  EXPECT_EQ(ClassCounts(request, &counts).code(), StatusCode::kInvalidInput);
}

TEST(Classify, TopKPerRowLargestFirstAsTritonPrintsThem) {
  InferResult result = OneOutput(
      Tensor<float>(ElementType::kFloat32, {2, 4}, {0.1f, 0.9f, 0.5f, 0.2f, 3, -1, 7, 3}));
  ASSERT_TRUE(Classify({2}, /*batched=*/true, &result).ok());
  const HostTensor& out = result.outputs[0].second;
  EXPECT_EQ(out.type, ElementType::kString);
  EXPECT_EQ(out.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(out.strings, (std::vector<std::string>{"0.900000:1", "0.500000:2", "7.000000:2",
                                                   "3.000000:0"}));  // a tie: lower index first
}

TEST(Classify, WithoutABatchDimensionRanksTheWholeTensorAndClampsK) {
  InferResult result =
      OneOutput(Tensor<int64_t>(ElementType::kInt64, {2, 2}, {4, -9, 12, 0}));
  ASSERT_TRUE(Classify({10}, /*batched=*/false, &result).ok());
  const HostTensor& out = result.outputs[0].second;
  EXPECT_EQ(out.shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(out.strings, (std::vector<std::string>{"12:2", "4:0", "0:3", "-9:1"}));
}

TEST(Classify, NanRanksLowestAndHalvesAreWidened) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  InferResult floats = OneOutput(Tensor<float>(ElementType::kFloat32, {1, 3}, {nan, -2, 1}));
  ASSERT_TRUE(Classify({3}, true, &floats).ok());
  EXPECT_EQ(floats.outputs[0].second.strings,
            (std::vector<std::string>{"1.000000:2", "-2.000000:1", "nan:0"}));
  // FP16 1.5 (0x3E00) and 0.5 (0x3800).
  InferResult halves =
      OneOutput(Tensor<uint16_t>(ElementType::kFloat16, {1, 2}, {0x3800, 0x3E00}));
  ASSERT_TRUE(Classify({1}, true, &halves).ok());
  EXPECT_EQ(halves.outputs[0].second.strings, (std::vector<std::string>{"1.500000:1"}));
}

TEST(Classify, OnlyTheOutputsAskedForAndNoRowsGiveNoClasses) {
  InferResult result;
  result.outputs.emplace_back("a", Tensor<int32_t>(ElementType::kInt32, {0, 3}, {}));
  result.outputs.emplace_back("b", Tensor<int32_t>(ElementType::kInt32, {1, 2}, {5, 6}));
  ASSERT_TRUE(Classify({2, 0}, true, &result).ok());
  EXPECT_EQ(result.outputs[0].second.type, ElementType::kString);
  EXPECT_EQ(result.outputs[0].second.shape, (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(result.outputs[1].second.type, ElementType::kInt32);  // not asked: untouched
}

TEST(Classify, RefusesBytesAndBoolOutputs) {
  HostTensor strings;
  strings.type = ElementType::kString;
  strings.shape = {1, 2};
  strings.strings = {"a", "b"};
  InferResult text = OneOutput(strings);
  const Status s = Classify({1}, true, &text);
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_EQ(s.message(),
            "requested output 'probs': classification needs a numeric output; this one is BYTES");
  InferResult flags = OneOutput(Tensor<uint8_t>(ElementType::kBool, {1, 2}, {1, 0}));
  EXPECT_EQ(Classify({1}, true, &flags).code(), StatusCode::kInvalidInput);
}

// A batch dimension as the ModelConfig RPC reports one (server/control.py): batching on, or a
// row limit with every input and output dynamic along dim 0. A fixed-shape model with a row
// limit has none, so it is classified over the whole tensor, not per "row".
TEST(HasBatchDimension, AsTheModelConfigReportsIt) {
  const char* library = std::getenv("ENGINE_TEST_ORT_LIBRARY");
  const char* models = std::getenv("ENGINE_TEST_MODEL_DIR");
  ASSERT_TRUE(library != nullptr && models != nullptr) << "set ENGINE_TEST_ORT_LIBRARY/MODEL_DIR";
  OrtRuntime::Init(library);
  auto load = [&](const std::string& file, int batching, int64_t max_request_rows) {
    ModelOptions options;
    options.batching = batching;
    options.max_request_rows = max_request_rows;
    return Model::LoadFromPath(std::string(models) + "/" + file, options);
  };
  EXPECT_TRUE(HasBatchDimension(*load("relu.onnx", -1, 0)));  // batching on by default
  EXPECT_TRUE(HasBatchDimension(*load("relu.onnx", 0, 8)));   // Triton's max_batch_size 8
  EXPECT_FALSE(HasBatchDimension(*load("relu.onnx", 0, 0)));  // max_batch_size 0
  EXPECT_FALSE(HasBatchDimension(*load("fixed.onnx", 0, 8)));
}

}  // namespace
}  // namespace engine::server
