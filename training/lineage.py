"""Lineage of a trained model and its registration in the engine's registry.

The lineage follows :class:`engine.registry.Lineage`: ``data_fingerprint`` (``sha256:<hex>``),
``code_revision`` (the git commit of the training code, ``+dirty`` when it has uncommitted
changes, None outside a git checkout), ``parent`` (given, or by default the newest version of
the name when this one registers: see :func:`register_model`), ``transform_spec`` and
``created_by``.
``transform_spec`` stays None: the preprocessing is inside the exported graph (recorded in the
version's parameters) rather than an ``engine.transforms`` spec applied by the server.
"""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from engine.training.datasets import TabularDataset

__all__ = [
    "check_parent",
    "fingerprint_dataset",
    "make_lineage",
    "register_model",
    "training_code_revision",
]


def fingerprint_dataset(data: TabularDataset) -> str:
    """``sha256:<hex>`` of a dataset's columns and target, independent of file formats.

    Per column in order: its name, then numeric values as float64 little-endian bytes, or
    string values as UTF-8 separated by ``\\x1f``; then the target as float64 bytes. Equal
    data gives an equal fingerprint whatever pandas or pyarrow version produced it.
    """
    digest = hashlib.sha256()
    for column in data.columns:
        digest.update(b"\x1ecolumn\x1f" + column.encode())
        values = data.features[column]
        if column in data.numeric:
            array = values.to_numpy(dtype=np.float64, na_value=np.nan)
            digest.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
        else:
            digest.update("\x1f".join("" if v is None else str(v) for v in values).encode())
    digest.update(b"\x1etarget\x1f")
    digest.update(np.ascontiguousarray(data.target, dtype="<f8").tobytes())
    return f"sha256:{digest.hexdigest()}"


def training_code_revision() -> str | None:
    """The git commit of this training code's checkout; None in an installed wheel."""
    from engine.registry.fingerprint import code_revision

    return code_revision(Path(__file__).resolve().parent)


def make_lineage(
    data_fingerprint: str, *, parent: str | None = None, created_by: str | None = None
) -> dict[str, Any]:
    return {
        "data_fingerprint": data_fingerprint,
        "code_revision": training_code_revision(),
        "parent": parent,
        "transform_spec": None,
        "created_by": created_by,
    }


def check_parent(
    parent: str,
    *,
    home: str | Path | None = None,
    registry_url: str | None = None,
    artifacts_url: str | None = None,
    registry: Any = None,
) -> None:
    """Raise ModelNotFoundError unless ``parent`` (``name:VERSION``) is registered: checked
    before training, so a typo costs no training run (the registry checks again at the end).
    ``registry``: an open ``Registry`` to ask, instead of opening one."""
    with _opened(registry, home, registry_url, artifacts_url) as opened:
        opened.get(parent)


def register_model(
    path: str | Path,
    name: str,
    *,
    metrics: dict[str, float],
    params: dict[str, Any],
    tags: dict[str, str],
    lineage: dict[str, Any],
    alias: str | None = None,
    description: str | None = None,
    home: str | Path | None = None,
    registry_url: str | None = None,
    artifacts_url: str | None = None,
    inherit_parent: bool = False,
    registry: Any = None,
) -> Any:
    """Register ``path`` as the next version of ``name``; returns the ``ModelVersion``.

    With ``inherit_parent`` and no ``lineage["parent"]``, the parent is the newest version of
    ``name`` when this one registers, archived ones included (a retrain follows the training
    before it, whether or not that one was kept); none when ``name`` is new. The registry
    chooses it in the transaction that numbers the new version (``Registry.register``'s
    ``inherit_parent``), so two retrains registering at once get a chain, N+1 then N+2, not
    the same parent twice. ``registry``: an open ``Registry`` to register in, instead of
    opening one from ``home``, ``registry_url`` and ``artifacts_url``.
    """
    with _opened(registry, home, registry_url, artifacts_url) as opened:
        return opened.register(
            name,
            path,
            metrics=metrics,
            params=params,
            tags=tags,
            lineage=lineage,
            alias=alias,
            description=description,
            inherit_parent=inherit_parent,
        )


def _opened(
    registry: Any, home: str | Path | None, registry_url: str | None, artifacts_url: str | None
) -> Any:
    """A context manager giving ``registry`` (left open), or a Registry it opens and closes."""
    from engine.registry import Registry

    if registry is not None:
        return nullcontext(registry)
    return Registry(home=home, url=registry_url, artifacts_url=artifacts_url)
