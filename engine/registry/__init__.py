"""The model registry: versions, aliases, lineage and content-addressed artifacts.

``Registry`` is the Python API; :func:`resolve` turns a reference (``name``, ``name:3``,
``name@production``) into a verified artifact path plus config, for ``engine.load``.
"""

from __future__ import annotations

from engine.registry.fingerprint import code_revision, fingerprint_array, fingerprint_file
from engine.registry.records import (
    Lineage,
    LineageChain,
    ModelSummary,
    ModelVersion,
    NewVersion,
    OrphanRow,
    ResolvedModel,
    UnreadableJSON,
)
from engine.registry.registry import Registry, resolve, validate_new_alias

__all__ = [
    "Lineage",
    "LineageChain",
    "ModelSummary",
    "ModelVersion",
    "NewVersion",
    "OrphanRow",
    "Registry",
    "ResolvedModel",
    "UnreadableJSON",
    "code_revision",
    "fingerprint_array",
    "fingerprint_file",
    "resolve",
    "validate_new_alias",
]
