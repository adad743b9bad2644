"""engine.training.examples.run_example registers a version whose lineage, metrics and
parameters are present and correct."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine.training.datasets import load_dataset
from engine.training.examples import TrainRequest, run_example
from engine.training.lineage import fingerprint_dataset

from engine.registry import Registry
from engine.registry.fingerprint import code_revision


def test_registered_version_carries_lineage_metrics_and_profile(tmp_path) -> None:
    home = tmp_path / "home"
    lines: list[str] = []
    outcome = run_example(
        TrainRequest(
            "tabular-demo",
            family="linear",
            rows=300,
            home=home,
            alias="production",
            out_dir=tmp_path / "out",
        ),
        lines.append,
    )
    with Registry(home=home) as registry:
        version = registry.get("tabular-demo@production")
    assert version.version == 1 and version.ref == "tabular-demo:1"
    expected_data = fingerprint_dataset(load_dataset("synthetic_customers", 300, 0))
    assert version.lineage.data_fingerprint == expected_data
    repo = Path(__file__).resolve().parents[3] / "training"
    assert version.lineage.code_revision == code_revision(repo)
    assert version.lineage.code_revision is not None  # the tests run from a git checkout
    assert version.lineage.transform_spec is None
    assert {
        "accuracy",
        "auc",
        "log_loss",
        "parity_max_abs_error",
        "parity_max_rel_error",
        "parity_rows",
    } <= set(version.metrics)
    assert version.metrics["parity_rows"] == 75.0
    assert version.metrics["accuracy"] == pytest.approx(outcome.metrics["accuracy"])
    assert version.params["family"] == "linear" and version.params["seed"] == 0
    assert version.params["parity"]["passed"] is True
    assert set(version.params["reference_profile"]["features"]) == {
        "age",
        "income",
        "tenure_months",
        "balance",
        "region",
        "plan",
        "channel",
    }
    outputs = version.params["reference_profile"]["outputs"]
    assert set(outputs) == {"label", "probabilities[0]", "probabilities[1]"}
    assert outputs["label"]["kind"] == "categorical"
    assert set(outputs["label"]["categories"]) == {"0", "1"}
    assert version.tags == {
        "example": "tabular-demo",
        "family": "linear",
        "framework": "sklearn",
        "task": "classification",
    }
    assert (tmp_path / "out" / "model.onnx").is_file()
    assert (tmp_path / "out" / "profile.json").is_file()
    assert any(line.startswith("exported to") for line in lines)


def test_same_seed_same_data_fingerprint_new_seed_new_one(tmp_path) -> None:
    a = run_example(TrainRequest("diabetes-demo", rows=120, register=False, out_dir=tmp_path))
    b = run_example(TrainRequest("diabetes-demo", rows=120, register=False, out_dir=tmp_path))
    c = run_example(
        TrainRequest("diabetes-demo", rows=120, seed=1, register=False, out_dir=tmp_path)
    )
    assert a.lineage["data_fingerprint"] == b.lineage["data_fingerprint"]
    assert a.lineage["data_fingerprint"] != c.lineage["data_fingerprint"]
    assert a.version is None and set(a.metrics) == {"rmse", "mae", "r2"}


def test_a_run_that_keeps_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="neither registers nor has an out_dir"):
        run_example(TrainRequest("tabular-demo", register=False))
