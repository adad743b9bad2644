// Batcher throughput and latency against raw ONNX Runtime runs, in one process and one run.
//
//   batcher_bench LIBONNXRUNTIME MODEL [seconds_per_round] [rounds] [only]
//
// `only` (grouped-off, grouped, reactor, callback or threads) runs just that throughput
// variant, without the baseline or the latency part; `raw-preferred` only raw ORT on batches
// of the preferred size, pinned where the worker would be (the baseline to alternate with a
// variant when comparing two builds); `latency` only the latency part: for profiling one
// path.
//
// Throughput: 64 one-row requests in flight (closed loop: each completion submits the next),
// through engine::Model (1 instance, 1 intra-op thread), against raw Session::Run of 64-row
// batches on a session with the same settings. The batcher's preferred batch size is tuned
// first, as a user tunes it for their hardware: a sweep of ORT's time per batch size picks,
// among sizes of at most 32 rows (half the requests in flight, so that one batch runs while
// the other is completed and resubmitted), the one with the most rows per microsecond; and
// its worker is pinned to the first CPU this process may use (ModelConfig.worker_cpus), where
// the baseline runs too; the model's completion thread then keeps off that CPU by itself.
// The submitters are a reactor thread that the completions are queued to, woken once per
// batch through the requests' CompletionNotifier (as the Python binding's queue is) or once
// per result; the completion callbacks themselves; or 64 blocking threads. In the target's
// variant the reactor keeps off the worker's CPU too, as a tuned deployment places its I/O
// threads; a reactor woken there preempts the worker in the middle of a run.
// Latency: p50 of one row at concurrency 1 with max_queue_delay_us=0, through the batcher
// (worker hand-off, and the inline path that synchronous callers use) against a direct
// Session::Run.
// Each variant runs between two baseline rounds, so that the host's drift hits both.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "affinity.h"
#include "model.h"
#include "ort_runtime.h"

using namespace engine;
using WallClock = std::chrono::steady_clock;

namespace {

HostTensor Rows(int64_t rows, std::vector<float>* storage) {
  storage->assign(static_cast<size_t>(rows * 32), 0.5f);
  HostTensor t;
  t.type = ElementType::kFloat32;
  t.shape = {rows, 32};
  t.data = storage->data();
  t.byte_size = storage->size() * sizeof(float);
  return t;
}

double RawRowsPerSecond(const Session& session, double seconds, int64_t batch_rows = 64) {
  std::vector<float> storage;
  HostTensor batch = Rows(batch_rows, &storage);
  int64_t rows = 0;
  const auto end = WallClock::now() + std::chrono::duration<double>(seconds);
  const auto start = WallClock::now();
  while (WallClock::now() < end) {
    session.Run({&batch});
    rows += batch_rows;
  }
  return rows / std::chrono::duration<double>(WallClock::now() - start).count();
}

// ORT's time per batch of 1..max_rows rows: for each size the lowest of several medians, so
// that a neighbour's burst on a shared host does not decide the size.
std::vector<double> RawUsByBatchSize(const Session& session, int64_t max_rows) {
  std::vector<double> best(static_cast<size_t>(max_rows + 1), 1e300);
  std::vector<float> storage;
  for (int pass = 0; pass < 5; ++pass) {
    for (int64_t rows = 1; rows <= max_rows; ++rows) {
      HostTensor batch = Rows(rows, &storage);
      std::vector<double> us;
      for (int i = 0; i < 60; ++i) {
        const auto t0 = WallClock::now();
        session.Run({&batch});
        us.push_back(std::chrono::duration<double, std::micro>(WallClock::now() - t0).count());
      }
      std::nth_element(us.begin(), us.begin() + 30, us.end());
      best[static_cast<size_t>(rows)] = std::min(best[static_cast<size_t>(rows)], us[30]);
    }
  }
  return best;
}

// The size of at most `limit` rows with the most rows per microsecond of ORT time. ORT's
// CPU matrix kernels work on blocks of rows (6 on this machine's AVX2 build), and a batch
// that ends a block short pays for most of it: 32 rows cost nearly what 36 do.
int64_t FastestBatchUpTo(const std::vector<double>& us, int64_t limit) {
  int64_t best = 1;
  for (int64_t rows = 1; rows <= limit; ++rows) {
    if (rows / us[static_cast<size_t>(rows)] > best / us[static_cast<size_t>(best)]) best = rows;
  }
  return best;
}

InferResult SubmitAndWait(Model& model, bool allow_inline, std::vector<float>* storage) {
  auto request = std::make_unique<InferRequest>();
  request->inputs.emplace_back("x", Rows(1, storage));
  request->allow_inline = allow_inline;
  std::promise<InferResult> done;
  auto future = done.get_future();
  request->on_complete = [&done](InferResult&& r) { done.set_value(std::move(r)); };
  model.Submit(std::move(request));
  return future.get();
}

double BatcherRowsPerSecond(Model& model, int threads, double seconds) {
  std::atomic<int64_t> rows{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> submitters;
  for (int t = 0; t < threads; ++t) {
    submitters.emplace_back([&] {
      std::vector<float> storage;
      while (!stop.load(std::memory_order_relaxed)) {
        if (SubmitAndWait(model, false, &storage).status.ok()) rows.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // reach steady state
  const int64_t before = rows.load();
  const auto start = WallClock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const int64_t counted = rows.load() - before;
  const double elapsed = std::chrono::duration<double>(WallClock::now() - start).count();
  stop = true;
  for (auto& t : submitters) t.join();
  return counted / elapsed;
}

// 64 submitters without 64 OS threads, as a server's reactor has them: 64 requests in
// flight, each completion submitting the next one-row request.
class AsyncSubmitters {
 public:
  AsyncSubmitters(Model& model, int in_flight) : model_(model), storage_(static_cast<size_t>(in_flight)) {
    for (int i = 0; i < in_flight; ++i) SubmitNext(i);
  }
  void Stop() {
    stop_ = true;
    while (outstanding_.load() > 0) std::this_thread::yield();
  }
  int64_t rows() const { return rows_.load(); }

 private:
  void SubmitNext(int slot) {
    auto request = std::make_unique<InferRequest>();
    request->inputs.emplace_back("x", Rows(1, &storage_[static_cast<size_t>(slot)]));
    request->on_complete = [this, slot](InferResult&& r) {
      if (r.status.ok()) rows_.fetch_add(1, std::memory_order_relaxed);
      outstanding_.fetch_sub(1);
      if (!stop_.load()) SubmitNext(slot);
    };
    outstanding_.fetch_add(1);
    model_.Submit(std::move(request));
  }
  Model& model_;
  std::vector<std::vector<float>> storage_;
  std::atomic<int64_t> rows_{0};
  std::atomic<int> outstanding_{0};
  std::atomic<bool> stop_{false};
};

double AsyncRowsPerSecond(Model& model, int in_flight, double seconds) {
  AsyncSubmitters submitters(model, in_flight);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const int64_t before = submitters.rows();
  const auto start = WallClock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const int64_t counted = submitters.rows() - before;
  const double elapsed = std::chrono::duration<double>(WallClock::now() - start).count();
  submitters.Stop();
  return counted / elapsed;
}

// Completed slots on their way back to the reactor thread. Per result, each completion wakes
// the reactor (what a plain queue does); grouped, the queue is also the requests' notifier
// and wakes the reactor once per batch.
class ReactorQueue : public CompletionNotifier {
 public:
  explicit ReactorQueue(bool grouped) : grouped_(grouped) {}
  void Push(int slot) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      slots_.push_back(slot);
    }
    if (!grouped_) ready_.notify_one();
  }
  void Notify() override { ready_.notify_one(); }
  std::vector<int> Take() {
    std::vector<int> taken;
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return !slots_.empty(); });
    taken.swap(slots_);
    return taken;
  }

 private:
  const bool grouped_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<int> slots_;
};

// 64 submitters as a server's reactor thread has them: 64 requests in flight; completions
// are handed back to one reactor thread (as gRPC does), which submits the next requests.
double ReactorRowsPerSecond(Model& model, int in_flight, double seconds, bool grouped,
                            const std::vector<int>& avoid_cpus = {}) {
  if (!avoid_cpus.empty()) {
    // The reactor on the CPUs the worker does not use, as a tuned deployment places its I/O
    // threads: on its own thread, so that this one's affinity stays as it was.
    double rate = 0;
    std::thread reactor([&] {
      KeepThisThreadOff(avoid_cpus);
      rate = ReactorRowsPerSecond(model, in_flight, seconds, grouped);
    });
    reactor.join();
    return rate;
  }
  auto queue = std::make_shared<ReactorQueue>(grouped);
  std::atomic<int64_t> rows{0};
  std::vector<std::vector<float>> storage(static_cast<size_t>(in_flight));
  auto submit = [&](int slot) {
    auto request = std::make_unique<InferRequest>();
    request->inputs.emplace_back("x", Rows(1, &storage[static_cast<size_t>(slot)]));
    request->on_complete = [&, slot](InferResult&& r) {
      if (r.status.ok()) rows.fetch_add(1, std::memory_order_relaxed);
      queue->Push(slot);
    };
    if (grouped) request->notifier = queue;
    model.Submit(std::move(request));
  };
  for (int i = 0; i < in_flight; ++i) submit(i);
  const auto warm_end = WallClock::now() + std::chrono::milliseconds(50);
  const auto end = warm_end + std::chrono::duration<double>(seconds);
  int64_t before = -1;
  WallClock::time_point start;
  int outstanding = in_flight;
  while (true) {
    const std::vector<int> slots = queue->Take();
    outstanding -= static_cast<int>(slots.size());
    const auto now = WallClock::now();
    if (before < 0 && now >= warm_end) {
      before = rows.load();
      start = now;
    }
    if (now >= end) {
      if (outstanding == 0) break;
      continue;  // let the in-flight requests finish, submit no more
    }
    for (int slot : slots) {
      submit(slot);
      ++outstanding;
    }
  }
  const double elapsed = std::chrono::duration<double>(end - start).count();
  return (rows.load() - before) / elapsed;
}

// The same, with the caller polling for its result instead of sleeping on it: without the
// caller's own wake-up, what the hand-off to the worker costs.
InferResult SubmitAndPoll(Model& model, std::vector<float>* storage) {
  auto request = std::make_unique<InferRequest>();
  request->inputs.emplace_back("x", Rows(1, storage));
  request->allow_inline = false;
  std::atomic<bool> done{false};
  InferResult result;
  request->on_complete = [&](InferResult&& r) {
    result = std::move(r);
    done.store(true, std::memory_order_release);
  };
  model.Submit(std::move(request));
  while (!done.load(std::memory_order_acquire)) {
  }
  return result;
}

template <typename Fn>
double P50Us(Fn fn, int calls) {
  std::vector<double> us;
  us.reserve(static_cast<size_t>(calls));
  for (int i = 0; i < calls; ++i) {
    const auto t0 = WallClock::now();
    fn();
    us.push_back(std::chrono::duration<double, std::micro>(WallClock::now() - t0).count());
  }
  std::nth_element(us.begin(), us.begin() + calls / 2, us.end());
  return us[static_cast<size_t>(calls / 2)];
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Where a batch's time goes, per batch size seen most, against a raw run of that size; with
// the variant's rate, also the worker's idle time per batch (waiting for its rows to come).
void PrintPhases(const Model& model, const Session& session, double rows_per_s = 0) {
  const StatsSnapshot stats = model.Stats();
  if (stats.batch_sizes.empty()) return;
  const BatchSizeStats most = *std::max_element(
      stats.batch_sizes.begin(), stats.batch_sizes.end(),
      [](const BatchSizeStats& a, const BatchSizeStats& b) { return a.batches < b.batches; });
  const auto rows = static_cast<size_t>(most.rows);
  const double batches = static_cast<double>(most.batches);
  if (rows == 0) return;
  std::vector<float> storage;
  HostTensor batch = Rows(static_cast<int64_t>(rows), &storage);
  std::vector<double> raw_us;
  for (int i = 0; i < 2000; ++i) {
    const auto t0 = WallClock::now();
    session.Run({&batch});
    raw_us.push_back(std::chrono::duration<double, std::micro>(WallClock::now() - t0).count());
  }
  double raw_mean = 0;
  for (double us : raw_us) raw_mean += us / static_cast<double>(raw_us.size());
  std::printf("%zu-row batches (%.0f): input %.1f us, ORT %.1f us, output %.1f us per batch "
              "(means); raw ORT run of %zu rows: mean %.1f us, median %.1f us\n",
              rows, batches, most.input_ns / batches / 1000, most.infer_ns / batches / 1000,
              most.output_ns / batches / 1000, rows, raw_mean, Median(raw_us));
  if (rows_per_s > 0) {
    int64_t weighted = 0, all_batches = 0;
    for (const BatchSizeStats& size : stats.batch_sizes) {
      weighted += size.rows * size.batches;
      all_batches += size.batches;
    }
    const double mean_rows = double(weighted) / double(all_batches);
    const double busy_us =
        double(most.input_ns + most.infer_ns + most.output_ns) / batches / 1000;
    std::printf("wall time per batch (mean %.1f rows): %.1f us, of which the worker idles about "
                "%.1f us\n",
                mean_rows, mean_rows / rows_per_s * 1e6, mean_rows / rows_per_s * 1e6 - busy_us);
  }
  // A wake of the sleeping completion thread costs the worker an IPI; the pacer avoids most.
  const Completer::Counts handed = model.CompletionCounts();
  if (handed.posted > 0) {
    std::printf("batches handed to the completion thread: %lld; %.1f%% woke it, %.1f%% found it "
                "spinning, %.1f%% found it napping and were left to its timer; it napped %lld "
                "times\n",
                static_cast<long long>(handed.posted), 100.0 * handed.woke / handed.posted,
                100.0 * handed.found_spinning / handed.posted,
                100.0 * handed.left_to_timer / handed.posted,
                static_cast<long long>(handed.naps));
  }
}

// p50 of one row at concurrency 1 through `model` (via its worker, and inline) against a
// direct run, in interleaved rounds.
void PrintLatency(Model& model, const Session& session, int rounds) {
  std::vector<float> storage;
  HostTensor one = Rows(1, &storage);
  std::vector<double> direct, handoff, polled, inlined;
  for (int r = 0; r < rounds; ++r) {
    direct.push_back(P50Us([&] { session.Run({&one}); }, 4000));
    handoff.push_back(P50Us([&] { SubmitAndWait(model, false, &storage); }, 4000));
    polled.push_back(P50Us([&] { SubmitAndPoll(model, &storage); }, 4000));
    inlined.push_back(P50Us([&] { SubmitAndWait(model, true, &storage); }, 4000));
  }
  const double d = Median(direct), h = Median(handoff), p = Median(polled), i = Median(inlined);
  std::printf("latency p50 at concurrency 1: direct run %.1f us, batcher via worker %.1f us "
              "(%+.1f us; %+.1f us with the caller polling for its result instead of sleeping), "
              "batcher inline %.1f us (%+.1f us) (target <= +30 us)\n",
              d, h, h - d, p - d, i, i - d);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s LIBONNXRUNTIME MODEL [seconds_per_round] [rounds]\n", argv[0]);
    return 2;
  }
  const double seconds = argc > 3 ? std::atof(argv[3]) : 1.0;
  const int rounds = argc > 4 ? std::atoi(argv[4]) : 5;
  const std::string only = argc > 5 ? argv[5] : "";
  OrtRuntime::Init(argv[1]);
  SessionOptions so;  // 1 intra-op thread, no spinning: the same for both sides
  auto session = Session::FromPath(argv[2], so);
  ModelOptions mo;
  mo.session = so;
  mo.instances = 1;
  mo.batching_policy.max_batch_rows = 64;
  mo.batching_policy.max_queue_delay_us = 0;
  auto model = Model::LoadFromPath(argv[2], mo);
  // For throughput: one batch runs while the other half of the 64 requests in flight is
  // completed and resubmitted, with a short wait for a batch to fill. Its size is tuned.
  const std::vector<double> us_by_rows = RawUsByBatchSize(*session, 64);
  const int64_t preferred = FastestBatchUpTo(us_by_rows, 32);
  std::printf("ORT us per batch by rows (lowest of 5 medians):");
  for (int64_t rows = 1; rows <= 64; ++rows) {
    std::printf("%s%lld:%.1f", rows % 16 == 1 ? "\n  " : " ", static_cast<long long>(rows),
                us_by_rows[static_cast<size_t>(rows)]);
  }
  std::printf("\npreferred batch for the pipeline: %lld rows (%.3f rows/us; 32 rows: %.3f)\n",
              static_cast<long long>(preferred),
              preferred / us_by_rows[static_cast<size_t>(preferred)], 32 / us_by_rows[32]);
  ModelOptions to = mo;
  to.batching_policy.preferred_batch_rows = {static_cast<int>(preferred)};
  to.batching_policy.max_queue_delay_us = 500;
  auto unpinned = Model::LoadFromPath(argv[2], to);
  // The worker pinned to one CPU (ModelConfig.worker_cpus), where it keeps the weights in its
  // core's cache: one the scheduler moves runs its next batch cold.
  const int worker_cpu = AllowedCpus().empty() ? 0 : AllowedCpus().front();
  to.worker_cpus = {worker_cpu};
  auto pipelined = Model::LoadFromPath(argv[2], to);
  // Unpinned, with the untuned half of the requests in flight, for comparison.
  ModelOptions halves = to;
  halves.worker_cpus.clear();
  halves.batching_policy.preferred_batch_rows = {32};
  auto pipelined32 = Model::LoadFromPath(argv[2], halves);

  if (only == "latency") {
    PrintLatency(*model, *session, rounds);
    return 0;
  }
  if (!only.empty()) {
    double rps = 0;
    if (only == "reactor") rps = ReactorRowsPerSecond(*pipelined, 64, seconds * rounds, false);
    if (only == "grouped") rps = ReactorRowsPerSecond(*pipelined, 64, seconds * rounds, true);
    if (only == "grouped-off") {
      rps = ReactorRowsPerSecond(*pipelined, 64, seconds * rounds, true, {worker_cpu});
    }
    if (only == "raw-preferred") {  // the baseline for A/B runs of the single variants
      PinThisThread(worker_cpu);
      rps = RawRowsPerSecond(*session, seconds * rounds, preferred);
    }
    if (only == "callback") rps = AsyncRowsPerSecond(*pipelined, 64, seconds * rounds);
    if (only == "threads") rps = BatcherRowsPerSecond(*model, 64, seconds * rounds);
    std::printf("%s: %.0f rows/s\n", only.c_str(), rps);
    PrintPhases(only == "threads" ? *model : *pipelined, *session, rps);
    model->Close(true);
    pipelined->Close(true);
    unpinned->Close(true);
    pipelined32->Close(true);
    return 0;
  }
  // Each variant runs between two baseline rounds, and its ratio is taken to their mean: the
  // speed of this shared host drifts by a third within seconds, and a baseline run next to
  // the variant sees the same drift. The ratio reported is the median over rounds.
  struct Variant {
    const char* label;
    std::function<double()> rows_per_s;
    std::vector<double> rates, ratios;
  };
  std::vector<Variant> variants = {
      {"resubmitted by a reactor thread woken once per batch (CompletionNotifier), kept off "
       "the worker's CPU",
       [&] { return ReactorRowsPerSecond(*pipelined, 64, seconds, true, {worker_cpu}); }, {}, {}},
      {"the same with the reactor anywhere",
       [&] { return ReactorRowsPerSecond(*pipelined, 64, seconds, true); }, {}, {}},
      {"the same with the worker unpinned",
       [&] { return ReactorRowsPerSecond(*unpinned, 64, seconds, true); }, {}, {}},
      {"the same unpinned with preferred batch 32 (untuned)",
       [&] { return ReactorRowsPerSecond(*pipelined32, 64, seconds, true); }, {}, {}},
      {"resubmitted by a reactor thread woken once per result",
       [&] { return ReactorRowsPerSecond(*pipelined, 64, seconds, false); }, {}, {}},
      {"resubmitted inside the completion callback",
       [&] { return AsyncRowsPerSecond(*pipelined, 64, seconds); }, {}, {}},
      {"64 blocking submitter threads (no preferred size)",
       [&] { return BatcherRowsPerSecond(*model, 64, seconds); }, {}, {}},
  };
  // The baseline runs on the worker's CPU too, so that pinning favours neither side; on a
  // thread of its own, so that the reactor (this thread) is not left on the worker's CPU.
  auto pinned_raw = [&](int64_t batch_rows) {
    double rate = 0;
    std::thread runner([&] {
      PinThisThread(worker_cpu);
      rate = RawRowsPerSecond(*session, seconds, batch_rows);
    });
    runner.join();
    return rate;
  };
  std::vector<double> raw, raw_preferred;
  for (int r = 0; r < rounds; ++r) {
    double before = pinned_raw(64);
    raw.push_back(before);
    for (Variant& variant : variants) {
      const double rate = variant.rows_per_s();
      const double after = pinned_raw(64);
      raw.push_back(after);
      variant.rates.push_back(rate);
      variant.ratios.push_back(rate / ((before + after) / 2));
      before = after;
    }
    raw_preferred.push_back(pinned_raw(preferred));
  }
  const double raw_rps = Median(raw), ceiling = Median(raw_preferred);
  std::printf("throughput (batcher: preferred batch %lld, max_queue_delay_us 500, worker on CPU "
              "%d): raw ORT on "
              "64-row batches %.0f rows/s (median); batcher with 64 one-row requests in flight, "
              "rows/s (median) and ratio to the baseline rounds beside it (median):\n",
              static_cast<long long>(preferred), worker_cpu, raw_rps);
  for (const Variant& variant : variants) {
    std::printf("  %s %.0f rows/s, ratio %.3f%s\n", variant.label, Median(variant.rates),
                Median(variant.ratios), &variant == &variants[0] ? " (target >= 0.85)" : "");
  }
  const double g = Median(variants[0].rates), re = Median(variants[4].rates),
               a = Median(variants[5].rates);
  StatsSnapshot stats = pipelined->Stats();
  int64_t weighted = 0;
  for (const BatchSizeStats& size : stats.batch_sizes) weighted += size.rows * size.batches;
  const double mean_rows = stats.batches ? double(weighted) / double(stats.batches) : 0.0;
  std::printf("mean batch: %.1f rows over %lld batches\n", mean_rows,
              static_cast<long long>(stats.batches));
  // Where a batch's wall time goes: what the worker's gather and ORT run take of it; the rest
  // is the worker handing the batch over and forming the next (or waiting for one).
  PrintPhases(*pipelined, *session);
  if (mean_rows > 0) {
    std::printf("wall time per batch of that mean size: grouped %.1f us, per result %.1f us, "
                "callback %.1f us\n",
                mean_rows / g * 1e6, mean_rows / re * 1e6, mean_rows / a * 1e6);
  }
  // While one batch runs, the other requests in flight are completed and resubmitted: ORT's
  // own speed on batches of the preferred size bounds that pipeline.
  std::printf("ceiling of that pipeline: raw ORT on %lld-row batches %.0f rows/s, ratio %.3f of "
              "64-row batches\n",
              static_cast<long long>(preferred), ceiling, ceiling / raw_rps);
  // The batcher's own cost, apart from ORT's: how close each mode comes to that ceiling.
  std::printf("share of that ceiling reached: grouped %.3f, per result %.3f, callback %.3f\n",
              g / ceiling, re / ceiling, a / ceiling);
  PrintLatency(*model, *session, rounds);
  model->Close(true);
  pipelined->Close(true);
  unpinned->Close(true);
  pipelined32->Close(true);
  return 0;
}
