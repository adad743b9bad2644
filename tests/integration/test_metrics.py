"""Prometheus /metrics: families, labels from loaded models only, counters that move."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from _server import ServerProcess
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.integration

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _scrape(server: ServerProcess) -> dict[str, object]:
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(families: dict[str, object], family: str, sample: str, **labels: str) -> float:
    for s in families[family].samples:  # type: ignore[attr-defined]
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise KeyError((family, sample, labels))


@pytest.mark.parametrize("path", ["/", "/nope", "/metrics/extra", "/METRICS"])
def test_only_the_metrics_path_serves_metrics(server: ServerProcess, path: str) -> None:
    url = f"http://127.0.0.1:{server.metrics_port}{path}"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url, timeout=5)
    assert e.value.code == 404
    assert b"/metrics" in e.value.read()
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics?x=1",
                                timeout=5) as response:
        assert response.status == 200


def test_requests_refused_before_they_are_queued_are_counted(
        server: ServerProcess, client: grpcclient.InferenceServerClient) -> None:
    """Refused while being decoded (a wrong datatype, an input the model does not have, a raw
    size that does not match): counted as invalid too, so that the outcomes add up to the
    requests sent (they were left out, while a wrong shape was counted)."""
    labels = {"model": "add", "version": "1", "outcome": "invalid"}
    before = _value(_scrape(server), "engine_requests", "engine_requests_total", **labels)
    wrong_type = grpcclient.InferInput("x", [1, 4], "FP64")
    wrong_type.set_data_from_numpy(np.zeros((1, 4), np.float64))
    unknown = grpcclient.InferInput("nosuch", [1, 4], "FP32")
    unknown.set_data_from_numpy(np.zeros((1, 4), np.float32))
    short = grpcclient.InferInput("x", [1, 4], "FP32")
    short.set_data_from_numpy(np.zeros((1, 4), np.float32))
    short.set_shape([2, 4])  # the raw bytes hold one row
    for inputs in ([wrong_type], [unknown], [short]):
        with pytest.raises(InferenceServerException) as info:
            client.infer("add", inputs, model_version="1")
        assert info.value.status() == "StatusCode.INVALID_ARGUMENT", info.value
    after = _value(_scrape(server), "engine_requests", "engine_requests_total", **labels)
    assert after == before + 3


def test_metrics_follow_requests(server: ServerProcess,
                                 client: grpcclient.InferenceServerClient) -> None:
    before = _scrape(server)
    ok_before = _value(before, "engine_requests", "engine_requests_total", model="add",
                       version="1", outcome="ok")
    x = np.zeros((3, 4), np.float32)
    i = grpcclient.InferInput("x", [3, 4], "FP32")
    i.set_data_from_numpy(x)
    for _ in range(4):
        client.infer("add", [i], model_version="1")
    bad = grpcclient.InferInput("x", [1, 5], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 5), np.float32))
    with pytest.raises(InferenceServerException):
        client.infer("add", [bad], model_version="1")

    after = _scrape(server)
    labels = {"model": "add", "version": "1"}
    assert _value(after, "engine_requests", "engine_requests_total", outcome="ok",
                  **labels) == ok_before + 4
    assert _value(after, "engine_requests", "engine_requests_total", outcome="invalid",
                  **labels) >= 1
    for family in ("engine_request_queue_seconds", "engine_request_compute_seconds",
                   "engine_request_duration_seconds"):
        assert after[family].type == "histogram"  # type: ignore[attr-defined]
        count = _value(after, family, family + "_count", **labels)
        assert _value(after, family, family + "_bucket", le="+Inf", **labels) == count
        assert count >= ok_before + 4
    assert _value(after, "engine_batch_size", "engine_batch_size_bucket", le="+Inf",
                  **labels) >= 4
    assert _value(after, "engine_queue_depth", "engine_queue_depth", **labels) == 0
    assert _value(after, "engine_requests_in_flight", "engine_requests_in_flight", **labels) == 0


def test_metric_names_and_labels(server: ServerProcess,
                                 client: grpcclient.InferenceServerClient) -> None:
    families = _scrape(server)
    served = {(m["name"], m["version"])
              for m in client.get_model_repository_index(as_json=True)["models"]
              if m.get("state") == "READY"}
    engine_families = [f for name, f in families.items() if name.startswith("engine_")]
    assert len(engine_families) == 8
    for family in engine_families:
        assert NAME_RE.fullmatch(family.name)  # type: ignore[attr-defined]
        if family.type == "counter":  # type: ignore[attr-defined]
            assert all(s.name.endswith("_total") for s in family.samples)  # type: ignore[attr-defined]
        for s in family.samples:  # type: ignore[attr-defined]
            assert (s.labels["model"], s.labels["version"]) in served


def test_counters_never_go_down_across_reload_unload_and_load(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    # A version reloaded in place, or unloaded and loaded again, is a new model whose core
    # counts from zero; the exported counters go on from where they were.
    from _models import build_mini_repository
    from _server import start_server

    repo = build_mini_repository(tmp_path_factory.mktemp("reload-repo"))
    srv = start_server(["--model-repository", str(repo)], tmp_path_factory.mktemp("reload"))
    labels = {"model": "add", "version": "1"}
    samples = [("engine_requests", "engine_requests_total", {"outcome": "ok"}),
               ("engine_inferred_rows", "engine_inferred_rows_total", {}),
               ("engine_request_duration_seconds", "engine_request_duration_seconds_count", {}),
               ("engine_batch_size", "engine_batch_size_count", {})]
    try:
        c = grpcclient.InferenceServerClient(srv.url)
        x = grpcclient.InferInput("x", [1, 4], "FP32")
        x.set_data_from_numpy(np.zeros((1, 4), np.float32))

        def infer(n: int) -> None:
            for _ in range(n):
                c.infer("add", [x])

        def values() -> list[float]:
            families = _scrape(srv)
            return [_value(families, f, s, **labels, **extra) for f, s, extra in samples]

        infer(3)
        assert values() == [3] * 4
        c.load_model("add")  # reloaded in place
        infer(2)
        assert values() == [5] * 4
        c.unload_model("add")
        # Unloaded: the counters stay at their final counts for a while (server/metrics.py
        # UNLOADED_SERIES_S), the gauges go.
        assert values() == [5] * 4
        family = _scrape(srv).get("engine_requests_in_flight")
        assert family is None or not family.samples  # type: ignore[attr-defined]
        c.load_model("add")
        infer(1)
        assert values() == [6] * 4
        c.close()
    finally:
        assert srv.terminate() == 0, srv.stderr()
