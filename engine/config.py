"""Typed, validated model configuration: one :class:`ModelConfig` per model version.

It holds everything that decides how a model runs: execution (providers, threads, instances)
and dynamic batching (sizes, queue delay and bound, timeouts). It is frozen and validated on
construction; an invalid value raises :class:`~engine.errors.InvalidConfigError` naming the
field and the bad value. ``to_dict``/``from_dict`` give the JSON form stored in the registry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from engine.errors import InvalidConfigError
from engine.signature import TensorSpec

__all__ = ["INSTANCE_MODES", "OPTIMIZATION_LEVELS", "PROVIDERS", "ModelConfig"]

PROVIDERS = ("cpu", "cuda")
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
# "sessions": one ORT session per instance. "shared": one session, `instances` concurrent runs.
INSTANCE_MODES = ("sessions", "shared")


@dataclass(frozen=True)
class ModelConfig:
    """How one model version is executed and batched.

    ``batching=None`` means automatic: on when the model's first dimension is dynamic on every
    input and output. ``max_queue_delay_us=0`` never waits: requests that arrive while all
    instances are busy form the next batch. ``default_timeout_us=0`` means no deadline.
    """

    # Execution.
    providers: tuple[str, ...] = ("cpu",)
    device_id: int = 0
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    allow_spinning: bool = False
    graph_optimization_level: str = "all"
    instances: int = 1
    instance_mode: str = "sessions"
    # Dynamic batching.
    batching: bool | None = None
    max_batch_size: int = 64
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 0
    max_queue_size: int = 1024
    default_timeout_us: int = 0
    # Optional declared signature (from config.pbtxt); checked against the model on load.
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    # Optional feature-transform spec (engine.transforms JSON form), run in the core on each
    # batch; the model then takes the spec's raw columns instead of `transform_target` (a
    # float32 [rows, width] input; "" = the model's only input).
    transforms: dict[str, Any] | None = field(default=None, compare=False)
    transform_target: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "providers", tuple(self.providers))
        object.__setattr__(self, "preferred_batch_sizes", tuple(self.preferred_batch_sizes))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if not self.providers:
            _bad("providers must name at least one provider", self.providers)
        for p in self.providers:
            if p not in PROVIDERS:
                _bad(f"providers must be among {PROVIDERS}", self.providers)
        if len(set(self.providers)) != len(self.providers):
            _bad("providers must not repeat", self.providers)
        _at_least("device_id", self.device_id, 0)
        _at_least("intra_op_threads", self.intra_op_threads, 0)
        _at_least("inter_op_threads", self.inter_op_threads, 0)
        if self.graph_optimization_level not in OPTIMIZATION_LEVELS:
            _bad(f"graph_optimization_level must be one of {OPTIMIZATION_LEVELS}",
                 self.graph_optimization_level)
        _at_least("instances", self.instances, 1)
        if self.instance_mode not in INSTANCE_MODES:
            _bad(f"instance_mode must be one of {INSTANCE_MODES}", self.instance_mode)
        _at_least("max_batch_size", self.max_batch_size, 1)
        for size in self.preferred_batch_sizes:
            if not isinstance(size, int) or not 1 <= size <= self.max_batch_size:
                _bad(f"preferred_batch_sizes must be ints in [1, max_batch_size="
                     f"{self.max_batch_size}]", self.preferred_batch_sizes)
        _at_least("max_queue_delay_us", self.max_queue_delay_us, 0)
        _at_least("max_queue_size", self.max_queue_size, 1)
        _at_least("default_timeout_us", self.default_timeout_us, 0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["providers"] = list(self.providers)
        data["preferred_batch_sizes"] = list(self.preferred_batch_sizes)
        data["inputs"] = [t.to_dict() for t in self.inputs]
        data["outputs"] = [t.to_dict() for t in self.outputs]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidConfigError(f"unknown model config fields {unknown}; known: {sorted(known)}")
        kwargs = dict(data)
        for key in ("inputs", "outputs"):
            if key in kwargs:
                kwargs[key] = tuple(TensorSpec.from_dict(t) for t in kwargs[key])
        for key in ("providers", "preferred_batch_sizes"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


def _bad(message: str, value: Any) -> None:
    raise InvalidConfigError(f"{message}; was {value!r}")


def _at_least(name: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        _bad(f"{name} must be an int >= {low}", value)
