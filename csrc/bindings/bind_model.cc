// engine._core.Model (the batcher-backed model) and engine._core.CompletionQueue.
//
// Synchronous infer() borrows the numpy inputs and waits with the GIL released. submit()
// copies the inputs (the caller does not wait) and delivers the result to a CompletionQueue
// that one Python thread drains in groups: C++ threads never take the GIL per request.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <condition_variable>
#include <deque>
#include <mutex>

#include "gil.h"
#include "model.h"
#include "numpy_bridge.h"
#include "register.h"

namespace engine::bindings {

namespace py = pybind11;

namespace {

struct Completion {
  uint64_t token = 0;
  InferResult result;
};

// Results of submit() calls, handed to Python in groups. Thread-safe. It is its requests'
// CompletionNotifier: a batch's results are pushed without waking the drain thread, and the
// batch's one Notify wakes it, so the thread takes the whole batch in one pass (one wake and
// one GIL acquisition) instead of waking at the first result and preempting the completion
// thread for each of the others.
class CompletionQueue : public CompletionNotifier {
 public:
  void Push(Completion c) {
    std::lock_guard<std::mutex> lock(mutex_);
    items_.push_back(std::move(c));
  }

  void Notify() override { ready_.notify_one(); }

  // Waits up to timeout_ms for at least one completion, then takes all. GIL released.
  std::deque<Completion> Take(int timeout_ms) {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                    [this] { return !items_.empty() || closed_; });
    std::deque<Completion> taken;
    taken.swap(items_);
    return taken;
  }

  void Close() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
    }
    ready_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Completion> items_;
  bool closed_ = false;
};

py::tuple Timings(const RequestTimings& t) {
  return py::make_tuple(t.queue_us, t.compute_us, t.total_us, t.batch_rows);
}

py::dict OutputsDict(std::vector<std::pair<std::string, HostTensor>>& outputs) {
  py::dict dict;
  for (auto& [name, tensor] : outputs) dict[py::str(name)] = TensorToNumpy(std::move(tensor));
  return dict;
}

py::dict Histogram(const HistogramSnapshot& h) {
  py::dict d;
  d["bounds_us"] = h.bounds;
  d["counts"] = h.counts;
  d["sum_us"] = h.sum;
  d["count"] = h.count;
  return d;
}

py::dict StatsDict(const StatsSnapshot& s) {
  py::dict requests;
  for (int i = 0; i < static_cast<int>(Outcome::kCount); ++i) {
    requests[OutcomeName(static_cast<Outcome>(i))] = s.requests[static_cast<size_t>(i)];
  }
  py::dict d;
  d["requests"] = requests;
  d["batches"] = s.batches;
  d["failed_batches"] = s.failed_batches;
  d["inferred_rows"] = s.inferred_rows;
  py::dict batch_sizes, batch_compute_us;  // rows -> batches, rows -> summed compute time
  for (const BatchSizeStats& size : s.batch_sizes) {
    batch_sizes[py::int_(size.rows)] = size.batches;
    batch_compute_us[py::int_(size.rows)] = size.compute_us;
  }
  d["batch_sizes"] = batch_sizes;
  d["batch_compute_us"] = batch_compute_us;
  d["queue_us"] = Histogram(s.queue_us);
  d["compute_us"] = Histogram(s.compute_us);
  d["total_us"] = Histogram(s.total_us);
  d["queue_depth"] = s.queue_depth;
  d["in_flight"] = s.in_flight;
  d["last_inference_ms"] = s.last_inference_ms;
  d["input_ns"] = s.input_ns;
  d["infer_ns"] = s.infer_ns;
  d["output_ns"] = s.output_ns;
  return d;
}

std::unique_ptr<InferRequest> MakeRequest(std::vector<std::pair<std::string, HostTensor>> inputs,
                                          std::vector<std::string> outputs, int priority,
                                          int64_t timeout_us, std::string id) {
  auto request = std::make_unique<InferRequest>();
  request->inputs = std::move(inputs);
  request->output_names = std::move(outputs);
  request->priority = priority;
  request->timeout_us = timeout_us;
  request->id = std::move(id);
  return request;
}

// Runs `convert` (inputs -> tensors). An input that does not convert is a request refused as
// invalid before the core saw it: count it as the core counts its own refusals, so that the
// outcomes add up to the requests made, then let the error propagate.
template <typename Convert>
auto CountingInvalid(Model& model, Convert&& convert) -> decltype(convert()) {
  try {
    return convert();
  } catch (const CoreError& e) {
    if (e.code() == StatusCode::kInvalidInput) model.CountRefusedBeforeSubmit(e.code());
    throw;
  }
}

// The tensors of run()'s `inputs`: a dict, or one array for a single-input model. Borrowed.
std::vector<std::pair<std::string, HostTensor>> RunInputs(const Model& model,
                                                          const py::handle& inputs,
                                                          std::vector<py::object>* keepalive) {
  const TransformPlan* transforms = model.options().transforms.get();
  if (model.inputs().size() == 1 && py::isinstance<py::array>(inputs)) {
    const std::string& name = model.inputs()[0].name;
    std::vector<std::pair<std::string, HostTensor>> tensors;
    tensors.emplace_back(name, TensorFromNumpy(name, inputs, keepalive,
                                               IsTransformStringColumn(transforms, name)));
    return tensors;
  }
  return TensorsFromMapping(inputs, keepalive, transforms);
}

// Runs `request` synchronously (inline when an instance is idle; GIL released throughout).
// A Ctrl-C while it waits in the queue cancels it and raises KeyboardInterrupt here.
py::dict InferAndWait(Model& model, std::unique_ptr<InferRequest> request) {
  request->allow_inline = true;  // this thread waits anyway
  InferResult result;
  bool interrupted = false;
  {
    GilRelease release;
    result = model.Infer(std::move(request), [&interrupted] {
      interrupted = SignalHandlerRaised();
      return interrupted;
    });
  }
  if (interrupted) throw py::error_already_set();  // the handler's exception
  if (!result.status.ok()) throw CoreError(result.status);
  return OutputsDict(result.outputs);
}

ModelOptions MakeOptions(const py::dict& o) {
  ModelOptions m;
  if (o.contains("name")) m.name = o["name"].cast<std::string>();
  m.session.intra_op_threads = o["intra_op_threads"].cast<int>();
  m.session.inter_op_threads = o["inter_op_threads"].cast<int>();
  m.session.allow_spinning = o["allow_spinning"].cast<bool>();
  m.session.graph_optimization_level = o["graph_optimization_level"].cast<std::string>();
  m.session.providers = o["providers"].cast<std::vector<std::string>>();
  m.session.cuda_device_id = o["device_id"].cast<int>();
  m.instances = o["instances"].cast<int>();
  const auto mode = o["instance_mode"].cast<std::string>();
  if (mode == "sessions") {
    m.instance_mode = InstanceMode::kSessions;
  } else if (mode == "shared") {
    m.instance_mode = InstanceMode::kShared;
  } else {
    throw CoreError(StatusCode::kInvalidConfig,
                    "instance_mode must be 'sessions' or 'shared'; was '" + mode + "'");
  }
  m.batching = o["batching"].cast<int>();
  m.batching_policy.max_batch_rows = o["max_batch_size"].cast<int>();
  m.batching_policy.preferred_batch_rows = o["preferred_batch_sizes"].cast<std::vector<int>>();
  m.batching_policy.max_queue_delay_us = o["max_queue_delay_us"].cast<int64_t>();
  m.batching_policy.max_queue_size = o["max_queue_size"].cast<size_t>();
  m.default_timeout_us = o["default_timeout_us"].cast<int64_t>();
  m.completion_spin = o["completion_spin"].cast<bool>();
  if (o.contains("worker_cpus")) m.worker_cpus = o["worker_cpus"].cast<std::vector<int>>();
  if (o.contains("max_request_rows")) m.max_request_rows = o["max_request_rows"].cast<int64_t>();
  if (o.contains("declared_input_shapes")) {
    m.declared_input_shapes =
        o["declared_input_shapes"].cast<std::map<std::string, std::vector<int64_t>>>();
  }
  if (o.contains("transforms") && !o["transforms"].is_none()) {
    m.transforms = o["transforms"].cast<std::shared_ptr<TransformPlan>>();
    m.transform_target = o["transform_target"].cast<std::string>();
  }
  return m;
}


}  // namespace

void register_model(py::module_& m) {
  py::class_<CompletionQueue, std::shared_ptr<CompletionQueue>>(
      m, "CompletionQueue", "Results of Model.submit(), drained by one Python thread.")
      .def(py::init<>())
      .def(
          "take",
          [](CompletionQueue& q, int timeout_ms) {
            std::deque<Completion> taken;
            {
              GilRelease release;
              taken = q.Take(timeout_ms);
            }
            py::list result;
            for (auto& c : taken) {
              const Status& s = c.result.status;
              py::object outputs = s.ok() ? py::object(OutputsDict(c.result.outputs)) : py::none();
              result.append(py::make_tuple(c.token, static_cast<int>(s.code()), s.message(),
                                           outputs, Timings(c.result.timings)));
            }
            return result;
          },
          py::arg("timeout_ms"),
          "Wait up to timeout_ms, then return [(token, code, message, outputs|None, timings)].")
      .def("close", &CompletionQueue::Close, "Wake a waiting take() for shutdown.");

  py::class_<Model, std::shared_ptr<Model>>(m, "Model", "A model behind the dynamic batcher.")
      .def_property_readonly_static("MAX_TIMED_RUNS",
                                    [](const py::object&) { return Model::kMaxTimedRuns; })
      .def_static(
          "from_path",
          [](const std::string& path, const py::dict& options) {
            ModelOptions o = MakeOptions(options);
            GilRelease release;
            return Model::LoadFromPath(path, std::move(o));
          },
          py::arg("path"), py::arg("options"))
      .def_static(
          "from_bytes",
          [](const py::bytes& data, const py::dict& options) {
            ModelOptions o = MakeOptions(options);
            std::string bytes = data;
            GilRelease release;
            return Model::LoadFromBytes(bytes, std::move(o));
          },
          py::arg("data"), py::arg("options"))
      .def_property_readonly("inputs", [](const Model& s) { return DescribeSignature(s.inputs()); })
      .def_property_readonly("outputs", [](const Model& s) { return DescribeSignature(s.outputs()); })
      .def_property_readonly("providers", &Model::providers)
      .def_property_readonly("batching_enabled", &Model::batching_enabled)
      .def(
          "infer",
          [](Model& model, const py::handle& inputs, std::vector<std::string> outputs,
             int priority, int64_t timeout_us, std::string id) {
            std::vector<py::object> keepalive;
            auto tensors = CountingInvalid(model, [&] {
              return TensorsFromMapping(inputs, &keepalive, model.options().transforms.get());
            });
            auto request = MakeRequest(std::move(tensors), std::move(outputs), priority,
                                       timeout_us, std::move(id));
            return InferAndWait(model, std::move(request));
          },
          py::arg("inputs"), py::arg("outputs") = std::vector<std::string>{},
          py::arg("priority") = 0, py::arg("timeout_us") = -1, py::arg("id") = "",
          "Run through the batcher and wait (GIL released). Returns {name: ndarray}.")
      .def(
          "run",
          [](Model& model, const py::handle& inputs) {
            std::vector<py::object> keepalive;
            auto tensors =
                CountingInvalid(model, [&] { return RunInputs(model, inputs, &keepalive); });
            auto request = std::make_unique<InferRequest>();
            request->inputs = std::move(tensors);
            return InferAndWait(model, std::move(request));
          },
          py::arg("inputs"),
          "infer() with default options, the per-call fast path: `inputs` is a dict, or one "
          "array for a single-input model.")
      .def(
          "submit",
          [](Model& model, const py::handle& inputs, std::vector<std::string> outputs,
             int priority, int64_t timeout_us, uint64_t token,
             std::shared_ptr<CompletionQueue> queue) {
            auto tensors = CountingInvalid(model, [&] {
              return OwnedTensorsFromMapping(inputs, model.options().transforms.get());
            });
            auto request = MakeRequest(std::move(tensors), std::move(outputs), priority,
                                       timeout_us, "");
            request->on_complete = [queue, token](InferResult&& r) {
              queue->Push(Completion{token, std::move(r)});
            };
            request->notifier = queue;  // wakes the drain thread once per batch
            GilRelease release;
            return model.Submit(std::move(request));
          },
          py::arg("inputs"), py::arg("outputs"), py::arg("priority"), py::arg("timeout_us"),
          py::arg("token"), py::arg("queue"),
          "Queue without waiting; the result goes to `queue` with `token`. Returns the "
          "sequence number for cancel(), or 0 when refused at once (result already queued). "
          "Inputs that do not convert raise InvalidInputError (counted as invalid).")
      .def("count_invalid_input",
           [](Model& model) { model.CountRefusedBeforeSubmit(StatusCode::kInvalidInput); },
           "Count a request refused as invalid before it reached the core (stats: invalid).")
      .def(
          "warm_up",
          [](Model& model, const py::handle& inputs) {
            std::vector<py::object> keepalive;
            const auto tensors =
                TensorsFromMapping(inputs, &keepalive, model.options().transforms.get());
            GilRelease release;
            model.WarmUp(tensors);
          },
          py::arg("inputs"),
          "Run `inputs` once on every idle instance; counted nowhere (GIL released).")
      .def(
          "time_runs",
          [](Model& model, const py::handle& inputs, int runs) {
            std::vector<py::object> keepalive;
            const auto tensors =
                TensorsFromMapping(inputs, &keepalive, model.options().transforms.get());
            GilRelease release;
            return model.TimeRuns(tensors, runs);
          },
          py::arg("inputs"), py::arg("runs"),
          "Run `inputs` `runs` times on one idle instance; each run's wall time in ns. "
          "Counted nowhere (GIL released).")
      .def(
          "cancel",
          [](Model& model, uint64_t seq) {
            GilRelease release;
            return model.Cancel(seq);
          },
          py::arg("seq"))
      .def(
          "close",
          [](Model& model, bool drain) {
            GilRelease release;
            model.Close(drain);
          },
          py::arg("drain") = true)
      .def("stats",
           [](Model& model) {
             py::dict d = StatsDict(model.Stats());
             d["samples_dropped"] = model.sampler().dropped();
             return d;
           })
      // How batches reached the completion thread: for diagnosing and benchmarking its pacing.
      .def("completion_counts",
           [](const Model& model) {
             const Completer::Counts c = model.CompletionCounts();
             py::dict d;
             d["posted"] = c.posted;
             d["woke"] = c.woke;
             d["left_to_timer"] = c.left_to_timer;
             d["found_spinning"] = c.found_spinning;
             d["naps"] = c.naps;
             return d;
           })
      .def(
          "set_drift_bins",
          [](Model& model, const py::list& features) {
            std::vector<DriftFeature> parsed;
            for (py::handle item : features) {
              py::dict f = py::reinterpret_borrow<py::dict>(item);
              DriftFeature feature;
              feature.name = f["name"].cast<std::string>();
              feature.tensor = f["tensor"].cast<std::string>();
              feature.column = f.contains("column") ? f["column"].cast<int64_t>() : -1;
              const auto kind = f["kind"].cast<std::string>();
              if (kind != "numeric" && kind != "categorical") {
                throw CoreError(StatusCode::kInvalidConfig,
                                "drift feature '" + feature.name +
                                    "': kind must be 'numeric' or 'categorical'; was '" + kind +
                                    "'");
              }
              feature.categorical = kind == "categorical";
              if (f.contains("edges")) feature.edges = f["edges"].cast<std::vector<double>>();
              if (f.contains("categories")) {
                for (py::handle c : f["categories"]) feature.categories.push_back(py::str(c));
              }
              parsed.push_back(std::move(feature));
            }
            model.SetDriftFeatures(std::move(parsed));
          },
          py::arg("features"),
          "Count these features on every batch (see csrc/drift.h for the slot layout).")
      .def("drift_counts",
           [](const Model& model) {
             py::dict d;
             for (auto& [name, counts] : model.DriftCounts()) d[py::str(name)] = counts;
             return d;
           })
      .def(
          "set_sampling",
          [](Model& model, double rate, size_t capacity) {
            if (!(rate >= 0.0 && rate <= 1.0)) {
              throw CoreError(StatusCode::kInvalidConfig,
                              "sampling rate must be in [0, 1]; was " + std::to_string(rate));
            }
            if (capacity < 1) throw CoreError(StatusCode::kInvalidConfig, "capacity must be >= 1");
            model.sampler().Configure(rate, capacity);
          },
          py::arg("rate"), py::arg("capacity") = 10000)
      .def(
          "take_samples",
          [](Model& model, size_t max_items) {
            std::vector<Sample> samples = model.sampler().Take(max_items);
            py::list result;
            for (auto& s : samples) {
              py::dict d;
              d["id"] = s.id;
              d["inputs"] = OutputsDict(s.inputs);
              d["outputs"] = OutputsDict(s.outputs);
              d["total_us"] = s.total_us;
              d["timestamp_ms"] = s.timestamp_ms;
              result.append(d);
            }
            return result;
          },
          py::arg("max_items") = 1000);
}

}  // namespace engine::bindings
