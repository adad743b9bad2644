"""The HTML report: renders from Parquet logs and the drift history, with decodable PNGs;
the `engine monitor report` and `engine monitor rules` commands."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest
from monitoring_scenario import draw, tensors

from engine.cli import main
from engine.monitoring import plots
from engine.monitoring.bins import NumpyDriftCounter
from engine.monitoring.history import DriftHistory
from engine.monitoring.monitor import DriftMonitor, MonitorConfig
from engine.monitoring.prediction_log import PredictionLog, PredictionLogConfig
from engine.monitoring.reference import DriftReference
from engine.monitoring.report import build_report, parse_since

START_MS = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now_s = START_MS / 1000

    def monotonic_s(self) -> float:
        return self.now_s

    def wall_ms(self) -> int:
        return int(self.now_s * 1000)


def populate(home: Path, reference: DriftReference) -> None:
    """An hour of a model: logs every minute, drift windows every 10 minutes, a shift in
    feature b after half an hour, and a few failures."""
    rng = np.random.default_rng(9)
    clock = Clock()
    log = PredictionLog(
        home / "logs" / "churn",
        model="churn",
        version=3,
        clock=clock,
        config=PredictionLogConfig(sample_rate=1.0),
        seed=1,
    )
    requests = {"ok": 0, "failed": 0, "invalid": 0}
    history = DriftHistory(home / "monitoring" / "churn", requests=lambda: dict(requests))
    counter = NumpyDriftCounter()
    monitor = DriftMonitor(
        counter,
        reference,
        model="churn",
        version=3,
        clock=clock,
        config=MonitorConfig(window_rows=10**6, window_s=600, min_rows=10),
        listeners=[history],
    )
    for minute in range(60):
        frame = draw(rng, 50, shift_b=2.5 if minute >= 30 else 0.0)
        batch = tensors(frame)
        counter.observe(batch)
        requests["ok"] += 50
        requests["failed"] += int(rng.integers(0, 3))
        for i in range(0, 50, 5):  # one logged request of 5 rows every 5 rows
            row = slice(i, i + 5)
            log.record(
                {k: v[row] for k, v in batch.items() if k != "score"},
                {"score": batch["score"][row]},
                latency_us=int(rng.gamma(4.0, 300.0) + (400 if minute >= 30 else 0)),
                request_id=f"{minute}-{i}",
                timestamp_ms=clock.wall_ms(),
            )
        clock.now_s += 60
        monitor.poll()
    log.close()


def images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, reference: DriftReference) -> Path:
    path = tmp_path_factory.mktemp("home")
    populate(path, reference)
    return path


def test_report_renders_every_section(home: Path) -> None:
    report = build_report(
        "churn",
        logs_dir=home / "logs" / "churn",
        monitoring_dir=home / "monitoring" / "churn",
        now_ms=START_MS + 3_600_000,
    )
    # latency, requests, PSI history, 6 features, 1 prediction output
    assert len(report.images) == 10
    pngs = images(report.html)
    assert pngs == report.images
    for png in pngs:
        pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
        assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 600
        assert pixels.std() > 0.01  # not a blank canvas
    html = report.html
    for heading in ("Latency", "Requests and errors", "Drift", "Predictions"):
        assert f"<h2>{heading}</h2>" in html
    assert 'class="drift">b' in html  # the last window names the drifted feature
    assert "server-side errors" in html
    assert "sampled requests logged</th><td>600<" in html  # 60 minutes x 10


def test_since_and_version_filter_and_empty_sources(home: Path) -> None:
    logs, history = home / "logs" / "churn", home / "monitoring" / "churn"
    # Past every record: nothing to plot, and the page says so.
    late = build_report(
        "churn", logs_dir=logs, monitoring_dir=history, since_ms=START_MS + 4_000_000
    )
    assert late.images == [] and "No prediction logs in this period." in late.html
    other = build_report("churn", logs_dir=logs, monitoring_dir=history, version="4")
    assert other.images == [] and "No drift windows in this period" in other.html


def test_parse_since() -> None:
    now = START_MS
    assert parse_since("90m", now) == now - 90 * 60_000
    assert parse_since("2d", now) == now - 2 * 86_400_000
    assert parse_since("2023-11-14T22:13:20", now) == 1_700_000_000_000
    with pytest.raises(ValueError, match="--since must be a duration"):
        parse_since("yesterday", now)


def test_report_command(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "report.html"
    # Logs only (an empty history folder): latency, requests, predictions.
    (tmp_path / "none").mkdir()
    assert (
        main(
            [
                "monitor",
                "report",
                "churn:3",
                "--home",
                str(home),
                "--out",
                str(out),
                "--history",
                str(tmp_path / "none"),
            ]
        )
        == 0
    )
    assert "(3 plots)" in capsys.readouterr().out
    html = out.read_text()
    assert len(images(html)) == 3 and "Errors are not in the prediction logs" in html
    assert main(["monitor", "report", "bad name!", "--home", str(home)]) == 1
    assert "error:" in capsys.readouterr().err


def test_rules_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "rules", "--psi", "0.25", "--latency-p99-s", "0.1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("groups:\n  - name: engine\n    rules:\n")
    assert 'expr: "engine_drift_score{metric=\\"psi\\"} > 0.25"' in text
    assert "rate(engine_request_duration_seconds_bucket[5m])" in text
    assert '> 0.1"' in text
    assert text.count("- alert: ") == 8
    assert main(["monitor", "rules", "--ks", "2"]) == 1
    assert "ks threshold must be in (0, 1); was 2.0" in capsys.readouterr().err


def test_rules_thresholds_are_the_monitors_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    # The monitor compares with the float given; a rule rounded to 6 digits would fire on
    # values the monitor calls clean (or the other way round).
    args = {
        "--psi": "0.2500001",
        "--ks": "0.1234567",
        "--chi2-pvalue": "0.00012345678",
        "--error-ratio": "0.0512345678",
        "--latency-p99-s": "1234567.5",
    }
    assert main(["monitor", "rules", *[x for kv in args.items() for x in kv]]) == 0
    exprs = re.findall(r'expr: "(.*)"', capsys.readouterr().out)
    thresholds = [float(e.rsplit(" ", 1)[1]) for e in exprs[:5]]
    assert thresholds == [float(v) for v in args.values()]


def test_rules_leave_out_a_drift_test_turned_off(capsys: pytest.CaptureFixture[str]) -> None:
    # `engine serve --ks-threshold off` turns the KS test off; the rules given the same
    # values must not alert on it either.
    assert main(["monitor", "rules", "--ks", "off", "--chi2-pvalue", "OFF"]) == 0
    text = capsys.readouterr().out
    assert "EngineFeatureDriftPSI" in text
    assert "EngineFeatureDriftKS" not in text and "EngineFeatureDriftChiSquare" not in text
    assert 'metric=\\"ks\\"' not in text and text.count("- alert: ") == 6
    with pytest.raises(SystemExit) as exit_:  # argparse: a usage error
        main(["monitor", "rules", "--psi", "of"])
    assert exit_.value.code == 2
    assert "expected a number or 'off'; was 'of'" in capsys.readouterr().err


def _window(time_ms: int, version: str, ok: int, failed: int, counts: list[int]) -> dict[str, Any]:
    n = len(counts)
    feature = {
        "kind": "numeric",
        "rows": sum(counts),
        "psi": 0.01,
        "ks": 0.01,
        "counts": counts,
        "reference": [1 / n] * n,
        "breaches": [],
        "labels": [f"bin{i}" for i in range(n)],
    }
    return {
        "time_ms": time_ms,
        "model": "m",
        "version": version,
        "started_ms": time_ms - 500,
        "ended_ms": time_ms,
        "rows": sum(counts),
        "drifted": [],
        "features": {"a": feature},
        "requests": {"ok": ok, "failed": failed},
    }


def test_report_of_every_version_keeps_versions_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two versions served side by side (an A/B split) write to one drift history: each has
    # its own request counters and its own bins (v2 was trained on other data).
    lines = [
        _window(1000, "1", 100, 1, [1, 2, 3, 4]),
        _window(1500, "2", 10, 0, [5, 5, 5]),
        _window(2000, "1", 200, 3, [1, 2, 3, 4]),
        _window(2500, "2", 20, 1, [5, 5, 5]),
        _window(3000, "1", 300, 4, [1, 2, 3, 4]),
    ]
    (tmp_path / "drift.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    plotted: list[tuple[Any, ...]] = []
    feature_png = plots.feature_png

    def spy(*args: Any) -> bytes:
        plotted.append(args)
        return feature_png(*args)

    monkeypatch.setattr(plots, "feature_png", spy)
    report = build_report("m", logs_dir=tmp_path / "none", monitoring_dir=tmp_path)
    # v1: 101 -> 304 requests, 1 -> 4 failed; v2: 10 -> 21 and 0 -> 1.
    assert "214 requests, 4 server-side errors" in report.html
    # The live distribution is that of the last window's bins (v1's): 3 windows, 30 rows.
    name, labels, reference, live, _, subtitle = plotted[-1]
    assert name == "a" and len(labels) == len(reference) == len(live) == 4
    assert subtitle.startswith("30 live rows in 3 window(s) (2 with other bins left out)")
    one = build_report("m", logs_dir=tmp_path / "none", monitoring_dir=tmp_path, version="2")
    assert "11 requests, 1 server-side errors" in one.html
    assert plotted[-1][-1].startswith("30 live rows in 2 window(s);")


def _report_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["monitor", "report", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def test_report_command_refuses_named_paths_that_are_wrong(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.html"
    base = ["churn", "--home", str(home), "--out", str(out)]
    for option in ("--logs", "--history"):
        missing = tmp_path / f"missing{option}"
        err = _report_error(capsys, *base, option, str(missing))
        assert f"{option} {str(missing)!r} does not exist" in err
    log_file = next((home / "logs" / "churn").glob("*.parquet"))
    err = _report_error(capsys, *base, "--logs", str(log_file))
    assert f"--logs {str(log_file)!r} is not a folder" in err
    err = _report_error(capsys, "churn", "--home", str(home), "--out", str(tmp_path))
    assert f"report output {str(tmp_path)!r} is a folder" in err
    assert not out.exists() and not (tmp_path / "report.html").exists()


def test_report_command_skips_damaged_logs_and_refuses_foreign_tables(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # A folder of good logs plus a truncated one (a disk that filled up mid-file) and one
    # that is not Parquet at all: the report uses the good ones and names the others.
    damaged, foreign = tmp_path / "damaged", tmp_path / "foreign"
    shutil.copytree(home / "logs" / "churn", damaged)
    good = sorted(damaged.glob("*.parquet"))
    rows = sum(pq.read_metadata(p).num_rows for p in good)
    data = good[0].read_bytes()
    truncated = damaged / "churn-v3-20231114T221320-1-0009.parquet"
    truncated.write_bytes(data[: len(data) // 2])
    (damaged / "a.parquet").write_bytes(b"not parquet")
    out = tmp_path / "r.html"
    args = ["monitor", "report", "churn:3", "--logs", str(damaged), "--out", str(out)]
    assert main([*args, "--history", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert (
        "note: 2 prediction log file(s) skipped, not valid Parquet: a.parquet (ArrowInvalid" in err
    )
    assert f"{truncated.name} (ArrowInvalid" in err
    html = out.read_text()
    assert f"sampled requests logged</th><td>{rows}<" in html
    assert "skipped, not valid Parquet" in html and truncated.name in html

    foreign.mkdir()
    pq.write_table(pa.table({"a": [1, 2]}), foreign / "a.parquet")
    out.unlink()
    err = _report_error(capsys, "churn", "--logs", str(foreign), "--out", str(out))
    assert f"{str(foreign / 'a.parquet')!r} is not a prediction log: missing or mistyped" in err
    assert "['timestamp', 'version', 'latency_us']" in err
    assert not out.exists()


def test_report_skips_history_lines_that_are_not_windows(home: Path, tmp_path: Path) -> None:
    history = tmp_path / "history"
    history.mkdir()
    good = (home / "monitoring" / "churn" / "drift.jsonl").read_text().splitlines()[-1]
    junk = ["{not json", '{"no_time_ms": 1}', "[1, 2]"]
    # ... and a line that is not UTF-8 at all.
    (history / "drift.jsonl").write_bytes(("\n".join([*junk, good, ""])).encode() + b"\xff\n")
    report = build_report("churn", logs_dir=tmp_path / "none", monitoring_dir=history)
    assert "drift windows</th><td>1<" in report.html


@pytest.mark.parametrize("duration", ["30s", "10m", "1h", "1h30m", "2d12h", "1w", "500ms", "0"])
def test_rules_accept_prometheus_durations(
    duration: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["monitor", "rules", "--for", duration]) == 0
    assert f"        for: {duration}\n" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--for", "abc"], "for_duration must be a Prometheus duration such as 30s"),
        (["--for", "10m\n        labels: {}"], "for_duration must be a Prometheus duration"),
        (["--for", "10m\n"], "for_duration must be a Prometheus duration"),
        (["--for", ""], "for_duration must be a Prometheus duration"),
        (["--for", "1h 30m"], "for_duration must be a Prometheus duration"),
        (["--for", "30m1h"], "for_duration must be a Prometheus duration"),  # largest first
        (["--for", "1.5h"], "for_duration must be a Prometheus duration"),
        (["--for=-5m"], "for_duration must be a Prometheus duration"),
        (["--for", "10M"], "for_duration must be a Prometheus duration"),
        (["--for", "300y"], "for_duration is longer than Prometheus allows"),
        (["--psi", "inf"], "psi threshold must be finite and > 0; was inf"),
        (["--psi", "nan"], "psi threshold must be finite and > 0; was nan"),
        (["--psi", "-1"], "psi threshold must be finite and > 0; was -1.0"),
        (["--psi", "0"], "psi threshold must be finite and > 0; was 0.0"),
        (["--ks", "inf"], "ks threshold must be in (0, 1); was inf"),
        (["--chi2-pvalue", "nan"], "chi2_pvalue threshold must be in (0, 1); was nan"),
        (["--error-ratio", "nan"], "error_ratio must be in (0, 1); was nan"),
        (["--latency-p99-s", "inf"], "latency_p99_s must be finite and > 0; was inf"),
        (["--latency-p99-s", "nan"], "latency_p99_s must be finite and > 0; was nan"),
    ],
)
def test_rules_refuse_bad_durations_and_thresholds(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["monitor", "rules", *args]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"error: {message}") and "Traceback" not in err


def _log_one(directory: Path, version: int, x: np.ndarray, *, close: bool = True) -> PredictionLog:
    log = PredictionLog(
        directory, model="m", version=version, config=PredictionLogConfig(sample_rate=1.0)
    )
    log.record({"x": x}, {"y": x[:, :1]}, latency_us=5)
    if close:
        log.close()
    else:
        assert log.flush()  # written, but the file stays open (*.parquet.partial)
    return log


def test_report_command_on_versions_with_other_dtypes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs, out = tmp_path / "logs", tmp_path / "r.html"
    _log_one(logs, 1, np.ones((1, 3), np.float32))
    _log_one(logs, 2, np.ones((1, 3), np.float64))
    base = ["monitor", "report", "--logs", str(logs), "--history", str(tmp_path), "--out"]
    assert main([*base, str(out), "m:2"]) == 0
    assert "sampled requests logged</th><td>1<" in out.read_text()
    assert main([*base, str(out), "m"]) == 0  # float32 and float64 together: float64
    assert "sampled requests logged</th><td>2<" in out.read_text()
    capsys.readouterr()
    _log_one(logs, 3, np.array([["a", "b", "c"]], dtype=object))
    err = _report_error(capsys, *base[2:], str(out), "m")
    assert "prediction logs disagree on column 'input.x'" in err
    assert "read one version at a time" in err
    assert main([*base, str(out), "m:3"]) == 0


def test_report_says_when_the_newest_logs_are_still_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs, out = tmp_path / "logs", tmp_path / "r.html"
    _log_one(logs, 1, np.ones((1, 3), np.float32))
    still_open = _log_one(logs, 1, np.ones((1, 3), np.float32), close=False)
    args = ["monitor", "report", "m", "--logs", str(logs), "--history", str(tmp_path)]
    assert main([*args, "--out", str(out)]) == 0
    still_open.close()
    err = capsys.readouterr().err
    assert "note: 1 prediction log file(s) are not readable yet (*.parquet.partial" in err
    html = out.read_text()
    assert "sampled requests logged</th><td>1<" in html
    assert "1 prediction log file(s) are not readable yet" in html
    assert "within its rotation age (5 minutes by default)" in html


def test_report_plots_string_outputs_that_are_not_utf8(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, model="m", version=1, config=PredictionLogConfig(sample_rate=1))
    for word in (b"cat", b"\xff", b"\xff"):
        log.record({"x": np.ones((1, 1))}, {"echo": np.array([[word]])}, latency_us=5)
    log.close()
    report = build_report("m", logs_dir=tmp_path, monitoring_dir=tmp_path / "none")
    assert 'alt="distribution of echo"' in report.html
    assert "distribution of echo.bytes" not in report.html


def _register_identity(tmp_path: Path, home: Path) -> None:
    """Model 'm' version 1 (an Identity graph) registered in ``home``, with alias 'prod'."""
    import onnx
    from onnx import TensorProto, helper

    from engine.registry import Registry

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "id.onnx"))
    assert main(["models", "register", "m", str(tmp_path / "id.onnx"), "--home", str(home)]) == 0
    with Registry(home) as registry:
        registry.set_alias("m", "prod", 1)


def test_report_refuses_a_model_or_version_nobody_knows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown name or version would give an empty report, like a model that saw no
    traffic: refused, as an unknown alias is."""
    home, out = tmp_path / "home", tmp_path / "r.html"
    _register_identity(tmp_path, home)
    capsys.readouterr()
    err = _report_error(capsys, "nope", "--home", str(home), "--out", str(out))
    assert err.startswith("error: no model named 'nope', and it has no prediction logs or drift")
    err = _report_error(capsys, "m:7", "--home", str(home), "--out", str(out))
    assert err.startswith(
        "error: model 'm' has no version 7; `engine models versions m` lists its versions"
    )
    assert not out.exists()


def test_report_refuses_a_registered_version_with_no_traffic(
    tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A registered version that never served has nothing to show: an empty page (exit 0)
    would pass for a report of a model that is fine. Said plainly, exit 1, no file; the same
    for a --since period with no records of a version that had traffic before it."""
    registry_home, out = tmp_path / "home", tmp_path / "r.html"
    _register_identity(tmp_path, registry_home)
    capsys.readouterr()
    logs, history = registry_home / "logs" / "m", registry_home / "monitoring" / "m"
    for ref, what in (
        ("m:1", "model 'm' version 1"),
        ("m@prod", "model 'm' version 1"),
        ("m", "model 'm'"),
    ):
        code = main(["monitor", "report", ref, "--home", str(registry_home), "--out", str(out)])
        stdout, err = capsys.readouterr()
        assert (code, stdout) == (1, ""), ref
        assert err.startswith(
            f"error: no traffic recorded for {what}: no prediction logs in {str(logs)!r} and "
            f"no drift history in {str(history)!r}; no report written."
        ), err
        assert "Traceback" not in err and not out.exists()
    # churn:3 had an hour of traffic, all before 2030.
    args = ["churn:3", "--home", str(home), "--out", str(out), "--since", "2030-01-01T00:00"]
    err = _report_error(capsys, *args)
    assert err.startswith(
        "error: no traffic recorded for model 'churn' version 3 since 2030-01-01 00:00:00 UTC: "
    )
    assert not out.exists()
    out.write_text("an earlier report")  # not replaced, and the message says it is stale
    err = _report_error(capsys, *args)
    assert err.rstrip().endswith(f"({str(out)!r} is an earlier file, left as it was)"), err
    assert out.read_text() == "an earlier report"


def test_report_never_creates_the_registry_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A report only reads: where there is no registry database, every model is unknown to
    the registry, and none is created (opening the registry would create it)."""
    home, out = tmp_path / "home", tmp_path / "r.html"
    database = home / "registry.db"
    for ref in ("nope", "nope:2"):
        err = _report_error(capsys, ref, "--home", str(home), "--out", str(out))
        assert err.startswith(
            f"error: no model named 'nope' (there is no registry database {str(database)!r}), "
            "and it has no prediction logs or drift history"
        ), err
    err = _report_error(capsys, "nope@prod", "--home", str(home), "--out", str(out))
    assert err.startswith(
        f"error: no model named 'nope' (there is no registry database {str(database)!r}), "
        "so alias 'prod' cannot be followed"
    ), err
    assert not home.exists()
    # Logs of a model served from a repository folder: reported, still without a database.
    _log_one(home / "logs" / "m", 1, np.ones((1, 3), np.float32))
    assert main(["monitor", "report", "m:1", "--home", str(home), "--out", str(out)]) == 0
    assert "(3 plots)" in capsys.readouterr().out
    assert not database.exists()
    assert sorted(p.name for p in home.iterdir()) == ["logs"]
