"""Unit tests never see a developer's registry: ENGINE_HOME, ENGINE_REGISTRY_URL and
ENGINE_ARTIFACTS_URL are unset and the cached settings are re-read around every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.settings import get_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("ENGINE_REGISTRY_URL", raising=False)
    monkeypatch.delenv("ENGINE_HOME", raising=False)
    monkeypatch.delenv("ENGINE_ARTIFACTS_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
