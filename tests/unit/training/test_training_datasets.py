from __future__ import annotations

import numpy as np
import pytest
from engine.training.datasets import (
    breast_cancer,
    diabetes,
    load_dataset,
    split,
    synthetic_customers,
)
from engine.training.lineage import fingerprint_dataset


def test_synthetic_data_is_seeded_and_has_both_column_kinds() -> None:
    a, b = synthetic_customers(100, seed=3), synthetic_customers(100, seed=3)
    assert a.features.equals(b.features) and np.array_equal(a.target, b.target)
    assert a.categorical and a.numeric
    assert fingerprint_dataset(a) == fingerprint_dataset(b)
    assert fingerprint_dataset(a) != fingerprint_dataset(synthetic_customers(100, seed=4))


def test_split_is_seeded_and_stratified() -> None:
    data = synthetic_customers(400, seed=0)
    train, valid = split(data, 0.25, seed=5)
    again, _ = split(data, 0.25, seed=5)
    assert len(valid.target) == 100 and len(train.target) == 300
    assert train.features.equals(again.features)
    assert abs(train.target.mean() - valid.target.mean()) < 0.02


def test_shipped_datasets_load_without_network() -> None:
    assert breast_cancer().task == "classification" and len(breast_cancer().target) == 569
    assert diabetes(100).task == "regression" and len(diabetes(100).target) == 100


def test_unknown_dataset_and_bad_fraction_are_named() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        load_dataset("nope")
    with pytest.raises(ValueError, match=r"valid_fraction must be in \(0, 1\); was 1.5"):
        split(synthetic_customers(20), 1.5)
