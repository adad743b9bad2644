#include "drift.h"

#include <gtest/gtest.h>

#include <cmath>

#include "sampler.h"
#include "status.h"

namespace engine {
namespace {

HostTensor Floats(std::vector<int64_t> shape, std::vector<float> values) {
  HostTensor t = AllocateHostTensor(ElementType::kFloat32, shape);
  std::copy(values.begin(), values.end(), static_cast<float*>(MutableData(t)));
  return t;
}

std::vector<TensorInfo> Inputs() {
  return {TensorInfo{"x", ElementType::kFloat32, {-1, 2}},
          TensorInfo{"w", ElementType::kString, {-1}}};
}
std::vector<TensorInfo> Outputs() { return {TensorInfo{"y", ElementType::kInt64, {-1}}}; }

TEST(Drift, NumericBinsNanAndInf) {
  DriftFeature f{"x1", "x", 1, false, {0.0, 10.0}, {}};
  DriftCounters counters({f}, Inputs(), Outputs(), 2);
  HostTensor x = Floats({5, 2}, {0, -1, 0, 0, 0, 5, 0, 10, 0, NAN});
  HostTensor w;
  w.type = ElementType::kString;
  w.shape = {5};
  w.strings = {"a", "b", "", "a", "zz"};
  counters.Observe(0, {&x, &w}, {}, {});
  HostTensor x2 = Floats({1, 2}, {0, INFINITY});
  counters.Observe(1, {&x2, &w}, {}, {});  // another shard; Snapshot sums them
  auto snapshot = counters.Snapshot();
  // bins: <0, [0,10), >=10, NaN, inf
  EXPECT_EQ(snapshot[0], (std::vector<int64_t>{1, 2, 1, 1, 1}));
}

TEST(Drift, CategoricalStringsAndIntegers) {
  DriftFeature words{"w", "w", -1, true, {}, {"a", "b"}};
  DriftFeature labels{"y", "y", -1, true, {}, {"0", "1"}};
  DriftCounters counters({words, labels}, Inputs(), Outputs(), 1);
  HostTensor x = Floats({5, 2}, std::vector<float>(10, 0.f));
  HostTensor w;
  w.type = ElementType::kString;
  w.shape = {5};
  w.strings = {"a", "b", "", "a", "zz"};
  HostTensor y = AllocateHostTensor(ElementType::kInt64, {5});
  auto* yv = static_cast<int64_t*>(MutableData(y));
  yv[0] = 1;
  yv[1] = 1;
  yv[2] = 0;
  yv[3] = 7;
  yv[4] = 1;
  std::vector<HostTensor> outputs;
  outputs.push_back(std::move(y));
  counters.Observe(0, {&x, &w}, outputs, {0});
  auto snapshot = counters.Snapshot();
  EXPECT_EQ(snapshot[0], (std::vector<int64_t>{2, 1, 1, 1}));  // a, b, other, missing
  EXPECT_EQ(snapshot[1], (std::vector<int64_t>{1, 3, 1, 0}));
}

TEST(Drift, BadFeaturesAreConfigErrors) {
  auto expect_bad = [](DriftFeature f, const std::string& fragment) {
    try {
      DriftCounters({f}, Inputs(), Outputs(), 1);
      ADD_FAILURE() << "expected an error for " << f.name;
    } catch (const CoreError& e) {
      EXPECT_EQ(e.code(), StatusCode::kInvalidConfig);
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_bad(DriftFeature{"a", "nope", -1, false, {1.0}, {}}, "no input or output named 'nope'");
  expect_bad(DriftFeature{"b", "x", 5, false, {1.0}, {}}, "column 5 is outside 'x'");
  expect_bad(DriftFeature{"c", "x", 0, false, {2.0, 1.0}, {}}, "strictly ascending");
  expect_bad(DriftFeature{"d", "w", -1, false, {1.0}, {}}, "must be categorical");
  expect_bad(DriftFeature{"e", "w", -1, true, {}, {}}, "needs categories");
}

TEST(Sampler, RateCapacityAndDrops) {
  Sampler sampler;
  EXPECT_FALSE(sampler.ShouldSample());  // off by default
  sampler.Configure(1.0, 2);
  EXPECT_TRUE(sampler.ShouldSample());
  for (int i = 0; i < 3; ++i) sampler.Offer(Sample{std::to_string(i), {}, {}, 1, 1});
  EXPECT_EQ(sampler.dropped(), 1);
  auto taken = sampler.Take(10);
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[0].id, "0");
  HostTensor t = Floats({2}, {1.5f, 2.5f});
  HostTensor copy = CopyTensor(t);
  EXPECT_NE(copy.data, t.data);
  EXPECT_EQ(static_cast<const float*>(copy.data)[1], 2.5f);
}

}  // namespace
}  // namespace engine
