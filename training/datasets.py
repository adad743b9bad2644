"""Tabular datasets for training: shipped with scikit-learn or synthetic with a fixed seed.

A :class:`TabularDataset` is a pandas DataFrame of features (numeric columns as float64,
categorical columns as Python ``str`` objects), a target array, and which columns are which.

Numeric values are rounded to float32 precision (kept in float64 columns): exported models take
float32 inputs, so training on exactly the values serving will see means a tree's split
thresholds route every row the same way in scikit-learn and in the engine. Trained on raw
float64 values, a row whose value float32 rounding moves across a threshold would differ.
Nothing here downloads anything: the data is either generated from a seed or read from the
files scikit-learn ships in its wheel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "DATASETS",
    "TabularDataset",
    "Task",
    "breast_cancer",
    "diabetes",
    "load_dataset",
    "split",
    "synthetic_customers",
    "synthetic_house_prices",
]

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class TabularDataset:
    """Features, target and column roles. ``numeric + categorical`` lists every column."""

    name: str
    task: Task
    features: pd.DataFrame
    target: np.ndarray
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    def __post_init__(self) -> None:
        for column in self.numeric:
            values = self.features[column].to_numpy(dtype=np.float64, na_value=np.nan)
            self.features[column] = values.astype(np.float32).astype(np.float64)
        declared = list(self.numeric) + list(self.categorical)
        if sorted(declared) != sorted(self.features.columns):
            raise ValueError(
                f"dataset {self.name!r}: numeric + categorical columns {declared} "
                f"do not match the frame's columns {list(self.features.columns)}"
            )
        if len(self.target) != len(self.features):
            raise ValueError(
                f"dataset {self.name!r}: {len(self.target)} targets for {len(self.features)} rows"
            )

    @property
    def columns(self) -> list[str]:
        return list(self.features.columns)

    def subset(self, rows: np.ndarray) -> TabularDataset:
        return TabularDataset(
            self.name,
            self.task,
            self.features.iloc[rows].reset_index(drop=True),
            self.target[rows],
            self.numeric,
            self.categorical,
        )


def synthetic_customers(n_rows: int = 2000, seed: int = 0) -> TabularDataset:
    """Binary churn-like classification: 4 numeric columns (one with ~3% NaN) and 3 categorical.

    The label depends on numeric and categorical columns alike, so a model that ignored the
    categoricals would score visibly worse.
    """
    rng = np.random.default_rng(seed)
    age = rng.normal(42.0, 12.0, n_rows).clip(18, 90)
    income = rng.lognormal(10.5, 0.6, n_rows)
    tenure = rng.integers(0, 120, n_rows).astype(np.float64)
    balance = rng.normal(1500.0, 900.0, n_rows)
    balance[rng.random(n_rows) < 0.03] = np.nan
    region = rng.choice(["north", "south", "east", "west"], n_rows, p=[0.4, 0.3, 0.2, 0.1])
    plan = rng.choice(["basic", "plus", "premium"], n_rows, p=[0.5, 0.35, 0.15])
    channel = rng.choice(["web", "store", "phone", "partner", "kiosk"], n_rows)
    logit = (
        -0.04 * (age - 42)
        + 0.8 * (np.log(income) - 10.5)
        - 0.02 * (tenure - 60)
        + np.where(plan == "basic", 0.9, np.where(plan == "plus", 0.0, -1.0))
        + np.where(region == "west", 1.0, 0.0)
        + np.where(channel == "phone", 0.6, 0.0)
        + rng.normal(0.0, 0.7, n_rows)
    )
    frame = pd.DataFrame(
        {
            "age": age,
            "income": income,
            "tenure_months": tenure,
            "balance": balance,
            "region": _strings(region),
            "plan": _strings(plan),
            "channel": _strings(channel),
        }
    )
    target = (logit > 0).astype(np.int64)
    return TabularDataset(
        "synthetic_customers",
        "classification",
        frame,
        target,
        ("age", "income", "tenure_months", "balance"),
        ("region", "plan", "channel"),
    )


def synthetic_house_prices(n_rows: int = 2000, seed: int = 0) -> TabularDataset:
    """Regression: a price (in thousands) from 3 numeric columns and 2 categorical ones."""
    rng = np.random.default_rng(seed)
    area = rng.normal(110.0, 35.0, n_rows).clip(20, 400)
    rooms = rng.integers(1, 7, n_rows).astype(np.float64)
    age = rng.uniform(0, 80, n_rows)
    district = rng.choice(["centre", "inner", "suburb", "rural"], n_rows, p=[0.15, 0.3, 0.4, 0.15])
    heating = rng.choice(["gas", "electric", "heat_pump"], n_rows)
    base = np.select(
        [district == "centre", district == "inner", district == "suburb"], [6.0, 4.5, 3.0], 2.0
    )
    price = (
        base * area
        + 15.0 * rooms
        - 1.2 * age
        + np.where(heating == "heat_pump", 25.0, 0.0)
        + rng.normal(0.0, 30.0, n_rows)
    )
    frame = pd.DataFrame(
        {
            "area_m2": area,
            "rooms": rooms,
            "building_age": age,
            "district": _strings(district),
            "heating": _strings(heating),
        }
    )
    return TabularDataset(
        "synthetic_house_prices",
        "regression",
        frame,
        price,
        ("area_m2", "rooms", "building_age"),
        ("district", "heating"),
    )


def breast_cancer(n_rows: int | None = None, seed: int = 0) -> TabularDataset:
    """scikit-learn's shipped breast cancer data (569 rows, 30 numeric columns, binary)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    data = TabularDataset(
        "breast_cancer",
        "classification",
        bunch.data.astype(np.float64),
        bunch.target.to_numpy(np.int64),
        tuple(bunch.data.columns),
        (),
    )
    return _first_rows(data, n_rows, seed)


def diabetes(n_rows: int | None = None, seed: int = 0) -> TabularDataset:
    """scikit-learn's shipped diabetes data (442 rows, 10 numeric columns, regression)."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(as_frame=True)
    data = TabularDataset(
        "diabetes",
        "regression",
        bunch.data.astype(np.float64),
        bunch.target.to_numpy(np.float64),
        tuple(bunch.data.columns),
        (),
    )
    return _first_rows(data, n_rows, seed)


DATASETS = {
    "synthetic_customers": synthetic_customers,
    "synthetic_house_prices": synthetic_house_prices,
    "breast_cancer": breast_cancer,
    "diabetes": diabetes,
}


def load_dataset(name: str, n_rows: int | None = None, seed: int = 0) -> TabularDataset:
    """A dataset by name; ``n_rows`` None means the dataset's default size."""
    try:
        make = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None
    return make(n_rows, seed) if n_rows is not None else make(seed=seed)


def split(
    data: TabularDataset, valid_fraction: float = 0.25, seed: int = 0
) -> tuple[TabularDataset, TabularDataset]:
    """A seeded train/validation split, stratified by class for classification."""
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1); was {valid_fraction!r}")
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(data.target))
    stratify = data.target if data.task == "classification" else None
    if stratify is not None:
        # Said here in the caller's terms: scikit-learn words it as its own test_size.
        classes = len(np.unique(stratify))
        held_out = math.ceil(valid_fraction * len(rows))
        if min(held_out, len(rows) - held_out) < classes:
            raise ValueError(
                f"a validation share of {valid_fraction:g} of {len(rows)} rows holds out "
                f"{held_out} of them and trains on the other {len(rows) - held_out}; each part "
                f"needs a row of each of the {classes} classes: use more rows or another share"
            )
    train_rows, valid_rows = train_test_split(
        rows, test_size=valid_fraction, random_state=seed, stratify=stratify
    )
    return data.subset(np.sort(train_rows)), data.subset(np.sort(valid_rows))


def _strings(values: np.ndarray) -> np.ndarray:
    # Categoricals as object arrays of str: the dtype skl2onnx maps to a STRING input and the
    # engine sends as a string tensor.
    return values.astype(object)


def _first_rows(data: TabularDataset, n_rows: int | None, seed: int) -> TabularDataset:
    if n_rows is None or n_rows >= len(data.target):
        return data
    rows = np.sort(np.random.default_rng(seed).choice(len(data.target), n_rows, replace=False))
    return data.subset(rows)
