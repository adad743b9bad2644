// engine::Model with real ONNX Runtime and real threads: the test the TSan build runs.
// Needs ENGINE_TEST_ORT_LIBRARY (libonnxruntime.so) and ENGINE_TEST_MODEL_DIR (models made by
// tests/native/make_models.py); the test command sets both.
#include "model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "ort_runtime.h"

namespace engine {
namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

class ModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string lib = Env("ENGINE_TEST_ORT_LIBRARY");
    ASSERT_FALSE(lib.empty()) << "set ENGINE_TEST_ORT_LIBRARY to libonnxruntime.so";
    OrtRuntime::Init(lib);
  }
  static std::string ModelPath(const std::string& name) {
    const std::string dir = Env("ENGINE_TEST_MODEL_DIR");
    EXPECT_FALSE(dir.empty()) << "set ENGINE_TEST_MODEL_DIR";
    return dir + "/" + name;
  }
  // The Relu model with default options but for the number of instances.
  static std::shared_ptr<Model> LoadRelu(int instances) {
    ModelOptions options;
    options.instances = instances;
    return Model::LoadFromPath(ModelPath("relu.onnx"), options);
  }
  // The Relu model with one instance on `clock`, whose queue delay never ends by itself: a
  // request stays queued until its deadline draws near, or Close drains it.
  static std::shared_ptr<Model> LoadReluHeldInQueue(const Clock& clock) {
    ModelOptions options;
    options.instances = 1;
    options.batching_policy.max_queue_delay_us = 1'000'000'000;
    return Model::LoadFromPath(ModelPath("relu.onnx"), options, clock);
  }
};

// Points `request`'s on_complete at the returned future.
std::future<InferResult> ResultOf(InferRequest& request) {
  auto promise = std::make_shared<std::promise<InferResult>>();
  request.on_complete = [promise](InferResult&& r) { promise->set_value(std::move(r)); };
  return promise->get_future();
}

// Request with `rows` rows of `width` copies of `value` for a model whose input is
// x: float32 [N, width]; `storage` (also kept alive by the request) holds the data.
std::unique_ptr<InferRequest> FloatRequest(int64_t rows, int64_t width, float value,
                                           std::shared_ptr<std::vector<float>>* storage) {
  *storage = std::make_shared<std::vector<float>>(static_cast<size_t>(rows * width), value);
  HostTensor t;
  t.type = ElementType::kFloat32;
  t.shape = {rows, width};
  t.data = (*storage)->data();
  t.byte_size = (*storage)->size() * sizeof(float);
  auto r = std::make_unique<InferRequest>();
  r->inputs.emplace_back("x", std::move(t));
  r->keepalive = *storage;
  return r;
}

// Request with `rows` rows of `value` for the Relu model (x: [N, 3] -> y = relu(x)).
std::unique_ptr<InferRequest> ReluRequest(int64_t rows, float value,
                                          std::shared_ptr<std::vector<float>>* storage) {
  return FloatRequest(rows, 3, value, storage);
}

TEST_F(ModelTest, ConcurrentSubmittersGetTheirOwnRows) {
  auto model = LoadRelu(2);
  ASSERT_TRUE(model->batching_enabled());
  constexpr int kThreads = 8, kPerThread = 200;
  std::atomic<int> wrong{0}, done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const float value = static_cast<float>(t * 1000 + i) * (i % 2 ? 1.f : -1.f);
        const int64_t rows = 1 + i % 4;
        std::shared_ptr<std::vector<float>> storage;
        auto request = ReluRequest(rows, value, &storage);
        auto future = ResultOf(*request);
        request->allow_inline = (i % 3 == 0);
        model->Submit(std::move(request));
        InferResult result = future.get();
        const float want = value > 0 ? value : 0.f;
        if (!result.status.ok() || result.outputs.size() != 1 ||
            result.outputs[0].second.shape != std::vector<int64_t>{rows, 3}) {
          ++wrong;
          continue;
        }
        const auto* y = static_cast<const float*>(result.outputs[0].second.data);
        for (int64_t k = 0; k < rows * 3; ++k) {
          if (y[k] != want) ++wrong;
        }
        // Queue wait and compute are disjoint parts of the total, whichever thread split it.
        const RequestTimings& timings = result.timings;
        if (timings.queue_us < 0 || timings.compute_us < 0 ||
            timings.queue_us + timings.compute_us > timings.total_us ||
            timings.batch_rows < rows) {
          ++wrong;
        }
        ++done;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(done.load(), kThreads * kPerThread);
  StatsSnapshot stats = model->Stats();
  EXPECT_EQ(stats.requests[static_cast<size_t>(Outcome::kOk)], kThreads * kPerThread);
  EXPECT_EQ(stats.in_flight, 0);
}

// Infer: the synchronous path Python's predict takes. Threads outnumber instances, so some
// requests run inline and others queue and wait; every one returns its own rows.
TEST_F(ModelTest, InferReturnsEachCallersRowsInlineOrQueued) {
  auto model = LoadRelu(1);
  constexpr int kThreads = 4, kPerThread = 300;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const float value = static_cast<float>(t * 1000 + i + 1);
        std::shared_ptr<std::vector<float>> storage;
        auto request = ReluRequest(1 + i % 3, value, &storage);
        request->allow_inline = true;
        InferResult result = model->Infer(std::move(request));
        if (!result.status.ok() || result.outputs.size() != 1 ||
            static_cast<const float*>(result.outputs[0].second.data)[0] != value ||
            result.outputs[0].second.shape[0] != 1 + i % 3) {
          ++wrong;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  StatsSnapshot stats = model->Stats();
  EXPECT_EQ(stats.requests[static_cast<size_t>(Outcome::kOk)], kThreads * kPerThread);
  EXPECT_EQ(stats.in_flight, 0);
}

// A request that ran inline holds the instance while its callback runs, so what that callback
// submits queues; Submit then runs it as one batch on the same thread before it returns.
TEST_F(ModelTest, InlineSubmitRunsWhatQueuedMeanwhileOnTheSameThread) {
  auto model = LoadRelu(1);
  const std::thread::id submitter = std::this_thread::get_id();
  std::vector<std::shared_ptr<std::vector<float>>> storage(3);
  std::vector<InferResult> followers(2);
  std::vector<std::thread::id> follower_threads(2);
  auto first = ReluRequest(1, 1.f, &storage[0]);
  first->allow_inline = true;
  first->on_complete = [&](InferResult&& r) {
    ASSERT_TRUE(r.status.ok());
    for (int k = 0; k < 2; ++k) {
      auto follower = ReluRequest(1 + k, 10.f + static_cast<float>(k), &storage[1 + k]);
      follower->on_complete = [&, k](InferResult&& result) {
        followers[static_cast<size_t>(k)] = std::move(result);
        follower_threads[static_cast<size_t>(k)] = std::this_thread::get_id();
      };
      ASSERT_GT(model->Submit(std::move(follower)), 0u);
    }
  };
  ASSERT_GT(model->Submit(std::move(first)), 0u);
  // Both followers completed before Submit returned, on this thread, in one 3-row batch.
  for (int k = 0; k < 2; ++k) {
    const InferResult& r = followers[static_cast<size_t>(k)];
    ASSERT_TRUE(r.status.ok()) << r.status.message();
    EXPECT_EQ(follower_threads[static_cast<size_t>(k)], submitter);
    ASSERT_EQ(r.outputs.size(), 1u);
    EXPECT_EQ(r.outputs[0].second.shape, (std::vector<int64_t>{1 + k, 3}));
    EXPECT_EQ(static_cast<const float*>(r.outputs[0].second.data)[0], 10.f + k);
    EXPECT_EQ(r.timings.batch_rows, 3);
  }
  StatsSnapshot stats = model->Stats();
  EXPECT_EQ(stats.requests[static_cast<size_t>(Outcome::kOk)], 3);
  EXPECT_EQ(stats.batches, 2);
  ASSERT_EQ(stats.batch_sizes.size(), 2u);  // the first request's run of 1 row, then 3 rows
  EXPECT_EQ(stats.batch_sizes[1].rows, 3);
  EXPECT_EQ(stats.batch_sizes[1].batches, 1);
  EXPECT_EQ(stats.in_flight, 0);
}

// on_admitted runs once Submit has placed its request, and before an inline run: a request
// submitted from the hook queues behind it, as a stream's next read relies on to keep order.
TEST_F(ModelTest, OnAdmittedRunsOnceThePlaceIsTakenBeforeAnInlineRun) {
  auto model = LoadRelu(1);
  std::vector<std::shared_ptr<std::vector<float>>> storage(2);
  bool first_done = false;
  int first_admitted = 0, follower_admitted = 0;
  int64_t depth_when_follower_admitted = -1;
  InferResult follower_result;
  auto first = ReluRequest(1, 1.f, &storage[0]);
  first->allow_inline = true;
  first->on_complete = [&](InferResult&& r) {
    ASSERT_TRUE(r.status.ok());
    // The hook's change to the input is in the output: it ran before the run.
    EXPECT_EQ(static_cast<const float*>(r.outputs[0].second.data)[0], 7.f);
    first_done = true;
  };
  first->on_admitted = [&] {
    ++first_admitted;
    EXPECT_FALSE(first_done);
    std::fill(storage[0]->begin(), storage[0]->end(), 7.f);
    auto follower = ReluRequest(2, 5.f, &storage[1]);
    follower->allow_inline = true;  // the instance is held: it must queue, not run here
    follower->on_admitted = [&] {
      ++follower_admitted;
      depth_when_follower_admitted = model->Stats().queue_depth;
    };
    follower->on_complete = [&](InferResult&& r) {
      EXPECT_TRUE(first_done);
      follower_result = std::move(r);
    };
    EXPECT_GT(model->Submit(std::move(follower)), 0u);
    EXPECT_FALSE(first_done);
  };
  ASSERT_GT(model->Submit(std::move(first)), 0u);
  EXPECT_EQ(first_admitted, 1);
  EXPECT_EQ(follower_admitted, 1);
  EXPECT_EQ(depth_when_follower_admitted, 1);
  // Run after the first, on this thread, before Submit returned (RunQueuedInline).
  ASSERT_TRUE(follower_result.status.ok()) << follower_result.status.message();
  ASSERT_EQ(follower_result.outputs.size(), 1u);
  EXPECT_EQ(follower_result.outputs[0].second.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(static_cast<const float*>(follower_result.outputs[0].second.data)[0], 5.f);
  EXPECT_EQ(model->Stats().batches, 2);
}

// A request refused at once is placed too: its on_admitted runs once, after its callback.
TEST_F(ModelTest, OnAdmittedRunsOnceForARefusedRequest) {
  ModelOptions options;
  auto model = Model::LoadFromPath(ModelPath("relu.onnx"), options);
  std::shared_ptr<std::vector<float>> storage;
  std::vector<std::string> events;
  auto submit = [&](std::unique_ptr<InferRequest> request) {
    request->allow_inline = true;
    request->on_complete = [&](InferResult&& r) {
      events.push_back("complete " + std::to_string(static_cast<int>(r.status.code())));
    };
    request->on_admitted = [&] { events.push_back("admitted"); };
    EXPECT_EQ(model->Submit(std::move(request)), 0u);
  };
  auto bad = ReluRequest(1, 1.f, &storage);
  bad->inputs[0].first = "nope";
  submit(std::move(bad));
  model->Close(/*drain=*/true);
  submit(ReluRequest(1, 1.f, &storage));
  const std::string invalid = std::to_string(static_cast<int>(StatusCode::kInvalidInput));
  const std::string unavailable = std::to_string(static_cast<int>(StatusCode::kUnavailable));
  EXPECT_EQ(events, (std::vector<std::string>{"complete " + invalid, "admitted",
                                              "complete " + unavailable, "admitted"}));
}

// A chain that never ends on its own (each completion submits the next request) is not
// allowed to keep the submitter's thread: after a bounded number of batches the worker takes
// over, and every request still completes exactly once.
TEST_F(ModelTest, InlineSubmitHandsAnEndlessChainToTheWorker) {
  auto model = LoadRelu(1);
  const std::thread::id submitter = std::this_thread::get_id();
  constexpr int kChain = 50;
  std::atomic<int> completed{0}, on_submitter{0};
  std::mutex storage_mutex;
  std::vector<std::shared_ptr<std::vector<float>>> storage;
  std::promise<void> last;
  std::function<void(int)> submit = [&](int i) {
    std::shared_ptr<std::vector<float>> rows;
    auto request = ReluRequest(1, static_cast<float>(i), &rows);
    {
      std::lock_guard<std::mutex> lock(storage_mutex);
      storage.push_back(rows);
    }
    request->allow_inline = (i == 0);
    request->on_complete = [&, i](InferResult&& r) {
      EXPECT_TRUE(r.status.ok());
      if (std::this_thread::get_id() == submitter) ++on_submitter;
      ++completed;
      if (i + 1 < kChain) {
        submit(i + 1);
      } else {
        last.set_value();
      }
    };
    model->Submit(std::move(request));
  };
  submit(0);
  last.get_future().wait();
  EXPECT_EQ(completed.load(), kChain);
  // The inline run, then at most the bounded number of queued batches, on this thread.
  EXPECT_GE(on_submitter.load(), 2);
  EXPECT_LE(on_submitter.load(), 1 + 4);
  model->Close(/*drain=*/true);
  EXPECT_EQ(model->Stats().requests[static_cast<size_t>(Outcome::kOk)], kChain);
}

TEST_F(ModelTest, InferRefusalsComeBackAsResults) {
  ModelOptions options;
  options.name = "relu";  // named in the messages
  auto model = Model::LoadFromPath(ModelPath("relu.onnx"), options);
  std::shared_ptr<std::vector<float>> storage;
  auto bad = ReluRequest(1, 1.f, &storage);
  bad->inputs[0].first = "nope";
  bad->allow_inline = true;
  InferResult invalid = model->Infer(std::move(bad));
  EXPECT_EQ(invalid.status.code(), StatusCode::kInvalidInput);
  EXPECT_NE(invalid.status.message().find("nope"), std::string::npos);
  model->Close(/*drain=*/true);
  auto late = ReluRequest(1, 1.f, &storage);
  late->allow_inline = true;
  const InferResult refused = model->Infer(std::move(late));
  EXPECT_EQ(refused.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(refused.status.message(), "model 'relu' is closed");
  StatsSnapshot stats = model->Stats();
  EXPECT_EQ(stats.requests[static_cast<size_t>(Outcome::kInvalid)], 1);
  EXPECT_EQ(stats.requests[static_cast<size_t>(Outcome::kUnavailable)], 1);
  EXPECT_EQ(stats.in_flight, 0);
}

TEST_F(ModelTest, CloseUnderLoadCompletesEveryRequestOnce) {
  ModelOptions options;
  options.instances = 1;
  options.batching_policy.max_batch_rows = 4;
  auto model = Model::LoadFromPath(ModelPath("relu.onnx"), options);
  std::atomic<int> completions{0}, ok{0}, unavailable{0};
  std::vector<std::shared_ptr<std::vector<float>>> storages(500);
  for (int i = 0; i < 500; ++i) {
    auto request = ReluRequest(1, 1.f, &storages[static_cast<size_t>(i)]);
    request->on_complete = [&](InferResult&& r) {
      ++completions;
      if (r.status.ok()) ++ok;
      if (r.status.code() == StatusCode::kUnavailable) ++unavailable;
    };
    model->Submit(std::move(request));
  }
  model->Close(/*drain=*/false);
  EXPECT_EQ(completions.load(), 500);
  EXPECT_EQ(ok.load() + unavailable.load(), 500);
  // After close, submits are refused on the caller's thread.
  std::shared_ptr<std::vector<float>> storage;
  auto late = ReluRequest(1, 1.f, &storage);
  StatusCode code = StatusCode::kOk;
  late->on_complete = [&](InferResult&& r) { code = r.status.code(); };
  EXPECT_EQ(model->Submit(std::move(late)), 0u);
  EXPECT_EQ(code, StatusCode::kUnavailable);
}

TEST_F(ModelTest, CancelRacesWithWorkers) {
  auto model = LoadRelu(2);
  std::atomic<int> completions{0};
  std::vector<std::shared_ptr<std::vector<float>>> storages(300);
  std::vector<uint64_t> seqs;
  for (int i = 0; i < 300; ++i) {
    auto request = ReluRequest(1, 2.f, &storages[static_cast<size_t>(i)]);
    request->on_complete = [&](InferResult&&) { ++completions; };
    seqs.push_back(model->Submit(std::move(request)));
  }
  int cancelled = 0;
  for (uint64_t seq : seqs) cancelled += model->Cancel(seq) ? 1 : 0;
  model->Close(/*drain=*/true);
  EXPECT_EQ(completions.load(), 300);  // each exactly once, cancelled or run
  StatsSnapshot stats = model->Stats();
  EXPECT_EQ(stats.requests[static_cast<size_t>(Outcome::kCancelled)], cancelled);
  EXPECT_EQ(stats.requests[static_cast<size_t>(Outcome::kOk)], 300 - cancelled);
}

TEST_F(ModelTest, DeadlinesUseTheInjectedClock) {
  FakeClock clock;
  auto model = LoadReluHeldInQueue(clock);
  std::shared_ptr<std::vector<float>> storage;
  auto request = ReluRequest(1, 1.f, &storage);
  request->timeout_us = 5000;
  auto future = ResultOf(*request);
  ASSERT_GT(model->Submit(std::move(request)), 0u);
  EXPECT_EQ(future.wait_for(std::chrono::milliseconds(20)), std::future_status::timeout);
  // Past the deadline in one step, so the batch the lead would start never got its chance.
  clock.AdvanceUs(5000);  // the worker re-reads the clock within 4 ms of real time
  InferResult result = future.get();
  EXPECT_EQ(result.status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(model->Stats().batches, 0);
  model->Close(true);
}

TEST_F(ModelTest, AQueueDelayLongerThanTheDeadlineStillRunsTheRequest) {
  FakeClock clock;
  auto model = LoadReluHeldInQueue(clock);
  std::shared_ptr<std::vector<float>> storage;
  auto request = ReluRequest(1, 1.f, &storage);
  request->timeout_us = 5000;
  auto future = ResultOf(*request);
  ASSERT_GT(model->Submit(std::move(request)), 0u);
  EXPECT_EQ(future.wait_for(std::chrono::milliseconds(20)), std::future_status::timeout);
  clock.AdvanceUs(5000 - BatchQueue::DeadlineLeadUs(5000));
  EXPECT_EQ(future.get().status.code(), StatusCode::kOk);
  EXPECT_EQ(model->Stats().batches, 1);
  model->Close(true);
}

TEST_F(ModelTest, ADeadlineBeyondTheClocksRangeIsNone) {
  FakeClock clock;
  clock.AdvanceUs(1'000'000);  // now + INT64_MAX would overflow into the past
  auto model = LoadReluHeldInQueue(clock);
  std::shared_ptr<std::vector<float>> storage;
  auto request = ReluRequest(1, 1.f, &storage);
  request->timeout_us = std::numeric_limits<int64_t>::max();
  auto future = ResultOf(*request);
  ASSERT_GT(model->Submit(std::move(request)), 0u);
  clock.AdvanceUs(1'000'000);
  EXPECT_EQ(future.wait_for(std::chrono::milliseconds(20)), std::future_status::timeout);
  model->Close(true);  // drains: the queued request runs
  EXPECT_EQ(future.get().status.code(), StatusCode::kOk);
}

// Request with `rows` rows for the slow model (x: [N, 512]).
std::unique_ptr<InferRequest> SlowRequest(int64_t rows,
                                          std::shared_ptr<std::vector<float>>* storage) {
  return FloatRequest(rows, 512, 0.01f, storage);
}

// Joins its threads when it goes out of scope, so that a failed ASSERT cannot leave a
// joinable std::thread behind (which terminates the test program).
struct JoinOnExit {
  std::vector<std::thread> threads;
  ~JoinOnExit() {
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
  }
};

// Polls (bounded) until `done` holds; false when it never did.
bool WaitUntil(const std::function<bool()>& done) {
  for (int i = 0; i < 10000 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return done();
}

TEST_F(ModelTest, ARequestExpiresAtItsDeadlineWhileEveryInstanceIsBusy) {
  ModelOptions options;
  options.instances = 1;
  options.batching_policy.max_batch_rows = 256;  // the blocker fills a batch on its own
  auto model = Model::LoadFromPath(ModelPath("slow.onnx"), options);
  std::shared_ptr<std::vector<float>> blocker_rows, late_rows;
  std::atomic<bool> blocker_done{false};
  auto blocker = SlowRequest(256, &blocker_rows);
  blocker->on_complete = [&blocker_done](InferResult&&) { blocker_done = true; };
  ASSERT_GT(model->Submit(std::move(blocker)), 0u);
  ASSERT_TRUE(WaitUntil([&] { return model->Stats().queue_depth == 0; }));  // it runs
  auto late = SlowRequest(1, &late_rows);
  late->timeout_us = 1000;
  std::promise<InferResult> promise;
  auto future = promise.get_future();
  int64_t batches_run_at_expiry = -1;
  late->on_complete = [&, m = model.get()](InferResult&& r) {
    batches_run_at_expiry = m->Stats().batches;  // a lone run is counted as it ends
    promise.set_value(std::move(r));
  };
  ASSERT_GT(model->Submit(std::move(late)), 0u);
  InferResult result = future.get();
  // Failed at its deadline, not when the instance came free.
  EXPECT_EQ(batches_run_at_expiry, 0) << "the expiry waited for the running batch";
  EXPECT_FALSE(blocker_done.load());
  EXPECT_EQ(result.status.code(), StatusCode::kDeadlineExceeded);
  model->Close(true);
  EXPECT_TRUE(blocker_done.load());
}

TEST_F(ModelTest, CloseWaitsForARunOnTheCallersThread) {
  ModelOptions options;
  options.instances = 1;
  options.batching_policy.max_batch_rows = 256;
  auto model = Model::LoadFromPath(ModelPath("slow.onnx"), options);
  std::shared_ptr<std::vector<float>> rows;
  InferResult inline_result;
  JoinOnExit caller;
  caller.threads.emplace_back([&] {
    auto request = SlowRequest(256, &rows);
    request->allow_inline = true;
    inline_result = model->Infer(std::move(request));
  });
  ASSERT_TRUE(WaitUntil([&] { return model->Stats().in_flight == 1; }));
  // From in-flight to running inline is a few instructions; give it ample time to get there.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  model->Close(true);
  // The run is counted before its instance is released, so a run still going shows here.
  EXPECT_EQ(model->Stats().batches, 1) << "Close returned while a run on the caller's thread went on";
  caller.threads.front().join();
  EXPECT_EQ(inline_result.status.code(), StatusCode::kOk) << inline_result.status.message();
}

TEST_F(ModelTest, ABoundedDrainFailsWhatIsStillQueuedAtItsEnd) {
  // A server's grace period: BeginClose, WaitDrained until a deadline, then Close(false). A
  // caller holds the only instance with a long inline run, so the queued requests cannot run
  // before the deadline.
  ModelOptions options;
  options.instances = 1;
  options.batching_policy.max_batch_rows = 512;
  auto model = Model::LoadFromPath(ModelPath("slow.onnx"), options);
  std::shared_ptr<std::vector<float>> long_rows;
  JoinOnExit caller;
  caller.threads.emplace_back([&] {
    auto request = SlowRequest(512, &long_rows);
    request->allow_inline = true;
    EXPECT_TRUE(model->Infer(std::move(request)).status.ok());
  });
  ASSERT_TRUE(WaitUntil([&] { return model->Stats().in_flight == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the run is under way
  constexpr int kQueued = 3;
  std::vector<std::shared_ptr<std::vector<float>>> rows(kQueued);
  std::mutex mutex;
  std::vector<Status> outcomes;
  for (int i = 0; i < kQueued; ++i) {
    auto request = SlowRequest(1, &rows[static_cast<size_t>(i)]);
    request->on_complete = [&](InferResult&& result) {
      std::lock_guard<std::mutex> lock(mutex);
      outcomes.push_back(result.status);
    };
    model->Submit(std::move(request));
  }
  model->BeginClose();
  std::shared_ptr<std::vector<float>> late_rows;
  EXPECT_EQ(model->Infer(SlowRequest(1, &late_rows)).status.code(), StatusCode::kUnavailable);
  EXPECT_FALSE(model->WaitDrained(std::chrono::steady_clock::now() + std::chrono::milliseconds(1)));
  model->Close(/*drain=*/false);
  caller.threads.front().join();
  ASSERT_EQ(outcomes.size(), static_cast<size_t>(kQueued)) << "each request completes once";
  for (const Status& s : outcomes) {
    EXPECT_EQ(s.code(), StatusCode::kUnavailable);
    EXPECT_EQ(s.message(), "model was closed before the request ran");
  }
}

TEST_F(ModelTest, WaitDrainedSaysWhenTheQueueHasRun) {
  auto model = LoadRelu(1);
  std::vector<std::shared_ptr<std::vector<float>>> rows(20);
  std::atomic<int> ok{0};
  for (auto& storage : rows) {
    auto request = ReluRequest(1, 1.0f, &storage);
    request->on_complete = [&](InferResult&& result) { ok += result.status.ok() ? 1 : 0; };
    model->Submit(std::move(request));
  }
  model->BeginClose();
  EXPECT_TRUE(model->WaitDrained(std::chrono::steady_clock::now() + std::chrono::seconds(60)));
  // Every request ran; the completions of the last batches may still be under way, and
  // Close completes them: nothing was left to fail.
  model->Close(/*drain=*/false);
  EXPECT_EQ(ok.load(), 20);
}

TEST_F(ModelTest, CloseDoesNotHangWhileCallersHoldEveryInstance) {
  // Two callers hold both instances inline (a short and a long run) and a request waits in
  // the queue when Close comes. The short run's release wakes one worker, which runs the
  // queued request and exits; the long run's release finds the queue empty. The other
  // worker, asleep with no deadline to wake it, must still learn that it may exit.
  ModelOptions options;
  options.instances = 2;
  options.batching_policy.max_batch_rows = 512;
  auto model = Model::LoadFromPath(ModelPath("slow.onnx"), options);
  std::shared_ptr<std::vector<float>> short_rows, long_rows, queued_rows;
  JoinOnExit callers;
  auto run_inline = [&model](int64_t rows, std::shared_ptr<std::vector<float>>* storage) {
    auto request = SlowRequest(rows, storage);
    request->allow_inline = true;
    EXPECT_TRUE(model->Infer(std::move(request)).status.ok());
  };
  // The long run first, so that the short one, started while it runs, ends first.
  callers.threads.emplace_back(run_inline, 512, &long_rows);
  ASSERT_TRUE(WaitUntil([&] { return model->Stats().in_flight == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  callers.threads.emplace_back(run_inline, 128, &short_rows);
  ASSERT_TRUE(WaitUntil([&] { return model->Stats().in_flight == 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // both runs under way
  auto queued = SlowRequest(1, &queued_rows);
  auto result = ResultOf(*queued);
  ASSERT_GT(model->Submit(std::move(queued)), 0u);
  auto closed = std::async(std::launch::async, [&model] { model->Close(/*drain=*/true); });
  if (closed.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    ADD_FAILURE() << "Close hung: a worker was never told to exit";
    std::fflush(nullptr);
    std::_Exit(1);  // the hung Close cannot be joined
  }
  for (auto& caller : callers.threads) caller.join();
  EXPECT_EQ(result.get().status.code(), StatusCode::kOk);
}

// Runs `rows` rows of the Relu model through `model` and waits; returns the result.
InferResult RunRelu(Model& model, int64_t rows) {
  std::shared_ptr<std::vector<float>> storage;
  return model.Infer(ReluRequest(rows, 1.f, &storage));
}

TEST_F(ModelTest, WithoutBatchingEachRequestCountsItsOwnRows) {
  ModelOptions options;
  options.batching = 0;
  auto model = Model::LoadFromPath(ModelPath("relu.onnx"), options);
  for (int64_t rows : {10, 10, 40, 0, 5000}) ASSERT_TRUE(RunRelu(*model, rows).status.ok());
  const StatsSnapshot stats = model->Stats();
  EXPECT_EQ(stats.inferred_rows, 5060);
  ASSERT_EQ(stats.batch_sizes.size(), 4u);
  const std::vector<std::pair<int64_t, int64_t>> expected = {{0, 1}, {10, 2}, {40, 1}, {5000, 1}};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(stats.batch_sizes[i].rows, expected[i].first);
    EXPECT_EQ(stats.batch_sizes[i].batches, expected[i].second);
  }
  model->Close(true);
}

TEST_F(ModelTest, TheLargestMaxBatchSizeCostsNoMemoryUntilUsed) {
  // Counters for every possible size would take gigabytes here; only sizes seen are kept.
  ModelOptions options;
  options.batching_policy.max_batch_rows = std::numeric_limits<int>::max();
  auto model = Model::LoadFromPath(ModelPath("relu.onnx"), options);
  ASSERT_TRUE(RunRelu(*model, 3).status.ok());
  ASSERT_TRUE(RunRelu(*model, 3000).status.ok());
  const StatsSnapshot stats = model->Stats();
  ASSERT_EQ(stats.batch_sizes.size(), 2u);
  EXPECT_EQ(stats.batch_sizes[0].rows, 3);
  EXPECT_EQ(stats.batch_sizes[1].rows, 3000);
  EXPECT_EQ(stats.batch_sizes[1].batches, 1);
  EXPECT_GT(stats.batch_sizes[1].compute_us + stats.batch_sizes[1].infer_ns, 0);
  model->Close(true);
}

TEST_F(ModelTest, WarmUpRunsEveryInstanceAndCountsNothing) {
  auto model = LoadRelu(2);
  std::shared_ptr<std::vector<float>> storage;
  auto request = ReluRequest(1, 1.f, &storage);
  model->WarmUp(request->inputs);
  StatsSnapshot stats = model->Stats();
  EXPECT_EQ(stats.batches, 0);
  for (int64_t count : stats.requests) EXPECT_EQ(count, 0);
  // Both instances are idle again: two requests can still run side by side.
  EXPECT_EQ(model->Infer(ReluRequest(1, 2.f, &storage)).status.code(), StatusCode::kOk);
  auto bad = ReluRequest(1, 1.f, &storage);
  bad->inputs[0].second.shape = {1, 4};
  EXPECT_THROW(model->WarmUp(bad->inputs), CoreError);
  model->Close(true);
  EXPECT_THROW(model->WarmUp(request->inputs), CoreError);
}

TEST_F(ModelTest, RowCapAndDeclaredDimsWithoutBatching) {
  ModelOptions options;
  options.batching = 0;
  options.max_request_rows = 2;
  auto model = Model::LoadFromPath(ModelPath("relu.onnx"), options);
  std::shared_ptr<std::vector<float>> storage;
  EXPECT_EQ(model->Infer(ReluRequest(2, 1.f, &storage)).status.code(), StatusCode::kOk);
  const InferResult over = model->Infer(ReluRequest(3, 1.f, &storage));
  EXPECT_EQ(over.status.code(), StatusCode::kInvalidInput);
  EXPECT_EQ(over.status.message(), "input 'x' has 3 rows; max_batch_size is 2");
  // Declared dims fix a dynamic dim (dim 0 here, as batching is off).
  options.max_request_rows = 0;
  options.declared_input_shapes = {{"x", {1, -1}}, {"unknown", {5}}};
  auto fixed = Model::LoadFromPath(ModelPath("relu.onnx"), options);
  EXPECT_EQ(fixed->inputs()[0].shape, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(fixed->Infer(ReluRequest(2, 1.f, &storage)).status.code(), StatusCode::kInvalidInput);
  EXPECT_EQ(fixed->Infer(ReluRequest(1, 1.f, &storage)).status.code(), StatusCode::kOk);
}

// A [n] column of `type` holding `values` (its storage kept by `request`).
template <typename T>
void AddColumn(InferRequest* request, const std::string& name, ElementType type,
               std::vector<T> values) {
  auto storage = std::make_shared<std::vector<T>>(std::move(values));
  HostTensor t;
  t.type = type;
  t.shape = {static_cast<int64_t>(storage->size())};
  t.data = storage->data();
  t.byte_size = storage->size() * sizeof(T);
  t.owner = storage;
  request->inputs.emplace_back(name, std::move(t));
}

TEST_F(ModelTest, TransformColumnsTakeExactConversionsOnly) {
  // Relu fed by three pass-through features: y = the raw columns as float32 [rows, 3].
  std::vector<InputSpec> columns = {{"f", ElementType::kFloat32},
                                    {"n", ElementType::kInt64},
                                    {"d", ElementType::kFloat64}};
  std::vector<FeatureSpec> features(3);
  for (size_t i = 0; i < 3; ++i) {
    features[i].name = columns[i].name;
    features[i].columns = {i};
  }
  ModelOptions options;
  options.transforms = std::make_shared<TransformPlan>(columns, features);
  auto model = Model::LoadFromPath(ModelPath("relu.onnx"), options);

  auto request = std::make_unique<InferRequest>();
  AddColumn<int64_t>(request.get(), "f", ElementType::kInt64, {1, 2});
  AddColumn<double>(request.get(), "n", ElementType::kFloat64, {3.0, 4.0});
  AddColumn<float>(request.get(), "d", ElementType::kFloat32, {0.5f, 6.f});
  request->allow_inline = true;
  InferResult ok = model->Infer(std::move(request));
  ASSERT_EQ(ok.status.code(), StatusCode::kOk) << ok.status.message();
  const HostTensor& y = ok.outputs[0].second;
  ASSERT_EQ(y.byte_size, 6 * sizeof(float));
  const float* v = static_cast<const float*>(y.data);
  EXPECT_EQ(std::vector<float>(v, v + 6), (std::vector<float>{1, 3, 0.5f, 2, 4, 6}));

  auto inexact = std::make_unique<InferRequest>();
  AddColumn<float>(inexact.get(), "f", ElementType::kFloat32, {1.f});
  AddColumn<double>(inexact.get(), "n", ElementType::kFloat64, {2.5});
  AddColumn<double>(inexact.get(), "d", ElementType::kFloat64, {1.0});
  InferResult refused = model->Infer(std::move(inexact));
  EXPECT_EQ(refused.status.code(), StatusCode::kInvalidInput);
  EXPECT_NE(refused.status.message().find(
                "column 'n': float64 value 2.5 does not convert exactly to int64"),
            std::string::npos)
      << refused.status.message();
  EXPECT_EQ(model->Stats().requests[static_cast<size_t>(Outcome::kInvalid)], 1);

  // The check the server makes before decoding: the same rule.
  EXPECT_NO_THROW(model->CheckInputType("f", ElementType::kInt32));
  EXPECT_NO_THROW(model->CheckInputType("n", ElementType::kFloat16));
  EXPECT_NO_THROW(model->CheckInputType("n", ElementType::kUndefined));
  EXPECT_THROW(model->CheckInputType("f", ElementType::kBool), CoreError);
  EXPECT_THROW(model->CheckInputType("f", ElementType::kString), CoreError);
  EXPECT_THROW(model->CheckInputType("nope", ElementType::kFloat32), CoreError);
  // A model without transforms keeps exact dtypes (ONNX Runtime takes no other).
  auto plain = LoadRelu(1);
  EXPECT_NO_THROW(plain->CheckInputType("x", ElementType::kFloat32));
  try {
    plain->CheckInputType("x", ElementType::kInt64);
    FAIL() << "expected a dtype error";
  } catch (const CoreError& e) {
    EXPECT_STREQ(e.what(), "input 'x': expected dtype float32, got int64 (no implicit casts)");
  }
  model->Close(true);
}

// Records each Notify with how many callbacks of its requests had run by then.
class RecordingNotifier : public CompletionNotifier {
 public:
  explicit RecordingNotifier(const std::atomic<int>* delivered, bool throws = false)
      : delivered_(delivered), throws_(throws) {}
  void Notify() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      seen_.push_back(delivered_->load());
    }
    notified_.notify_all();
    if (throws_) throw std::runtime_error("notifier failed");
  }
  // The callbacks delivered at each Notify so far.
  std::vector<int> Seen() {
    std::lock_guard<std::mutex> lock(mutex_);
    return seen_;
  }
  bool WaitFor(size_t notifies) {
    std::unique_lock<std::mutex> lock(mutex_);
    return notified_.wait_for(lock, std::chrono::seconds(10),
                              [&] { return seen_.size() >= notifies; });
  }

 private:
  const std::atomic<int>* delivered_;
  const bool throws_;
  std::mutex mutex_;
  std::condition_variable notified_;
  std::vector<int> seen_;
};

TEST_F(ModelTest, ABatchWritesItsOutputsIntoABufferTheNextBatchReuses) {
  ModelOptions options;
  options.instances = 1;
  options.batching_policy.preferred_batch_rows = {3};
  options.batching_policy.max_queue_delay_us = 1'000'000'000;  // a batch waits for its rows
  auto model = Model::LoadFromPath(ModelPath("relu.onnx"), options);
  // Two requests (1 and 2 rows) that run as one batch; returns where the first one's rows
  // are, which is the start of the batch's output buffer.
  auto run_batch = [&](float value) -> const void* {
    std::vector<std::shared_ptr<std::vector<float>>> storage(2);
    std::vector<std::future<InferResult>> futures;
    for (int k = 0; k < 2; ++k) {
      auto request = ReluRequest(1 + k, value + static_cast<float>(k), &storage[k]);
      request->allow_inline = false;
      futures.push_back(ResultOf(*request));
      EXPECT_GT(model->Submit(std::move(request)), 0u);
    }
    std::vector<InferResult> results;
    for (auto& f : futures) results.push_back(f.get());
    for (int k = 0; k < 2; ++k) {
      const InferResult& r = results[static_cast<size_t>(k)];
      EXPECT_TRUE(r.status.ok()) << r.status.message();
      EXPECT_EQ(r.timings.batch_rows, 3);
      const auto* y = static_cast<const float*>(r.outputs.at(0).second.data);
      for (int i = 0; i < (1 + k) * 3; ++i) EXPECT_EQ(y[i], value + static_cast<float>(k));
    }
    return results[0].outputs.at(0).second.data;  // the results (and views) drop here
  };
  EXPECT_EQ(model->OutputBuffersKept(), 0u);
  const void* first = run_batch(1.f);
  EXPECT_EQ(model->OutputBuffersKept(), 1u) << "the batch's buffer did not come back";
  const void* second = run_batch(5.f);
  EXPECT_EQ(first, second) << "the second batch did not reuse the first one's buffer";
  EXPECT_EQ(model->OutputBuffersKept(), 1u);
}

TEST_F(ModelTest, ALoneRequestDoesNotCompleteBeforeAnEarlierBatch) {
  ModelOptions options;
  options.instances = 1;
  options.batching_policy.max_batch_rows = 256;  // the blocker fills a batch on its own
  auto model = Model::LoadFromPath(ModelPath("slow.onnx"), options);
  std::mutex mutex;
  std::vector<std::string> completed;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::vector<std::shared_ptr<std::vector<float>>> storage(4);
  size_t submitted = 0;
  auto submit = [&](std::string name, int64_t rows, bool hold) {
    auto request = SlowRequest(rows, &storage[submitted++]);
    request->on_complete = [&, name, hold](InferResult&& r) {
      EXPECT_TRUE(r.status.ok()) << r.status.message();
      if (hold) released.wait();  // keeps the completion thread inside this batch
      std::lock_guard<std::mutex> lock(mutex);
      completed.push_back(name);
    };
    ASSERT_GT(model->Submit(std::move(request)), 0u);
  };
  submit("blocker", 256, false);
  ASSERT_TRUE(WaitUntil([&] { return model->Stats().queue_depth == 0; }));  // it runs
  submit("first", 1, true);  // queued behind it: these two run as one batch
  submit("second", 2, false);
  ASSERT_TRUE(WaitUntil([&] { return model->Stats().batches == 2; }));
  // The completion thread is held in the batch's first callback. A request run alone on the
  // idle worker now must queue its completion behind the batch's, not complete at once.
  submit("lone", 1, false);
  ASSERT_TRUE(WaitUntil([&] { return model->Stats().batches == 3; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  {
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_EQ(completed, std::vector<std::string>{"blocker"}) << "the lone request overtook";
  }
  release.set_value();
  model->Close(/*drain=*/true);
  EXPECT_EQ(completed, (std::vector<std::string>{"blocker", "first", "second", "lone"}));
}

TEST_F(ModelTest, ABatchNotifiesEachOfItsNotifiersOnceAfterAllItsCallbacks) {
  ModelOptions options;
  options.instances = 1;
  options.batching_policy.max_batch_rows = 4;
  options.batching_policy.max_queue_delay_us = 1'000'000'000;  // runs when 4 rows are queued
  auto model = Model::LoadFromPath(ModelPath("relu.onnx"), options);
  std::atomic<int> delivered{0};
  auto first = std::make_shared<RecordingNotifier>(&delivered);
  auto second = std::make_shared<RecordingNotifier>(&delivered);
  std::vector<std::shared_ptr<std::vector<float>>> storage(4);
  for (int i = 0; i < 4; ++i) {
    auto request = ReluRequest(1, 1.f, &storage[static_cast<size_t>(i)]);
    request->on_complete = [&](InferResult&& r) {
      EXPECT_TRUE(r.status.ok()) << r.status.message();
      ++delivered;
    };
    request->notifier = i % 2 == 0 ? first : second;  // interleaved in the batch
    ASSERT_GT(model->Submit(std::move(request)), 0u);
  }
  ASSERT_TRUE(first->WaitFor(1));
  ASSERT_TRUE(second->WaitFor(1));
  model->Close(/*drain=*/true);
  EXPECT_EQ(model->Stats().batches, 1);
  // One Notify each, after the batch's four callbacks.
  EXPECT_EQ(first->Seen(), std::vector<int>{4});
  EXPECT_EQ(second->Seen(), std::vector<int>{4});
}

TEST_F(ModelTest, ARequestCompletedAloneNotifiesAfterItsCallback) {
  ModelOptions options;
  options.instances = 1;
  options.batching_policy.max_queue_delay_us = 1'000'000'000;
  options.batching_policy.max_batch_rows = 8;
  auto model = Model::LoadFromPath(ModelPath("relu.onnx"), options);
  std::atomic<int> delivered{0};
  auto notifier = std::make_shared<RecordingNotifier>(&delivered);
  auto submit_to = [&](Model& target, std::unique_ptr<InferRequest> request) {
    request->on_complete = [&](InferResult&&) { ++delivered; };
    request->notifier = notifier;
    return target.Submit(std::move(request));
  };
  auto submit = [&](std::unique_ptr<InferRequest> request) {
    return submit_to(*model, std::move(request));
  };
  std::vector<std::shared_ptr<std::vector<float>>> storage(5);
  // Run inline on the submitting thread (no queue delay, idle instance): notified before
  // Submit returns.
  auto inline_model = LoadRelu(1);
  auto inline_request = ReluRequest(1, 1.f, &storage[0]);
  inline_request->allow_inline = true;
  ASSERT_GT(submit_to(*inline_model, std::move(inline_request)), 0u);
  EXPECT_EQ(notifier->Seen(), std::vector<int>{1});
  inline_model->Close(/*drain=*/true);
  // Refused at once (unknown input): the same.
  auto invalid = ReluRequest(1, 1.f, &storage[1]);
  invalid->inputs[0].first = "nope";
  EXPECT_EQ(submit(std::move(invalid)), 0u);
  EXPECT_EQ(notifier->Seen(), (std::vector<int>{1, 2}));
  // Cancelled while queued (it waits for more rows): notified by Cancel.
  const uint64_t queued = submit(ReluRequest(1, 1.f, &storage[2]));
  ASSERT_GT(queued, 0u);
  ASSERT_TRUE(model->Cancel(queued));
  EXPECT_EQ(notifier->Seen(), (std::vector<int>{1, 2, 3}));
  // Failed by a non-draining Close while queued, then refused after it.
  ASSERT_GT(submit(ReluRequest(1, 1.f, &storage[3])), 0u);
  model->Close(/*drain=*/false);
  EXPECT_EQ(submit(ReluRequest(1, 1.f, &storage[4])), 0u);
  EXPECT_EQ(notifier->Seen(), (std::vector<int>{1, 2, 3, 4, 5}));
}

TEST_F(ModelTest, ANotifierThatThrowsDoesNotStopTheWorker) {
  auto model = LoadRelu(1);
  std::atomic<int> delivered{0};
  auto notifier = std::make_shared<RecordingNotifier>(&delivered, /*throws=*/true);
  std::vector<std::shared_ptr<std::vector<float>>> storage(2);
  for (int i = 0; i < 2; ++i) {
    auto request = ReluRequest(1, 1.f, &storage[static_cast<size_t>(i)]);
    request->on_complete = [&](InferResult&&) { ++delivered; };
    request->notifier = notifier;
    ASSERT_GT(model->Submit(std::move(request)), 0u);
    ASSERT_TRUE(notifier->WaitFor(static_cast<size_t>(i) + 1));
  }
  model->Close(/*drain=*/true);
  EXPECT_EQ(delivered.load(), 2);
  EXPECT_EQ(model->Stats().requests[static_cast<size_t>(Outcome::kOk)], 2);
}

TEST_F(ModelTest, LoadErrorsAreCoreErrors) {
  ModelOptions options;
  try {
    Model::LoadFromPath(ModelPath("does-not-exist.onnx"), options);
    FAIL() << "expected a load error";
  } catch (const CoreError& e) {
    EXPECT_EQ(e.code(), StatusCode::kLoadFailed);
  }
  options.instances = 0;
  try {
    Model::LoadFromPath(ModelPath("relu.onnx"), options);
    FAIL() << "expected a config error";
  } catch (const CoreError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidConfig);
  }
}

}  // namespace
}  // namespace engine
