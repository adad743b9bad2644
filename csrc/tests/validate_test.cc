#include "validate.h"

#include <gtest/gtest.h>

#include "status.h"

namespace engine {
namespace {

TensorInfo Info(const std::string& name, ElementType type, std::vector<int64_t> shape) {
  return TensorInfo{name, type, std::move(shape)};
}

HostTensor Floats(std::vector<int64_t> shape, std::vector<float>* storage) {
  HostTensor t;
  t.type = ElementType::kFloat32;
  t.shape = std::move(shape);
  storage->assign(static_cast<size_t>(CheckedElementCount(t.shape, 1 << 30)), 0.f);
  t.data = storage->data();
  t.byte_size = storage->size() * sizeof(float);
  return t;
}

std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const CoreError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidInput);
    return e.what();
  }
  return "";
}

TEST(Validate, AcceptsMatchingTensor) {
  std::vector<float> s;
  HostTensor t = Floats({4, 3}, &s);
  EXPECT_NO_THROW(CheckTensor(Info("x", ElementType::kFloat32, {-1, 3}), t));
}

TEST(Validate, NamesTheInputAndTheMismatch) {
  std::vector<float> s;
  HostTensor t = Floats({4, 2}, &s);
  auto spec = Info("x", ElementType::kFloat32, {-1, 3});
  EXPECT_EQ(ErrorOf([&] { CheckTensor(spec, t); }),
            "input 'x': expected shape [-1, 3], got [4, 2] (dimension 1 must be 3)");
  auto f64 = Info("x", ElementType::kFloat64, {-1, 2});
  EXPECT_EQ(ErrorOf([&] { CheckTensor(f64, t); }),
            "input 'x': expected dtype float64, got float32 (no implicit casts)");
  auto rank3 = Info("x", ElementType::kFloat32, {-1, 4, 2});
  EXPECT_NE(ErrorOf([&] { CheckTensor(rank3, t); }).find("expected rank 3"), std::string::npos);
}

TEST(Validate, ByteSizeMustMatchShape) {
  std::vector<float> s;
  HostTensor t = Floats({4, 3}, &s);
  t.byte_size -= 4;
  auto spec = Info("x", ElementType::kFloat32, {-1, 3});
  EXPECT_EQ(ErrorOf([&] { CheckTensor(spec, t); }),
            "input 'x': shape [4, 3] of float32 needs 48 bytes, got 44");
  t.shape = {-4, 3};
  EXPECT_NE(ErrorOf([&] { CheckTensor(spec, t); }).find("negative"), std::string::npos);
}

TEST(Validate, HugeShapesDoNotOverflow) {
  HostTensor t;
  t.type = ElementType::kFloat32;
  t.shape = {1LL << 40, 1LL << 40};
  auto spec = Info("x", ElementType::kFloat32, {-1, -1});
  EXPECT_NE(ErrorOf([&] { CheckTensor(spec, t); }).find("too large"), std::string::npos);
}

TEST(Validate, StringCountMustMatchShape) {
  HostTensor t;
  t.type = ElementType::kString;
  t.shape = {3};
  t.strings = {"a", "b"};
  EXPECT_EQ(ErrorOf([&] { CheckTensor(Info("w", ElementType::kString, {-1}), t); }),
            "input 'w': shape [3] needs 3 strings, got 2");
}

TEST(Validate, BindInputsOrdersAndChecksNames) {
  std::vector<float> sa, sb;
  HostTensor a = Floats({1, 2}, &sa), b = Floats({1, 2}, &sb);
  std::vector<TensorInfo> sig = {Info("a", ElementType::kFloat32, {-1, 2}),
                                 Info("b", ElementType::kFloat32, {-1, 2})};
  auto bound = BindInputs(sig, {{"b", &b}, {"a", &a}});
  ASSERT_EQ(bound.size(), 2u);
  EXPECT_EQ(bound[0], &a);
  EXPECT_EQ(bound[1], &b);
  EXPECT_EQ(ErrorOf([&] { BindInputs(sig, {{"a", &a}}); }), "missing input(s) 'b'");
  EXPECT_EQ(ErrorOf([&] { BindInputs(sig, {{"a", &a}, {"c", &b}}); }),
            "unknown input 'c'; the model's inputs are 'a', 'b'");
  EXPECT_EQ(ErrorOf([&] { BindInputs(sig, {{"a", &a}, {"a", &b}}); }),
            "input 'a' is given more than once");
}

TEST(Validate, SelectOutputs) {
  std::vector<TensorInfo> outs = {Info("p", ElementType::kFloat32, {-1}),
                                  Info("q", ElementType::kInt64, {-1})};
  EXPECT_EQ(SelectOutputs(outs, {}), (std::vector<size_t>{0, 1}));
  EXPECT_EQ(SelectOutputs(outs, {"q"}), (std::vector<size_t>{1}));
  EXPECT_NE(ErrorOf([&] { SelectOutputs(outs, {"r"}); }).find("unknown output 'r'"),
            std::string::npos);
  EXPECT_NE(ErrorOf([&] { SelectOutputs(outs, {"p", "p"}); }).find("more than once"),
            std::string::npos);
}

// The Into forms write over what a recycled request held before.
TEST(Validate, IntoFormsReplaceStaleContents) {
  std::vector<float> sa, sb;
  HostTensor a = Floats({1, 2}, &sa), b = Floats({1, 2}, &sb);
  std::vector<TensorInfo> sig = {Info("a", ElementType::kFloat32, {-1, 2}),
                                 Info("b", ElementType::kFloat32, {-1, 2})};
  std::vector<NamedTensor> named;
  named.emplace_back("b", b);
  named.emplace_back("a", a);
  std::vector<const HostTensor*> bound = {&b, &b, &b};
  BindInputsInto(sig, named, &bound);
  ASSERT_EQ(bound.size(), 2u);
  EXPECT_EQ(bound[0], &named[1].second);
  EXPECT_EQ(bound[1], &named[0].second);

  std::vector<TensorInfo> outs = {Info("p", ElementType::kFloat32, {-1}),
                                  Info("q", ElementType::kInt64, {-1})};
  std::vector<size_t> indices = {5, 6, 7};
  SelectOutputsInto(outs, {"q", "p"}, &indices);
  EXPECT_EQ(indices, (std::vector<size_t>{1, 0}));
  SelectOutputsInto(outs, {}, &indices);
  EXPECT_EQ(indices, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(ErrorOf([&] { SelectOutputsInto(outs, {"q", "q"}, &indices); }),
            "output 'q' is requested more than once");
}

}  // namespace
}  // namespace engine
