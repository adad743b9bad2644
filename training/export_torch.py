"""PyTorch -> ONNX with torch's ``torch.export``-based exporter, validated in the engine.

The exporter is ``torch.onnx.export(..., dynamo=True)``, torch 2.13's default and the one that
is maintained; it needs ``onnxscript`` (in the ``train`` extra) and works offline. The older
TorchScript exporter is deprecated in torch 2.13 and is not used.

What ``engine export torch MODEL`` accepts as MODEL:

- ``package.module:attr``: an importable ``nn.Module`` instance, or a callable taking no
  arguments that returns one (a class or factory); ``--state-dict FILE`` then loads weights
  (``torch.save(module.state_dict())``, or a dict holding them under ``"state_dict"``),
  read with ``weights_only=True``.
- ``FILE.pt2``: an ``ExportedProgram`` saved by ``torch.export.save``; no Python code needed.
  Its dynamic dimensions are the ones given to ``torch.export.export``.
- TorchScript archives (``torch.jit.save``) are refused: torch.jit is deprecated in 2.13.

Inputs are the sample's arrays in order (``.npz`` keys, or ``input`` for one array), renamed
by ``input_names``; outputs are ``output`` (or ``output_0, output_1, ...`` for a tuple),
renamed by ``output_names``. float64 samples run as float32.

Axis 0 of every sample array is rows, the batch axis (dynamic unless ``--no-dynamic-batch``).
So a 1-D array of N values is N rows of one value each: right for a model that takes one
value per row (ids for an embedding, an elementwise function), wrong for one that takes a
``[rows, features]`` matrix, where those N values are one row's features. Such a sample is
refused, naming its shape, when an output does not have N rows and a dynamic batch axis was
asked for (``--no-dynamic-batch`` exports the sample's shape as it is); and whatever the
sample, an export where torch fixed the batch axis to the sample's row count (the model needs
exactly that many) is refused rather than written with a batch axis that is not one.
"""

from __future__ import annotations

import importlib
import io
import logging
import re
import sys
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Any

import numpy as np
from engine.training.export_options import ExportOptions, ExportResult, staged_output
from engine.training.samples import Sample
from engine.training.validate import (
    ParityReport,
    check_onnx,
    compare_values,
    default_domain_opset,
    engine_signature,
    normalise_opsets,
    run_onnx,
)

from engine.errors import ExportError

__all__ = ["export_torch", "load_torch_model", "torch_to_onnx"]


def load_torch_model(spec: str, state_dict: str | Path | None = None) -> Any:
    """An ``nn.Module`` or ``ExportedProgram`` from ``spec`` (see the module docstring)."""
    path = Path(spec)
    if path.is_file():
        if state_dict is not None:
            raise ExportError("--state-dict applies to a module:attr path, not to a file")
        return _load_file(path)
    if ":" not in spec:
        raise ExportError(
            f"torch model {spec!r} is neither an existing file nor a 'package.module:attr' path"
        )
    return _load_object(spec, state_dict)


def export_torch(
    model: Any, sample: Sample, out: str | Path, options: ExportOptions | None = None
) -> ExportResult:
    """Export ``model`` traced on ``sample``, write ``out`` (only if valid), compare outputs.

    Raises ExportError for an operator torch cannot export, a sample that does not fit the
    model, or parity outside ``options.atol``/``options.rtol``.
    """
    import torch

    options = options or ExportOptions()
    arrays = sample.arrays if sample.arrays is not None else {"input": sample.as_matrix()}
    input_names = list(options.input_names) or list(arrays)
    if len(input_names) != len(arrays):
        raise ExportError(
            f"--input-names gives {len(input_names)} names; the sample holds "
            f"{len(arrays)} arrays ({', '.join(arrays)})"
        )
    feeds = {name: np.ascontiguousarray(a) for name, a in zip(input_names, arrays.values())}
    tensors = tuple(torch.from_numpy(a) for a in feeds.values())
    expected = _reference(model, tensors)
    output_names = list(options.output_names) or (
        ["output"] if len(expected) == 1 else [f"output_{i}" for i in range(len(expected))]
    )
    if len(output_names) != len(expected):
        raise ExportError(
            f"--output-names gives {len(output_names)} names; the model returns "
            f"{len(expected)} outputs"
        )
    if options.dynamic_batch:  # a fixed-shape export takes the sample's shape as it is
        _check_one_value_rows(sample.source, feeds, dict(zip(output_names, expected)))
    with staged_output(out) as staged:
        torch_to_onnx(model, tensors, input_names, output_names, options, staged)
        if options.dynamic_batch and not _is_program(model):
            _check_batch_axis_dynamic(staged, feeds)
        opsets = normalise_opsets(staged)
        check_onnx(staged, str(out))
        got = run_onnx(staged, feeds, str(out))
        results = tuple(
            compare_values(n, got[n], e, options.atol, options.rtol)
            for n, e in zip(output_names, expected)
        )
        parity = ParityReport(options.atol, options.rtol, sample.rows, results)
        parity.raise_if_failed()
        inputs, outputs = engine_signature(staged, str(out))
    return ExportResult(Path(out), "torch", opsets, inputs, outputs, parity)


def torch_to_onnx(
    model: Any,
    tensors: Sequence[Any],
    input_names: Sequence[str],
    output_names: Sequence[str],
    options: ExportOptions,
    path: Path,
) -> None:
    """The one call into torch's exporter; its failures become ExportError naming the cause."""
    import onnx
    import torch

    is_program = isinstance(model, torch.export.ExportedProgram)
    if options.dynamic_batch and not is_program and tensors and tensors[0].shape[0] < 2:
        # torch.export specialises a dimension of size 0 or 1 to a constant.
        raise ExportError(
            "a dynamic batch axis needs a sample of at least 2 rows; this one has "
            f"{tensors[0].shape[0]} (or pass --no-dynamic-batch)"
        )
    dynamic_shapes = None
    if options.dynamic_batch and not is_program:
        batch = torch.export.Dim("batch")
        dynamic_shapes = tuple({0: batch} for _ in tensors)
    if not is_program:
        model.eval()
    said = io.StringIO()  # what torch prints or logs while exporting
    try:
        with _quiet_exporter(said):
            torch.onnx.export(
                model,
                tuple(tensors),
                str(path),
                dynamo=True,
                input_names=list(input_names),
                output_names=list(output_names),
                opset_version=options.opset,
                dynamic_shapes=dynamic_shapes,
                external_data=False,
                verbose=False,
            )
    except Exception as exc:  # torch raises many unrelated types; all mean "not exportable"
        raise _with_output(ExportError(_explain_torch_failure(exc, options.opset)), said) from exc
    wrote = default_domain_opset(onnx.load(str(path), load_external_data=False))
    if wrote is not None and wrote > options.opset:
        # torch's exporter writes its own opset (18) and converts down after; a conversion
        # that fails only logs, and leaves the file above the opset asked for.
        raise _with_output(
            ExportError(
                f"torch's exporter wrote opset {wrote}, above --opset {options.opset}: it could "
                f"not convert down to it; use --opset {wrote} or higher"
            ),
            said,
        )
    if said.getvalue():
        sys.stderr.write(said.getvalue())  # an export that worked: torch's warnings stand


def _with_output(error: ExportError, said: io.StringIO) -> ExportError:
    """``error`` with torch's output while exporting as a note: graph dumps, logs and
    tracebacks users cannot act on, shown only with the traceback (engine --debug)."""
    if said.getvalue().strip():
        error.add_note(f"torch's output while exporting:\n{said.getvalue().rstrip()}")
    return error


_ROWS_HINT = (
    "for a model of [rows, features] input, pass a 2-D [rows, features] sample "
    "(x.reshape(1, -1) makes one row of these values; a dynamic batch axis needs 2 rows or more)"
)


def _check_one_value_rows(
    source: str, feeds: dict[str, np.ndarray], outputs: dict[str, np.ndarray]
) -> None:
    """Refuse a 1-D sample array (read as rows of one value) that the model does not answer
    with one output row per value: it treats those values as features, not rows."""
    flat = [(name, a) for name, a in feeds.items() if a.ndim == 1]
    if not flat:
        return
    name, array = flat[0]
    rows = array.shape[0]
    for output, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != rows:
            raise ExportError(
                f"sample {source!r}: input {name!r} has shape {array.shape}, one dimension, "
                f"which is read as {rows} rows of one value each (axis 0 is the batch axis); "
                f"but the model's output {output!r} has shape {value.shape}, not {rows} "
                "rows: the model reads these values as one row's features, or returns an "
                f"output that is not one per row, which a batch axis cannot have: {_ROWS_HINT}; "
                "for a model of exactly this shape, pass --no-dynamic-batch"
            )


def _check_batch_axis_dynamic(path: Path, feeds: dict[str, np.ndarray]) -> None:
    """Refuse an export whose input kept a fixed axis 0: torch.export specialises a dynamic
    dimension the model constrains to the sample's size, without an error."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    for tensor in graph.input:
        if tensor.name not in feeds:
            continue
        dims = tensor.type.tensor_type.shape.dim
        if not dims or not dims[0].HasField("dim_value"):
            continue
        shape = feeds[tensor.name].shape
        hint = (
            f"; the sample's one dimension is read as rows: {_ROWS_HINT}" if len(shape) == 1 else ""
        )
        raise ExportError(
            f"input {tensor.name!r}: torch fixed the batch axis to {dims[0].dim_value} (the "
            f"sample's shape is {shape}) instead of keeping it dynamic, as the model needs "
            "exactly that size on axis 0 (a weight, a reshape or a broadcast of that size)"
            f"{hint}. Make the model accept any number of rows, or pass --no-dynamic-batch "
            "for a model of exactly that shape"
        )


def _is_program(model: Any) -> bool:
    import torch

    return isinstance(model, torch.export.ExportedProgram)


def _reference(model: Any, tensors: tuple[Any, ...]) -> list[np.ndarray]:
    import torch

    module = model.module() if isinstance(model, torch.export.ExportedProgram) else model.eval()
    try:
        with torch.no_grad():
            out = module(*tensors)
    except Exception as exc:  # a sample that does not fit: wrong width, dtype or arity
        shapes = ", ".join(f"{tuple(t.shape)} {t.dtype}" for t in tensors)
        raise ExportError(
            f"the model fails on the sample ({shapes}): {type(exc).__name__}: {_first_line(exc)}"
            f"{_float64_hint(module, exc)}"
        ) from exc
    outs = out if isinstance(out, (tuple, list)) else (out,)
    if not all(isinstance(o, torch.Tensor) for o in outs):
        kinds = [type(o).__name__ for o in outs]
        raise ExportError(f"the model must return a tensor or a tuple of tensors; got {kinds}")
    return [o.detach().numpy() for o in outs]


def _float64_hint(module: Any, exc: BaseException) -> str:
    """Why a float64 model fails on a float32 sample: samples convert float64 to float32
    (frameworks default to float32 weights), which the user did not ask for."""
    import torch

    tensors = [*module.parameters(), *module.buffers()]
    if not any(t.dtype == torch.float64 for t in tensors) and "Double" not in str(exc):
        return ""
    return (
        ". The module computes in float64, but samples are read as float32 (float64 arrays "
        "are converted): convert the module with module.float() before export"
    )


def _load_file(path: Path) -> Any:
    import torch

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(re.search(r"(^|/)(code/|constants\.pkl$)", n) for n in names):
            raise ExportError(
                f"{str(path)!r} is a TorchScript archive; torch.jit is deprecated in torch 2.13 "
                "and its modules are not exported here. Save an ExportedProgram instead: "
                "torch.export.save(torch.export.export(module, (example,), dynamic_shapes="
                "({0: torch.export.Dim('batch')},)), 'model.pt2'), or pass "
                "package.module:attr"
            )
    if path.suffix != ".pt2":
        raise ExportError(
            f"{str(path)!r} is not a .pt2 ExportedProgram; a weights checkpoint "
            "needs its module class: pass package.module:attr --state-dict FILE"
        )
    if not zipfile.is_zipfile(path):  # torch would log its own traceback before failing
        raise ExportError(
            f"{str(path)!r} is not a .pt2 archive (not a zip file): it is corrupt or another "
            "format; save one with torch.export.save"
        )
    try:
        return torch.export.load(str(path))
    except Exception as exc:  # corrupt or foreign archive
        raise ExportError(
            f"cannot load {str(path)!r} with torch.export.load: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def _load_object(spec: str, state_dict: str | Path | None) -> Any:
    import torch

    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ExportError(
            f"cannot import {module_name!r} for {spec!r}: {exc}. Is it on PYTHONPATH? The "
            "engine command does not import from the current directory: run it as "
            "'PYTHONPATH=. engine export torch ...'"
        ) from exc
    except Exception as exc:  # the user's module failed while running its top level
        raise _user_code_failed(f"importing {module_name!r}", exc) from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ExportError(f"{spec!r}: {type(obj).__name__} {obj!r} has no attribute {part!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, torch.nn.Module):
        if not callable(obj):
            raise ExportError(
                f"{spec!r} is a {type(obj).__name__}, not an nn.Module or a callable returning one"
            )
        try:
            obj = obj()
        except Exception as exc:  # the user's factory or constructor raised: any type at all
            raise _user_code_failed(f"{spec}()", exc) from exc
        if not isinstance(obj, torch.nn.Module):
            raise ExportError(f"{spec!r}() returned a {type(obj).__name__}, not an nn.Module")
    if state_dict is not None:
        _load_weights(obj, Path(state_dict))
    return obj


def _user_code_failed(call: str, exc: BaseException) -> ExportError:
    return ExportError(
        f"{call} raised {type(exc).__name__}: {_first_line(exc)} (in your code, not in the "
        "exporter; run `engine --debug export torch ...` for the traceback)"
    )


def _load_weights(module: Any, path: Path) -> None:
    import torch

    if not path.is_file():
        raise ExportError(f"state dict file {str(path)!r} does not exist")
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors of any kind
        raise ExportError(
            f"cannot read weights from {str(path)!r}: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    if isinstance(weights, dict) and isinstance(weights.get("state_dict"), dict):
        weights = weights["state_dict"]
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        # torch names the missing, unexpected and mis-sized keys on the lines after its first.
        raise ExportError(
            f"weights in {str(path)!r} do not fit the module: {_one_line(exc)}"
        ) from exc


@contextmanager
def _quiet_exporter(said: io.StringIO) -> Iterator[None]:
    """Silence torch-internal noise users cannot act on: the exporter's registry logs optional
    torchvision ops it skips, and torch's pytree warns about its own deprecated API. Everything
    else torch writes to stderr meanwhile goes to ``said``: its loggers (each has its own
    stderr handler) and its plain prints (torch.export prints the partial graph of a model it
    cannot capture), so the caller decides what the user sees."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    redirected: list[tuple[logging.StreamHandler[Any], Any]] = []
    try:
        logger.setLevel(logging.ERROR)
        for handler in _torch_stderr_handlers():
            redirected.append((handler, _swap_stream(handler, said)))
        with warnings.catch_warnings(), redirect_stderr(said):
            warnings.filterwarnings(
                "ignore", message=r"`isinstance\(treespec, LeafSpec\)`", category=FutureWarning
            )
            yield
    finally:
        for handler, stream in redirected:
            _swap_stream(handler, stream)
        logger.setLevel(level)


def _swap_stream(handler: logging.StreamHandler[Any], stream: Any) -> Any:
    """``handler.setStream(stream)`` without its flush of the old stream, which raises when that
    stream is closed (a handler bound to the stderr of a finished pytest capture, or of a
    process that closed it). Returns the old stream."""
    handler.acquire()
    try:
        old = handler.stream
        handler.stream = stream
    finally:
        handler.release()
    return old


def _torch_stderr_handlers() -> list[logging.StreamHandler[Any]]:
    """The console handlers on torch's loggers: torch._logging gives each logger it manages a
    plain StreamHandler of its own, bound to whatever ``sys.stderr`` was when torch was
    imported (file handlers, and handlers writing to stdout, are left alone)."""
    found: dict[int, logging.StreamHandler[Any]] = {}
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or not (
            name == "torch" or name.startswith("torch.")
        ):
            continue
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler and handler.stream not in (
                sys.stdout,
                sys.__stdout__,
            ):
                found[id(handler)] = handler
    return list(found.values())


def _explain_torch_failure(exc: BaseException, opset: int) -> str:
    text = _strip_colours(str(exc))
    ops = re.findall(
        r"No ONNX function found for <OpOverload\(op='([^']+)', overload='([^']+)'", text
    )
    if ops:
        names = ", ".join(sorted({f"{op}.{overload}" for op, overload in ops}))
        return (
            f"torch.onnx has no ONNX translation at opset {opset} for operator {names}. "
            "Rewrite that part of the model with supported operations, give a translation "
            "with torch.onnx.export(custom_translation_table=...), or try another --opset"
        )
    # torch puts the root cause after "## Exception summary"; its own first line is generic.
    summary = text.partition("## Exception summary")[2].strip()
    cause = summary.splitlines()[0] if summary else _first_line(exc)
    step = (
        "capturing the model with torch.export"
        if "step 1/3" in text
        else "translating the captured graph to ONNX"
    )
    return (
        f"torch.onnx failed while {step}: {type(exc).__name__}: {cause}. Make the model's "
        "forward exportable (no data-dependent Python control flow; tensors in and out), "
        "or export it yourself to .pt2 with torch.export and pass that file"
    )


def _strip_colours(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)  # torch colours its messages


def _first_line(exc: BaseException) -> str:
    text = _strip_colours(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _one_line(exc: BaseException, limit: int = 1000) -> str:
    """All of ``exc``'s message on one line (an ``error:`` line), cut to ``limit`` chars."""
    text = " ".join(_strip_colours(str(exc)).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."
