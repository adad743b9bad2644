"""A small tabular scenario shared by the monitoring tests: training data, its profile, the
model signature, and live batches drawn from the same (or a shifted) distribution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from engine.training.profile import numeric_profile, profile_frame

from engine.signature import TensorSpec

REGIONS = ["north", "south", "east", "west"]
REGION_P = [0.4, 0.3, 0.2, 0.1]
# Signature: three numeric features in one wide tensor, two string features, one output.
SIGNATURE = (
    TensorSpec("x", "float32", (-1, 3)),
    TensorSpec("region", "string", (-1, 1)),
    TensorSpec("plan", "string", (-1,)),
)
OUTPUTS = (TensorSpec("score", "float32", (-1, 1)),)
COLUMNS = {"a": ("x", 0), "b": ("x", 1), "c": ("x", 2)}


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def draw(
    rng: np.random.Generator, n: int, *, shift_b: float = 0.0, region_p: list[float] | None = None
) -> pd.DataFrame:
    a = rng.normal(0.0, 1.0, n)
    b = rng.normal(5.0, 2.0, n) + shift_b
    c = rng.exponential(1.0, n)
    frame = pd.DataFrame(
        {
            "a": a,
            "b": b,
            "c": c,
            "region": rng.choice(REGIONS, n, p=region_p or REGION_P),
            "plan": rng.choice(["free", "pro"], n, p=[0.7, 0.3]),
        }
    )
    frame["score"] = 1 / (1 + np.exp(-(0.5 * a - 0.2 * (b - 5.0) + 0.1 * c)))
    return frame


def tensors(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A live batch as the core sees it: inputs and outputs by tensor name."""
    return {
        "x": frame[["a", "b", "c"]].to_numpy(np.float32),
        "region": frame["region"].to_numpy(object).reshape(-1, 1),
        "plan": frame["plan"].to_numpy(object),
        "score": frame["score"].to_numpy(np.float32).reshape(-1, 1),
    }


def make_profile(frame: pd.DataFrame) -> dict[str, Any]:
    profile = profile_frame(frame, ["a", "b", "c"], ["region", "plan"], bins=10)
    profile["outputs"] = {"score": numeric_profile(frame["score"].to_numpy(), bins=10)}
    return profile
