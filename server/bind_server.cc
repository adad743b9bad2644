// engine._core.Server: Python's narrow handle on the data plane (start, serve model versions,
// readiness, drain). Python's control plane answers the repository and config RPCs through
// the object it passes in; those calls take the GIL on the control thread, never on gRPC's.
#include "bind_server.h"

#include <pybind11/stl.h>

#include <string>
#include <utility>

#include "bindings/gil.h"
#include "error_map.h"
#include "grpc_server.h"
#include "log.h"

namespace engine::server {

namespace py = pybind11;

namespace {

// Calls the Python control object. Each method returns (grpc code name, message, payload);
// server/control.py maps the engine's exceptions with engine.errors.GRPC_STATUS.
class PyControlPlane final : public ControlPlane {
 public:
  explicit PyControlPlane(py::object control) : control_(std::move(control)) {}
  ~PyControlPlane() override {
    py::gil_scoped_acquire gil;
    control_ = py::object();
  }

  grpc::Status RepositoryIndex(bool ready_only, std::vector<IndexEntry>* out) override {
    return Call("repository_index", [&](const py::object& payload) {
      for (const auto& row : payload) {
        auto t = row.cast<py::tuple>();
        out->push_back(IndexEntry{t[0].cast<std::string>(), t[1].cast<std::string>(),
                                  t[2].cast<std::string>(), t[3].cast<std::string>()});
      }
    }, ready_only);
  }

  grpc::Status LoadModel(const std::string& name,
                         const std::map<std::string, std::string>& parameters) override {
    return Call("load_model", [](const py::object&) {}, name, parameters);
  }

  grpc::Status UnloadModel(const std::string& name) override {
    return Call("unload_model", [](const py::object&) {}, name);
  }

  grpc::Status ModelConfigJson(const std::string& name, int64_t version,
                               std::string* json) override {
    return Call("model_config_json",
                [&](const py::object& payload) { *json = payload.cast<std::string>(); }, name,
                version);
  }

 private:
  template <typename Use, typename... Args>
  grpc::Status Call(const char* method, Use&& use, Args&&... args) {
    py::gil_scoped_acquire gil;
    try {
      py::tuple result = control_.attr(method)(std::forward<Args>(args)...).template cast<py::tuple>();
      const auto code = GrpcCodeFromName(result[0].cast<std::string>());
      if (code != grpc::StatusCode::OK) return grpc::Status(code, result[1].cast<std::string>());
      use(result[2]);
      return grpc::Status::OK;
    } catch (const std::exception& e) {  // py::error_already_set included
      const std::string id = MakeRequestId();
      LogServerError(std::string("control call ") + method + " failed: " + e.what(), id);
      return grpc::Status(grpc::StatusCode::INTERNAL, "internal error; request id " + id);
    }
  }

  py::object control_;
};

// Deletes with the GIL released: Stop() waits for control calls that need the GIL.
struct GilFreeDelete {
  void operator()(GrpcServer* server) const {
    bindings::GilRelease release;
    delete server;
  }
};

std::string Pem(const py::object& value) {
  return value.is_none() ? std::string() : value.cast<std::string>();
}

}  // namespace

void register_server(py::module_& m) {
  m.def("set_server_json_logs", &engine::SetJsonLogs, py::arg("json"),
        "Write the C++ server's log lines as JSON objects (engine serve --log-json) or text.");
  py::class_<GrpcServer, std::unique_ptr<GrpcServer, GilFreeDelete>>(
      m, "Server", "The C++ gRPC server (KServe v2 inference protocol).")
      .def(py::init([](const std::string& host, int port, const py::object& tls_cert_pem,
                       const py::object& tls_key_pem, const py::object& tls_client_ca_pem,
                       const std::string& auth_token, int64_t max_message_bytes, int max_inputs,
                       int max_outputs, int64_t max_tensor_elements, const std::string& version,
                       bool reflection, const py::object& control) {
             ServerOptions o;
             o.host = host;
             o.port = port;
             o.tls_cert_pem = Pem(tls_cert_pem);
             o.tls_key_pem = Pem(tls_key_pem);
             o.tls_client_ca_pem = Pem(tls_client_ca_pem);
             o.auth_token = auth_token;
             o.limits.max_message_bytes = max_message_bytes;
             o.limits.max_inputs = max_inputs;
             o.limits.max_outputs = max_outputs;
             o.limits.max_tensor_elements = max_tensor_elements;
             o.info.server_version = version;
             o.reflection = reflection;
             std::unique_ptr<ControlPlane> plane;
             if (!control.is_none()) plane = std::make_unique<PyControlPlane>(control);
             return std::unique_ptr<GrpcServer, GilFreeDelete>(
                 new GrpcServer(std::move(o), std::move(plane)));
           }),
           py::kw_only(), py::arg("host") = "127.0.0.1", py::arg("port") = 8001,
           py::arg("tls_cert_pem") = py::none(), py::arg("tls_key_pem") = py::none(),
           py::arg("tls_client_ca_pem") = py::none(), py::arg("auth_token") = "",
           py::arg("max_message_bytes") = 64 << 20, py::arg("max_inputs") = 64,
           py::arg("max_outputs") = 64, py::arg("max_tensor_elements") = 1 << 26,
           py::arg("version") = "", py::arg("reflection") = true,
           py::arg("control") = py::none())
      .def(
          "start",
          [](GrpcServer& s) {
            bindings::GilRelease release;
            s.Start();
            return s.port();
          },
          "Bind and serve; returns the port. Raises UnavailableError when the port is taken.")
      .def_property_readonly("port", &GrpcServer::port)
      .def(
          "add_model",
          [](GrpcServer& s, const std::string& name, int64_t version,
             std::shared_ptr<Model> model, bool ready) {
            auto replaced = s.table().Add(name, version, std::move(model), ready);
            return replaced;
          },
          py::arg("name"), py::arg("version"), py::arg("model"), py::arg("ready") = true,
          "Serve `model` as name:version; returns the model it replaced, or None.")
      .def(
          "remove_model",
          [](GrpcServer& s, const std::string& name, int64_t version) {
            return s.table().Remove(name, version);
          },
          py::arg("name"), py::arg("version"),
          "Stop serving name:version; returns its model (close it) or None.")
      .def(
          "set_default_version",
          [](GrpcServer& s, const std::string& name, int64_t version) {
            s.table().SetDefault(name, version);
          },
          py::arg("name"), py::arg("version"))
      .def(
          "set_model_ready",
          [](GrpcServer& s, const std::string& name, int64_t version, bool ready) {
            s.table().SetReady(name, version, ready);
          },
          py::arg("name"), py::arg("version"), py::arg("ready"))
      .def("set_ready", &GrpcServer::SetReady, py::arg("ready"),
           "Server readiness (ServerReady and grpc.health.v1).")
      .def(
          "served",
          [](GrpcServer& s) {
            py::list rows;
            for (const auto& v : s.table().List()) {
              rows.append(py::make_tuple(v.name, v.version, v.ready, v.model));
            }
            return rows;
          },
          "[(name, version, ready, model)] of every served version.")
      .def(
          "drain",
          [](GrpcServer& s, double grace_s) {
            // The launcher bounds it; a cast of nan, inf or a huge value would be undefined.
            if (!(grace_s >= 0 && grace_s <= 1e9)) {
              throw py::value_error("grace_s must be a number of seconds in [0, 1e9]");
            }
            bindings::GilRelease release;
            s.Drain(static_cast<int64_t>(grace_s * 1000));
          },
          py::arg("grace_s"),
          "Health NOT_SERVING, refuse new requests, finish queued ones, then shut down; "
          "what is still open after grace_s is cancelled. Blocks.")
      .def(
          "cut_drain",
          [](GrpcServer& s) {
            bindings::GilRelease release;
            s.CutDrainShort();
          },
          "Cut a drain under way (in another thread) short: queued requests fail as "
          "UNAVAILABLE now, the runs under way finish, the transport shuts down at once.")
      .def(
          "stop",
          [](GrpcServer& s) {
            bindings::GilRelease release;
            s.Stop();
          },
          "Shut down at once (queued requests fail as unavailable).");
}

}  // namespace engine::server
