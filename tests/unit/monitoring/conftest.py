"""Fixtures of the monitoring tests (the scenario itself is in monitoring_scenario.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from monitoring_scenario import COLUMNS, OUTPUTS, SIGNATURE, Signature, draw, make_profile

from engine.monitoring.reference import DriftReference, drift_reference


@pytest.fixture(scope="session")
def training() -> pd.DataFrame:
    return draw(np.random.default_rng(1234), 20_000)


@pytest.fixture(scope="session")
def profile(training: pd.DataFrame) -> dict[str, Any]:
    return make_profile(training)


@pytest.fixture(scope="session")
def reference(profile: dict[str, Any]) -> DriftReference:
    return drift_reference(profile, Signature(SIGNATURE, OUTPUTS), columns=COLUMNS)
