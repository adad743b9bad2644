"""Typed, validated model configuration: one :class:`ModelConfig` per model version.

It holds everything that decides how a model runs: execution (providers, threads, instances)
and dynamic batching (sizes, queue delay and bound, timeouts). It is frozen and validated on
construction; an invalid value raises :class:`~engine.errors.InvalidConfigError` naming the
field, the bad value and what is allowed. ``to_dict``/``from_dict`` give the JSON form stored in
the registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from engine.errors import InvalidConfigError
from engine.signature import TensorSpec, dtype_by_name

__all__ = [
    "INSTANCE_MODES",
    "MAX_DURATION_US",
    "MAX_INSTANCES",
    "MAX_INT32",
    "MAX_SESSION_THREADS",
    "MAX_THREADS",
    "OPTIMIZATION_LEVELS",
    "PROVIDERS",
    "ModelConfig",
]

PROVIDERS = ("cpu", "cuda")
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
# "sessions": one ORT session per instance. "shared": one session, `instances` concurrent runs.
INSTANCE_MODES = ("sessions", "shared")

# Upper bounds. Counts and sizes reach the core as C++ `int` (csrc/bindings/bind_model.cc), so
# they stay within int32; larger thread and instance counts only make a load hang (each instance
# is an ORT session with its own intra-op pool: 100,000 instances took 72 s and 6.5 GB). The
# bounds are fixed rather than a multiple of os.cpu_count(): a config is stored in the registry
# and must mean the same on every machine that loads it.
MAX_INT32 = 2**31 - 1
MAX_THREADS = 256  # per pool; far more threads than any machine has cores for
MAX_INSTANCES = 256
MAX_CPUS = 1024  # Linux's CPU_SETSIZE: the CPU numbers a thread can be pinned to
MAX_SESSION_THREADS = 4096  # instances x intra_op_threads in "sessions" mode: 256 x 256 hangs
# Microsecond fields are C++ int64 and are added to the clock: one day keeps that far from
# overflow. A longer timeout is no timeout (0).
MAX_DURATION_US = 86_400_000_000


@dataclass(frozen=True)
class ModelConfig:
    """How one model version is executed and batched.

    ``batching`` is ``None``, ``True`` or ``False``: ``None`` means automatic, on when the
    model's first dimension is dynamic on every input and output. ``max_batch_size`` bounds a
    batch and the rows of one request (with ``batching=False`` too, along a dynamic first
    dimension; not when automatic batching finds the model unbatchable); 0 means the model has
    no batch dimension (Triton's ``max_batch_size: 0``), so batching stays off. Declared
    ``inputs`` must match the model, and the dynamic dims they fix are checked on every request. ``max_queue_delay_us=0`` never waits: requests
    that arrive while all instances are busy form the next batch. ``default_timeout_us=0``
    means no deadline. Bounds: threads <= 256, instances <= 256 (and instances x
    intra_op_threads <= 4096 with one session per instance), sizes <= 2**31 - 1, microsecond
    fields <= one day.
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
    # The completion thread may spin-wait for the next batch while the workers are busy (up to
    # 150 us of CPU per batch) instead of making each worker wake it. False: it only sleeps.
    completion_spin: bool = True
    # Worker i runs only on CPU worker_cpus[i % len] (Triton's host policy cpu-cores); empty:
    # wherever the system schedules it. Checked at load against the CPUs this process may use.
    worker_cpus: tuple[int, ...] = ()
    # Optional declared signature (from config.pbtxt); checked against the model on load.
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    # Optional feature-transform spec (engine.transforms JSON form), run in the core on each
    # batch; the model then takes the spec's raw columns instead of `transform_target` (a
    # float32 [rows, width] input; "" = the model's only input).
    transforms: dict[str, Any] | None = field(default=None, compare=False)
    transform_target: str = ""

    def __post_init__(self) -> None:
        for name in ("providers", "preferred_batch_sizes", "worker_cpus"):
            object.__setattr__(self, name, _as_tuple(name, getattr(self, name)))
        for name in ("inputs", "outputs"):
            object.__setattr__(self, name, _specs(name, getattr(self, name)))
        self._check_execution()
        self._check_batching()
        self._check_transforms()

    def _check_execution(self) -> None:
        if not self.providers:
            _bad("providers must name at least one provider", self.providers)
        for p in self.providers:
            if p not in PROVIDERS:
                _bad(f"providers must be among {PROVIDERS}", self.providers)
        if len(set(self.providers)) != len(self.providers):
            _bad("providers must not repeat", self.providers)
        _int_in("device_id", self.device_id, 0, MAX_INT32)
        _int_in("intra_op_threads", self.intra_op_threads, 0, MAX_THREADS)
        _int_in("inter_op_threads", self.inter_op_threads, 0, MAX_THREADS)
        _bool("allow_spinning", self.allow_spinning)
        _choice("graph_optimization_level", self.graph_optimization_level, OPTIMIZATION_LEVELS)
        _int_in("instances", self.instances, 1, MAX_INSTANCES)
        _choice("instance_mode", self.instance_mode, INSTANCE_MODES)
        for cpu in self.worker_cpus:
            if _not_int(cpu) or not 0 <= cpu < MAX_CPUS:
                _bad(f"worker_cpus must be CPU numbers, ints in [0, {MAX_CPUS - 1}]",
                     self.worker_cpus)
        # 0 threads is ORT's default pool (one per core): counted as 1, so the bound does not
        # depend on the machine.
        threads = self.instances * max(self.intra_op_threads, 1)
        if self.instance_mode == "sessions" and threads > MAX_SESSION_THREADS:
            raise InvalidConfigError(
                f"instances x intra_op_threads must be <= {MAX_SESSION_THREADS} (each instance is "
                f"a session with its own thread pool); was {self.instances} x "
                f"{self.intra_op_threads}")

    def _check_batching(self) -> None:
        if self.batching is not None and not isinstance(self.batching, bool):
            _bad("batching must be None (automatic), True or False", self.batching)
        _int_in("max_batch_size", self.max_batch_size, 0, MAX_INT32)
        if self.max_batch_size == 0 and self.batching:
            _bad("batching=True needs max_batch_size >= 1 (0 means the model has no batch "
                 "dimension)", self.max_batch_size)
        for size in self.preferred_batch_sizes:
            if _not_int(size) or not 1 <= size <= self.max_batch_size:
                _bad(f"preferred_batch_sizes must be ints in [1, max_batch_size="
                     f"{self.max_batch_size}]", self.preferred_batch_sizes)
        if len(set(self.preferred_batch_sizes)) != len(self.preferred_batch_sizes):
            _bad("preferred_batch_sizes must not repeat", self.preferred_batch_sizes)
        _int_in("max_queue_delay_us", self.max_queue_delay_us, 0, MAX_DURATION_US)
        _int_in("max_queue_size", self.max_queue_size, 1, MAX_INT32)
        _int_in("default_timeout_us", self.default_timeout_us, 0, MAX_DURATION_US)
        _bool("completion_spin", self.completion_spin)

    def _check_transforms(self) -> None:
        if not isinstance(self.transform_target, str):
            _bad("transform_target must be a str (an input name, or '' for the model's only "
                 "input)", self.transform_target)
        if self.transforms is None:
            if self.transform_target:
                _bad("transform_target needs transforms", self.transform_target)
            return
        if not isinstance(self.transforms, Mapping):
            _bad("transforms must be a transform spec in its JSON form (a dict) or None",
                 self.transforms)
        from engine.transforms.spec import TransformSpec  # only configs with transforms pay

        try:
            TransformSpec.from_dict(self.transforms)
        except InvalidConfigError as exc:
            raise InvalidConfigError(f"transforms: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["providers"] = list(self.providers)
        data["preferred_batch_sizes"] = list(self.preferred_batch_sizes)
        data["worker_cpus"] = list(self.worker_cpus)
        data["inputs"] = [t.to_dict() for t in self.inputs]
        data["outputs"] = [t.to_dict() for t in self.outputs]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        if not isinstance(data, Mapping):
            raise InvalidConfigError(
                f"a model config must be a mapping of field names to values; was "
                f"{type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidConfigError(f"unknown model config fields {unknown}; known: {sorted(known)}")
        kwargs = dict(data)
        for key in ("inputs", "outputs"):
            if key in kwargs:
                kwargs[key] = _specs_from_dicts(key, kwargs[key])
        return cls(**kwargs)


def _bad(message: str, value: Any) -> None:
    raise InvalidConfigError(f"{message}; was {value!r}")


def _not_int(value: Any) -> bool:
    # bool is an int subclass, but max_batch_size=True is a mistake, not 1.
    return not isinstance(value, int) or isinstance(value, bool)


def _int_in(name: str, value: Any, low: int, high: int) -> None:
    if _not_int(value):
        _bad(f"{name} must be an int in [{low}, {high}]", value)
    if not low <= value <= high:
        bound = f">= {low}" if value < low else f"<= {high}"
        raise InvalidConfigError(
            f"{name} must be an int {bound}; was {value!r} (allowed: [{low}, {high}])")


def _bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        _bad(f"{name} must be True or False", value)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        _bad(f"{name} must be one of {allowed}", value)


def _as_tuple(name: str, value: Any) -> tuple[Any, ...]:
    # A lone string would become a tuple of its characters: ("c", "p", "u").
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        _bad(f"{name} must be a sequence (list or tuple)", value)
    return tuple(value)


def _specs(name: str, value: Any) -> tuple[TensorSpec, ...]:
    """The declared tensors, checked, with each shape as a tuple (hashable, comparable)."""
    out: list[TensorSpec] = []
    for spec in _as_tuple(name, value):
        if not isinstance(spec, TensorSpec):
            _bad(f"{name} must be TensorSpec values", spec)
        if not isinstance(spec.name, str) or not spec.name or spec.name in {t.name for t in out}:
            _bad(f"{name} need distinct, non-empty names", spec.name)
        if not _is_dtype_name(spec.dtype):
            _bad(f"{name} {spec.name!r}: dtype must be an element type name such as 'float32'",
                 spec.dtype)
        shape = spec.shape
        if isinstance(shape, (str, bytes)) or not isinstance(shape, (list, tuple)) or any(
            _not_int(d) or d < -1 for d in shape
        ):
            _bad(f"{name} {spec.name!r}: shape must be a sequence of ints >= 0, or -1 for a "
                 f"dynamic dimension", shape)
        out.append(TensorSpec(spec.name, spec.dtype, tuple(shape)))
    return tuple(out)


def _is_dtype_name(dtype: Any) -> bool:
    try:
        return isinstance(dtype, str) and dtype_by_name(dtype).name == dtype
    except KeyError:
        return False


def _specs_from_dicts(name: str, items: Any) -> tuple[TensorSpec, ...]:
    if not isinstance(items, (list, tuple)):
        _bad(f"{name} must be a list of {{name, dtype, shape}} objects", items)
    specs = []
    for i, item in enumerate(items):
        try:
            specs.append(TensorSpec.from_dict(item))
        except KeyError as exc:
            missing = exc.args[0] in ("name", "dtype", "shape")
            reason = f"it lacks {exc.args[0]!r}" if missing else str(exc.args[0])
            raise InvalidConfigError(f"{name}[{i}]: {reason}; was {item!r}") from None
        except (TypeError, ValueError):
            raise InvalidConfigError(
                f"{name}[{i}] must be an object {{name, dtype, shape}}; was {item!r}"
            ) from None
    return tuple(specs)
