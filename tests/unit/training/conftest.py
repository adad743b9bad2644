"""Small datasets for the training tests (tests/unit/conftest.py cleans the environment)."""

from __future__ import annotations

import pytest
from engine.training.datasets import (
    TabularDataset,
    split,
    synthetic_customers,
    synthetic_house_prices,
)


@pytest.fixture(scope="session")
def customers() -> tuple[TabularDataset, TabularDataset]:
    """(train, validation) of the classification data: numeric + categorical columns."""
    return split(synthetic_customers(400, seed=1), 0.25, seed=1)


@pytest.fixture(scope="session")
def houses() -> tuple[TabularDataset, TabularDataset]:
    """(train, validation) of the regression data: numeric + categorical columns."""
    return split(synthetic_house_prices(400, seed=2), 0.25, seed=2)
