"""Batch-size tuning (engine.tuning, Model.time_runs, `engine tune`). Timing values depend on
the machine: these tests check what is measured and how the recommendation follows from
times, never how fast anything is."""

from __future__ import annotations

import json
from pathlib import Path

import factories
import numpy as np
import pytest

import engine
from engine.cli import main
from engine.errors import InvalidConfigError, InvalidInputError, UnavailableError
from engine.tuning import BatchTiming, recommend, sweep, synthetic_row, tune


def _steps(max_rows: int, block: int = 6) -> tuple[BatchTiming, ...]:
    """Times that climb by 10 us per started block of rows, on top of 5 us: a kernel that
    computes whole blocks, as ONNX Runtime's CPU matrix kernels do."""
    return tuple(BatchTiming(n, 5.0 + 10.0 * -(-n // block)) for n in range(1, max_rows + 1))


def test_the_recommendation_is_the_best_size_of_at_most_half_the_requests_in_flight() -> None:
    tuning = recommend(_steps(64), in_flight=64)
    assert tuning.preferred.rows == 30  # a whole number of blocks, at most 32 rows
    assert tuning.saturated.rows == 60  # 64 rows pay for an 11th block
    assert tuning.to_dict()["preferred_batch_sizes"] == [30]
    assert recommend(_steps(64), in_flight=8).preferred.rows == 4
    # Two instances run two batches while a third is answered: at most 64 // 3 = 21 rows.
    assert recommend(_steps(64), in_flight=64, instances=2).preferred.rows == 18
    assert recommend(_steps(64), in_flight=1).preferred.rows == 1
    # More requests in flight than the sweep covers: the best size the sweep has.
    assert recommend(_steps(16), in_flight=1000).preferred.rows == 12


def test_recommend_refuses_what_is_not_a_sweep() -> None:
    with pytest.raises(ValueError, match="1..N"):
        recommend((BatchTiming(2, 1.0),), in_flight=4)
    with pytest.raises(InvalidConfigError, match="in_flight"):
        recommend(_steps(4), in_flight=0)


def test_time_runs_times_each_run_and_counts_nothing(mlp_path: Path) -> None:
    with engine.load(mlp_path) as model:
        before = model.stats()
        times = model.time_runs(np.ones((5, 32), np.float32), 7)
        assert len(times) == 7 and all(t > 0 for t in times)
        after = model.stats()
        assert after.requests == before.requests and after.batches == before.batches


def test_time_runs_refuses_bad_arguments_and_a_closed_model(mlp_path: Path) -> None:
    model = engine.load(mlp_path)
    with pytest.raises(InvalidConfigError, match=r"runs must be in \[1, 1000000\]; was 0"):
        model.time_runs(np.ones((1, 32), np.float32), 0)
    with pytest.raises(InvalidConfigError, match="was 2147483648"):
        model.time_runs(np.ones((1, 32), np.float32), 2**31)
    with pytest.raises(TypeError, match="runs must be an int"):
        model.time_runs(np.ones((1, 32), np.float32), 2.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="float32"):
        model.time_runs(np.ones((1, 32), np.float64), 1)
    model.close()
    with pytest.raises(UnavailableError):
        model.time_runs(np.ones((1, 32), np.float32), 1)


def test_time_runs_refuses_a_model_whose_instances_are_all_busy(tmp_path: Path) -> None:
    path = factories.slow_mlp(tmp_path / "slow.onnx")
    with engine.load(path, config=engine.ModelConfig(instances=1)) as model:
        rows = np.ones((64, 512), np.float32)
        for _ in range(20):  # a run takes tens of ms; time_runs must come while it runs
            future = model.submit(rows)
            try:
                model.time_runs(rows[:1], 1)
            except UnavailableError as exc:
                assert "every instance is busy" in str(exc)
                future.result()
                return
            future.result()
        pytest.fail("time_runs never found the only instance busy")


def test_sweep_times_every_size_with_the_sample_rows_repeated(mlp_path: Path) -> None:
    with engine.load(mlp_path) as model:
        sample = {"x": np.arange(3 * 32, dtype=np.float32).reshape(3, 32)}
        seen: list[int] = []
        timings = sweep(model, sample, 7, passes=2, runs=2, progress=seen.append)
    assert [t.rows for t in timings] == list(range(1, 8))
    assert all(t.us > 0 and t.rows_per_s > 0 for t in timings)
    assert seen == [1, 2]


def test_a_slow_models_runs_are_timed_in_short_calls_so_that_ctrl_c_is_seen(
    mlp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python handles Ctrl-C only between calls into the core: where one call of ``runs`` runs
    would outlast CALL_S, the sweep makes several, and still times runs + 1 per size."""
    with engine.load(mlp_path) as model:
        calls: list[int] = []
        time_runs = model.time_runs

        def counted(inputs: object, runs: int) -> list[float]:
            calls.append(runs)
            return time_runs(inputs, runs)

        monkeypatch.setattr(model, "time_runs", counted)
        sample = {"x": np.ones((2, 32), np.float32)}
        sweep(model, sample, 3, passes=1, runs=4)
        assert calls == [1, 1, 1, 5, 5, 5]  # the largest batch's three, then one per size
        calls.clear()
        monkeypatch.setattr(engine.tuning, "CALL_S", 1e-9)  # every run outlasts it
        timings = sweep(model, sample, 3, passes=1, runs=4)
    assert calls == [1] * 18
    assert [t.rows for t in timings] == [1, 2, 3] and all(t.us > 0 for t in timings)


def test_sweep_refuses_a_sample_that_does_not_fit_the_model(mlp_path: Path) -> None:
    with engine.load(mlp_path) as model:
        with pytest.raises(InvalidInputError, match=r"holds \['y'\]; the model's inputs are"):
            sweep(model, {"y": np.ones((1, 32), np.float32)}, 2)
        with pytest.raises(InvalidInputError, match="no rows"):
            sweep(model, {"x": np.ones((0, 32), np.float32)}, 2)
        with pytest.raises(InvalidInputError,
                           match=r"'x' has shape \(1, 5\); the model takes \[-1, 32\]"):
            sweep(model, {"x": np.ones((1, 5), np.float32)}, 2, passes=1, runs=1)
        with pytest.raises(InvalidInputError, match=r"a 1-D array is 32 rows of one value"):
            sweep(model, {"x": np.ones(32, np.float32)}, 2, passes=1, runs=1)
        with pytest.raises(InvalidConfigError, match="max_batch_size must be an int >= 1"):
            sweep(model, {"x": np.ones((1, 32), np.float32)}, 0)


def test_synthetic_rows_are_made_for_numeric_inputs_only(tmp_path: Path) -> None:
    with engine.load(factories.multi_io(tmp_path / "multi.onnx")) as model:
        row = synthetic_row(model)
        assert {name: (a.shape, a.dtype) for name, a in row.items()} == {
            "a": ((1, 4), np.float32), "b": ((1, 4), np.float32), "k": ((1, 1), np.int64)}
        assert tune(model, max_batch_size=3, passes=1, runs=1).preferred.rows == 1
    with (engine.load(factories.string_lookup(tmp_path / "words.onnx")) as model,
          pytest.raises(InvalidInputError, match="input 'word' takes string.*--sample")):
        synthetic_row(model)
    with (engine.load(factories.fixed_shape(tmp_path / "fixed.onnx")) as model,
          pytest.raises(InvalidInputError, match="no dynamic first dimension")):
        synthetic_row(model)


def test_tune_command_prints_the_sweep_and_the_recommendation(
        mlp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", str(mlp_path), "--max-batch-size", "6", "--passes", "1",
                 "--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert "preferred_batch_sizes=(" in out and "for 6 requests in flight" in out
    assert main(["tune", str(mlp_path), "--max-batch-size", "6", "--in-flight", "4",
                 "--passes", "1", "--runs", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [t["rows"] for t in result["timings"]] == [1, 2, 3, 4, 5, 6]
    assert result["in_flight"] == 4 and result["preferred"]["rows"] <= 2
    assert result["preferred_batch_sizes"] == [result["preferred"]["rows"]]


def test_tune_command_reads_a_sample_and_names_a_bad_one(
        tmp_path: Path, mlp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    npy = tmp_path / "rows.npy"
    np.save(npy, np.ones((2, 32), np.float32))
    args = ["--max-batch-size", "2", "--passes", "1", "--runs", "1"]
    assert main(["tune", str(mlp_path), "--sample", str(npy), *args]) == 0
    multi = factories.multi_io(tmp_path / "multi.onnx")
    assert main(["tune", str(multi), "--sample", str(npy), *args]) == 1
    assert "holds one array, but the model has 3 inputs" in capsys.readouterr().err
    npz = tmp_path / "rows.npz"
    np.savez(npz, wrong=np.ones((2, 32), np.float32))
    assert main(["tune", str(mlp_path), "--sample", str(npz), *args]) == 1
    assert "the sample holds ['wrong']" in capsys.readouterr().err
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert main(["tune", str(mlp_path), "--sample", str(tmp_path / "bad.npz"), *args]) == 1
    assert "is not a readable numpy file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", str(mlp_path), "--max-batch-size", "0"])
    assert exit_info.value.code == 2


def test_time_runs_and_tune_keep_to_the_models_own_limits(mlp_path: Path) -> None:
    config = engine.ModelConfig(max_batch_size=4, instances=2)
    with engine.load(mlp_path, config=config) as model:
        with pytest.raises(InvalidInputError, match="request has 5 rows; max_batch_size is 4"):
            model.time_runs(np.ones((5, 32), np.float32), 1)
        with pytest.raises(InvalidConfigError, match="over the model's own max_batch_size 4"):
            tune(model, max_batch_size=5)
        tuning = tune(model, passes=1, runs=1)
        assert tuning.max_batch_size == 4 and tuning.instances == 2
        assert tuning.preferred.rows == 1  # 4 in flight over 2 instances: 4 // 3 rows
    with engine.load(mlp_path, config=engine.ModelConfig(batching=False)) as model, \
            pytest.raises(InvalidInputError, match="batching off"):
        tune(model)


def test_a_sweep_that_would_not_fit_in_memory_or_time_is_refused_before_it_starts(
        mlp_path: Path) -> None:
    config = engine.ModelConfig(max_batch_size=10_000_000)
    with engine.load(mlp_path, config=config) as model:
        with pytest.raises(InvalidConfigError, match="MiB, over the sweep's limit"):
            sweep(model, synthetic_row(model), 10_000_000)
        with pytest.raises(InvalidConfigError, match="would take about .* minutes"):
            sweep(model, synthetic_row(model), 4096, passes=100, runs=1000)


def test_tune_command_on_a_registered_model_uses_its_config(
        tmp_path: Path, mlp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"max_batch_size": 6, "instances": 2}))
    assert main(["models", "register", "mlp", str(mlp_path), "--config", str(config),
                 "--home", str(home)]) == 0
    capsys.readouterr()
    args = ["--passes", "1", "--runs", "1", "--home", str(home)]
    assert main(["tune", "mlp:1", "--json", *args]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["max_batch_size"] == 6 and result["instances"] == 2
    assert result["preferred"]["rows"] <= 2 and result["passes"] == 1
    assert main(["tune", "mlp", "--max-batch-size", "7", *args]) == 1
    assert "over the model's own max_batch_size 6" in capsys.readouterr().err
    assert main(["tune", "mlp", "--instances", "3", *args]) == 1
    assert "--instances is for a model file" in capsys.readouterr().err


def test_tune_command_prints_plain_counts_and_ort_default_threads(
        mlp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", str(mlp_path), "--max-batch-size", "2", "--in-flight", "1",
                 "--intra-op-threads", "0", "--passes", "1", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "for 1 request in flight on 1 instance: preferred_batch_sizes=(1,)" in out
    assert "one more batch is answered" not in out  # nothing else is in flight
    assert "ONNX Runtime's default threads (one per core)" in out
    assert "the lowest of 1 median of 1 run;" in out


def test_tune_command_names_sample_files_it_cannot_use(
        tmp_path: Path, mlp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--max-batch-size", "2", "--passes", "1", "--runs", "1"]
    assert main(["tune", str(mlp_path), "--sample", str(tmp_path / "none.npy"), *args]) == 1
    assert "sample file" in capsys.readouterr().err
    words = tmp_path / "words.npy"
    np.save(words, np.array([["a"], ["b"]], dtype=object), allow_pickle=True)
    assert main(["tune", str(mlp_path), "--sample", str(words), *args]) == 1
    assert "holds an object array" in capsys.readouterr().err


def test_a_model_with_transforms_is_tuned_on_its_raw_columns(tmp_path: Path) -> None:
    from engine.transforms import fit

    columns = {"age": np.linspace(20, 60, 8), "city": np.array(["a", "b"] * 4, dtype=object)}
    spec = fit(columns, {"age": [{"op": "standardize"}],
                         "city": [{"op": "vocabulary", "num_oov_buckets": 1,
                                   "encoding": "onehot"}]})
    path = factories.features_identity(tmp_path / "identity.onnx", spec.width)
    config = engine.ModelConfig(transforms=spec.to_dict(), max_batch_size=8)
    with engine.load(path, config=config) as model:
        with pytest.raises(InvalidInputError, match="input 'city' takes strings"):
            synthetic_row(model)
        sample = {"age": columns["age"].reshape(-1, 1),  # [rows, 1], as predict takes it
                  "city": columns["city"].astype(str)}
        tuning = tune(model, sample, passes=1, runs=1)
    assert tuning.max_batch_size == 8 and len(tuning.timings) == 8
