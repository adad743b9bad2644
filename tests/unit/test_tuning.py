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
    with pytest.raises(InvalidConfigError, match="runs must be >= 1; was 0"):
        model.time_runs(np.ones((1, 32), np.float32), 0)
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


def test_sweep_refuses_a_sample_that_does_not_fit_the_model(mlp_path: Path) -> None:
    with engine.load(mlp_path) as model:
        with pytest.raises(InvalidInputError, match=r"holds \['y'\]; the model's inputs are"):
            sweep(model, {"y": np.ones((1, 32), np.float32)}, 2)
        with pytest.raises(InvalidInputError, match="no rows"):
            sweep(model, {"x": np.ones((0, 32), np.float32)}, 2)
        with pytest.raises(InvalidInputError, match="expected"):
            sweep(model, {"x": np.ones((1, 5), np.float32)}, 2, passes=1, runs=1)
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
