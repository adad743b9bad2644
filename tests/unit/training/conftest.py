"""Small datasets and a clean registry environment for the training tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine.training.datasets import (
    TabularDataset,
    split,
    synthetic_customers,
    synthetic_house_prices,
)

from engine.settings import get_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("ENGINE_REGISTRY_URL", raising=False)
    monkeypatch.delenv("ENGINE_HOME", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def customers() -> tuple[TabularDataset, TabularDataset]:
    """(train, validation) of the classification data: numeric + categorical columns."""
    return split(synthetic_customers(400, seed=1), 0.25, seed=1)


@pytest.fixture(scope="session")
def houses() -> tuple[TabularDataset, TabularDataset]:
    """(train, validation) of the regression data: numeric + categorical columns."""
    return split(synthetic_house_prices(400, seed=2), 0.25, seed=2)
