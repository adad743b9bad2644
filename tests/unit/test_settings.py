from __future__ import annotations

from pathlib import Path

import pytest

from engine.settings import Settings, get_settings


def test_defaults_when_nothing_is_set() -> None:
    settings = Settings.from_env({})
    assert settings.engine_home == Path("~/.engine").expanduser()
    assert settings.registry_url is None


def test_reads_each_variable(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"ENGINE_HOME": str(tmp_path), "ENGINE_REGISTRY_URL": "postgresql://h/db"}
    )
    assert settings.engine_home == tmp_path
    assert settings.registry_url == "postgresql://h/db"


def test_empty_values_count_as_unset() -> None:
    settings = Settings.from_env({"ENGINE_HOME": "  ", "ENGINE_REGISTRY_URL": ""})
    assert settings.engine_home == Path("~/.engine").expanduser()
    assert settings.registry_url is None


def test_home_expands_user() -> None:
    assert Settings.from_env({"ENGINE_HOME": "~/x"}).engine_home == Path("~/x").expanduser()


def test_settings_are_frozen_and_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    try:
        monkeypatch.setenv("ENGINE_HOME", "/first")
        first = get_settings()
        monkeypatch.setenv("ENGINE_HOME", "/second")
        assert get_settings() is first
        assert first.engine_home == Path("/first")
        with pytest.raises(AttributeError):
            first.engine_home = Path("/x")  # type: ignore[misc]
    finally:
        get_settings.cache_clear()
