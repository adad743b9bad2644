"""scikit-learn -> ONNX with skl2onnx, validated in the engine.

Inputs of the ONNX graph follow the sample (see :mod:`engine.training.samples`):

- a model fitted on a DataFrame (``feature_names_in_``) takes one ``[batch, 1]`` input per
  column, named after the column: float32 for numeric columns, bool for bool columns, string
  otherwise. The sample must have exactly those columns. When the model's first step reads
  the frame as one numeric matrix (a bare estimator, or a Pipeline not starting with a
  ColumnTransformer or FeatureUnion) and every column is numeric or bool, the graph
  concatenates the columns into that matrix (see :mod:`engine.training.served_inputs`).
- a model fitted on an array takes one ``[batch, n_features]`` float32 input, named
  ``input_names[0]`` or ``"input"``.

Parity gives scikit-learn the sample's own column values (numeric ones rounded to float32, as
served), never the encoding the ONNX graph takes.

Outputs are skl2onnx's: classifiers ``label`` and ``probabilities`` (a plain tensor, no
ZipMap), regressors ``variable``. ``output_names`` may rename them, in that order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from engine.training.export_options import ExportOptions, ExportResult, staged_output
from engine.training.samples import Sample
from engine.training.served_inputs import serve_columns
from engine.training.validate import (
    OutputParity,
    ParityReport,
    check_onnx,
    compare_labels,
    compare_values,
    declare_output_shapes,
    engine_signature,
    normalise_opsets,
    run_onnx,
    top_two_margin,
)

from engine.errors import ExportError

__all__ = ["ML_OPSET", "export_sklearn", "load_sklearn_model", "table_inputs"]

ML_OPSET = 3  # ai.onnx.ml: TreeEnsemble*, OneHotEncoder, Imputer, Scaler at version 3


def load_sklearn_model(path: str | Path) -> Any:
    """Unpickle a joblib file. Only load files you trust: unpickling runs code."""
    import joblib

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"model file {str(path)!r} does not exist")
    try:
        model = joblib.load(path)
    except Exception as exc:  # joblib raises anything the pickle stream does
        raise ExportError(
            f"cannot load {str(path)!r} with joblib: {type(exc).__name__}: {exc}"
        ) from exc
    if not hasattr(model, "predict"):
        raise ExportError(
            f"{str(path)!r} holds a {type(model).__name__}, which has no predict(): "
            "export a fitted estimator or Pipeline ending in one"
        )
    _check_fitted(model, path)
    return model


def _check_fitted(model: Any, path: Path) -> None:
    """skl2onnx's errors for an unfitted estimator name something else (a number of classes
    it cannot find), and suggest another opset."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError:
        raise ExportError(
            f"{str(path)!r} holds a {type(model).__name__} that is not fitted: call fit() on "
            "it before joblib.dump, then export that file"
        ) from None
    except TypeError:  # not a scikit-learn estimator: the converter will say what it is
        pass


def export_sklearn(
    model: Any, sample: Sample, out: str | Path, options: ExportOptions | None = None
) -> ExportResult:
    """Convert, write ``out`` (only if valid), check, run in the engine, compare with sklearn.

    Raises ExportError for an unconvertible step, a sample that does not fit the model, or
    parity outside ``options.atol``/``options.rtol``.
    """
    options = options or ExportOptions()
    feeds, framework_input, initial_types, matrix = _model_inputs(model, sample, options)
    onx = _convert(model, initial_types, options, list(feeds))
    output_names = _rename_outputs(onx, options.output_names)
    _refuse_inputs_named_like_outputs(onx, list(feeds))
    _restore_input_names(onx, [name for name, _ in initial_types])
    if getattr(model, "feature_names_in_", None) is not None:  # one feed per table column
        onx = serve_columns(onx, feeds, matrix)
    with staged_output(out) as staged:
        staged.write_bytes(onx.SerializeToString())
        opsets = normalise_opsets(staged)
        check_onnx(staged, str(out))
        got = run_onnx(staged, feeds, str(out))
        declare_output_shapes(staged, got)
        check_onnx(staged, str(out))  # the shapes declared now must agree with shape inference too
        parity = _parity(model, framework_input, got, output_names, options, sample.rows)
        parity.raise_if_failed()
        inputs, outputs = engine_signature(staged, str(out))
    return ExportResult(Path(out), "sklearn", opsets, inputs, outputs, parity)


def _model_inputs(
    model: Any, sample: Sample, options: ExportOptions
) -> tuple[dict[str, np.ndarray], Any, list[Any], str | None]:
    """Engine feeds, the same values as the framework will see them, skl2onnx types, and the
    name of the one matrix input the table's columns are concatenated into (or None)."""
    from skl2onnx.common.data_types import FloatTensorType

    batch = None if options.dynamic_batch else sample.rows
    fitted_columns = getattr(model, "feature_names_in_", None)
    if fitted_columns is not None:
        if sample.table is None:
            raise ExportError(
                f"the model was fitted on a table with columns "
                f"{list(fitted_columns)}; give a .csv or .parquet sample with them"
            )
        if options.input_names:
            raise ExportError(
                "--input-names does not apply to a model fitted on a table: its "
                "inputs are named after the columns "
                f"{list(fitted_columns)}"
            )
        columns = [str(c) for c in fitted_columns]
        _refuse_text_read_as_numbers(model, sample)
        feeds, framework, types = table_inputs(sample.table, columns, batch, sample.source)
        if _reads_one_matrix(model) and all(_is_float(t) for _, t in types):
            # scikit-learn turns the frame into one float matrix for this model: convert with
            # that, and let serve_columns concatenate the column inputs into it.
            matrix = _unused_name("features", columns)
            return feeds, framework, [(matrix, FloatTensorType([batch, len(columns)]))], matrix
        return feeds, framework, types, None
    matrix = sample.as_matrix().astype(np.float32)
    expected = getattr(model, "n_features_in_", None)
    if matrix.ndim != 2 or (expected is not None and matrix.shape[1] != expected):
        raise ExportError(
            f"sample {sample.source!r} has shape {matrix.shape}; the model expects "
            f"[rows, {expected}]"
        )
    if len(options.input_names) > 1:
        raise ExportError(
            f"a model fitted on an array has one input; got --input-names "
            f"{list(options.input_names)}"
        )
    name = options.input_names[0] if options.input_names else "input"
    types = [(name, FloatTensorType([batch, matrix.shape[1]]))]
    # The framework gets float64, as when called on a user's array, of the served values.
    return {name: matrix}, matrix.astype(np.float64), types, None


def table_inputs(
    frame: Any, columns: list[str], batch: int | None, source: str
) -> tuple[dict[str, np.ndarray], Any, list[Any]]:
    """``(feeds, framework, types)`` for a model fitted on ``columns`` of a DataFrame.

    ``feeds``: one ``[rows, 1]`` array per column, as the served model takes it (float32,
    bool, or str objects). ``framework``: the DataFrame to give scikit-learn, holding the
    sample's own values (numeric columns as float64 of the float32 values served, so parity
    measures the export, not the cast). ``types``: skl2onnx's input types, which differ from
    the feeds for bool columns (converted as float; see :func:`serve_columns`).
    """
    import pandas as pd
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    missing = [c for c in columns if c not in frame.columns]
    extra = [c for c in frame.columns if c not in columns]
    if missing or extra:
        raise ExportError(
            f"sample {source!r} does not have the model's columns: missing "
            f"{missing}, unexpected {extra}; the model was fitted on {columns}"
        )
    feeds: dict[str, np.ndarray] = {}
    types: list[Any] = []
    framework = pd.DataFrame(index=frame.index)
    for column in columns:
        values = frame[column]
        if pd.api.types.is_bool_dtype(values):
            if values.isna().any():
                raise ExportError(
                    f"sample {source!r}: bool column {column!r} has missing values, which a "
                    "bool tensor cannot carry; fill them first"
                )
            array = values.to_numpy(dtype=np.bool_)
            types.append((column, FloatTensorType([batch, 1])))  # as 0.0/1.0, like sklearn
            framework[column] = values
        elif pd.api.types.is_numeric_dtype(values):
            # The served model takes float32; parity is measured on those values, which the
            # framework sees as float64 columns, as when it is called on a user's DataFrame.
            array = values.to_numpy(dtype=np.float32, na_value=np.nan)
            types.append((column, FloatTensorType([batch, 1])))
            framework[column] = array.astype(np.float64)
        else:
            array = np.array([None if _missing(v) else str(v) for v in values], dtype=object)
            if any(v is None for v in array):
                raise ExportError(
                    f"sample {source!r}: string column {column!r} has missing "
                    "values, which a string tensor cannot carry; fill them first"
                )
            types.append((column, StringTensorType([batch, 1])))
            framework[column] = values  # the values themselves, not their text
        feeds[column] = array.reshape(-1, 1)
    return feeds, framework, types


def _reads_one_matrix(model: Any) -> bool:
    """Whether scikit-learn hands ``model``'s first step the DataFrame as one numeric matrix
    (anything but a ColumnTransformer or FeatureUnion, which select columns by name)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    step = model
    while isinstance(step, Pipeline):
        steps = [s for _, s in step.steps if s is not None and s != "passthrough"]
        if not steps:
            return True
        step = steps[0]
    return not isinstance(step, (ColumnTransformer, FeatureUnion))


def _is_float(tensor_type: Any) -> bool:
    from skl2onnx.common.data_types import FloatTensorType

    return isinstance(tensor_type, FloatTensorType)


def _unused_name(name: str, taken: list[str]) -> str:
    while name in taken:
        name = f"_{name}"
    return name


def _convert(
    model: Any, initial_types: list[Any], options: ExportOptions, columns: list[str]
) -> Any:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.exceptions import MissingConverter, MissingShapeCalculator
    from sklearn.base import is_classifier

    conversion_options = _conversion_options(model) if is_classifier(model) else None
    try:
        return convert_sklearn(
            model,
            initial_types=initial_types,
            target_opset={"": options.opset, "ai.onnx.ml": ML_OPSET},
            options=conversion_options,
        )
    except (MissingShapeCalculator, MissingConverter) as exc:
        raise ExportError(_unsupported_message(model, str(exc))) from exc
    except (RuntimeError, ValueError, TypeError, NotImplementedError, NameError) as exc:
        # NameError: skl2onnx's word for an option a converter does not have.
        if "input(s) is(are) supported" in str(exc) and len(initial_types) > 1:
            # One input per column reached a step that takes one matrix: text columns, since
            # numeric ones are concatenated first (_model_inputs).
            text = [n for n, t in initial_types if not _is_float(t)]
            raise ExportError(
                f"{_describe(model)} takes one input matrix in ONNX, and the text columns "
                f"{text} cannot join the numeric ones in it (the model's columns: {columns}). "
                "Encode them inside the model: a Pipeline starting with a ColumnTransformer "
                "(e.g. OneHotEncoder for those columns, 'passthrough' for the rest)"
            ) from exc
        raise ExportError(
            f"skl2onnx could not convert {_describe(model)} at opset "
            f"{options.opset}: {type(exc).__name__}: {_first_line(exc)}. Try "
            "another --opset, or simplify the offending step"
        ) from exc


def _conversion_options(classifier: Any) -> dict[int, dict[str, Any]]:
    """skl2onnx options for ``classifier``: ZipMap off wherever the converter has it.

    ZipMap turns probabilities into a list of dicts and the engine serves plain tensors. A
    converter without the option (LinearSVC's: it has no probabilities) refuses it with a
    NameError; and a Pipeline hands its final classifier its own default ``zipmap=True``
    unless that classifier has options of its own, hence empty ones for it.
    """
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common._registration import get_converter

    last = _final_estimator(classifier)
    try:
        allowed = get_converter(sklearn_operator_name_map[type(last)]).get_allowed_options()
    except (KeyError, ValueError):
        allowed = "passthrough"  # no converter known here: conversion says so, naming the step
    # None: no options at all; "passthrough": handed on to the steps inside.
    if allowed == "passthrough" or (isinstance(allowed, dict) and "zipmap" in allowed):
        return {id(classifier): {"zipmap": False}}
    return {id(last): {}}


def _final_estimator(model: Any) -> Any:
    """The estimator that makes a (possibly nested) Pipeline's output, or ``model`` itself."""
    from sklearn.pipeline import Pipeline

    while isinstance(model, Pipeline):
        model = model.steps[-1][1]
    return model


def _unsupported_message(model: Any, detail: str) -> str:
    import skl2onnx

    bad = [
        (path, step) for path, step in _walk(model, "model") if type(step).__qualname__ in detail
    ]
    where = f"step {bad[-1][0]!r} ({_describe(bad[-1][1])})" if bad else _describe(model)
    return (
        f"{where} has no ONNX converter in skl2onnx {skl2onnx.__version__}. Replace it with a "
        "supported estimator (logistic/linear models, tree ensembles, "
        "HistGradientBoosting, MLP, scalers, encoders, imputers...) or register a custom "
        "converter with skl2onnx.update_registered_converter"
    )


def _refuse_text_read_as_numbers(model: Any, sample: Sample) -> None:
    """Raise ExportError for a column that an encoder was fitted on as text and that the
    sample holds as numbers: a CSV of zip codes or ids, which pandas reads as numbers.
    skl2onnx would fail on it with a message about one category."""
    frame = sample.table
    for _, step in _walk(model, "model"):
        for _, transformer, selected in getattr(step, "transformers_", []):
            if isinstance(transformer, str) or not isinstance(selected, (list, tuple)):
                continue
            encoders = [e for _, e in _walk(transformer, "") if hasattr(e, "categories_")]
            if not encoders or len(encoders[0].categories_) != len(selected):
                continue
            for column, categories in zip(selected, encoders[0].categories_):
                text = categories.dtype == object and any(isinstance(c, str) for c in categories)
                if text and column in frame and frame[column].dtype.kind in "iuf":
                    raise ExportError(
                        f"column {column!r} of sample {sample.source!r} holds numbers, but the "
                        f"model's {type(encoders[0]).__name__} was fitted on it as text "
                        f"(categories such as {[str(c) for c in categories[:3]]}); a CSV reader "
                        "takes text of digits for numbers: give the sample as .parquet, which "
                        "keeps the column's type"
                    )


def _walk(step: Any, path: str) -> list[tuple[str, Any]]:
    """Every (path, estimator) inside Pipelines and ColumnTransformers, outermost first."""
    found = [(path, step)]
    for name, child in getattr(step, "steps", []):
        found += _walk(child, f"{path}.{name}")
    for name, child, _ in getattr(step, "transformers_", getattr(step, "transformers", [])):
        if not isinstance(child, str):
            found += _walk(child, f"{path}.{name}")
    return found


def _rename_outputs(onx: Any, names: tuple[str, ...]) -> list[str]:
    current = [o.name for o in onx.graph.output]
    if not names:
        return current
    if len(names) != len(current):
        raise ExportError(
            f"--output-names gives {len(names)} names; the model has "
            f"{len(current)} outputs {current}"
        )
    renames = dict(zip(current, names))
    for node in onx.graph.node:
        node.output[:] = [renames.get(o, o) for o in node.output]
    for output in onx.graph.output:
        output.name = renames[output.name]
    return list(names)


def _refuse_inputs_named_like_outputs(onx: Any, served: list[str]) -> None:
    """The names callers send (the table's columns, or the one array input) must differ from
    the outputs' (after --output-names): one name cannot be both in an ONNX graph."""
    outputs = [o.name for o in onx.graph.output]
    clashes = [name for name in served if name in outputs]
    if clashes:
        raise ExportError(
            f"the sample's columns {clashes} have the names of model outputs {outputs}; "
            "rename the outputs with --output-names"
        )


def _restore_input_names(onx: Any, requested: list[str]) -> None:
    """Give the converted graph's inputs the names they were converted with.

    skl2onnx renames an input that has the name of one of its outputs (a column ``label``
    becomes ``label1``), while callers send the column's name. Once --output-names has moved
    the outputs out of the way (_refuse_inputs_named_like_outputs checked it), the input gets
    its name back.
    """
    if len(onx.graph.input) != len(requested):
        return
    used = {name for node in onx.graph.node for name in (*node.input, *node.output)}
    used |= {t.name for t in onx.graph.initializer}
    for graph_input, name in zip(onx.graph.input, requested):
        old = graph_input.name
        if old == name:
            continue
        if name in used:
            raise ExportError(
                f"the sample's column {name!r} has the name of a value inside the converted "
                "model; rename the column"
            )
        graph_input.name = name
        for node in onx.graph.node:
            node.input[:] = [name if value == old else value for value in node.input]


def _parity(
    model: Any,
    framework_input: Any,
    got: dict[str, np.ndarray],
    names: list[str],
    options: ExportOptions,
    rows: int,
) -> ParityReport:
    """Compare positionally: skl2onnx emits (label, probabilities/scores) or (variable,)."""
    atol, rtol = options.atol, options.rtol
    results: list[OutputParity] = []
    if hasattr(model, "predict_proba") and len(names) == 2:
        proba = _reference(model.predict_proba, framework_input)
        results.append(compare_values(names[1], got[names[1]], proba, atol, rtol))
        results.append(
            compare_labels(
                names[0],
                got[names[0]],
                _reference(model.predict, framework_input),
                top_two_margin(proba),
                atol,
                rtol,
            )
        )
    else:
        expected = _reference(model.predict, framework_input)
        first = got[names[0]]
        if expected.dtype.kind in "fc":
            results.append(compare_values(names[0], first, expected, atol, rtol))
        else:
            results.append(compare_labels(names[0], first, expected, None, atol, rtol))
        if len(names) == 2 and hasattr(model, "decision_function"):
            # A classifier without probabilities (LinearSVC, RidgeClassifier, SGDClassifier's
            # hinge loss) exports its decision scores in their place.
            scores = _scores_as_exported(
                model, _reference(model.decision_function, framework_input)
            )
            if scores is not None:
                results.append(compare_values(names[1], got[names[1]], scores, atol, rtol))
        elif len(names) == 2 and hasattr(model, "transform"):
            # A clusterer's second output (KMeans' "scores") is its transform(): the distances.
            reference = _reference(model.transform, framework_input)
            results.append(compare_values(names[1], got[names[1]], reference, atol, rtol))
    compared = {r.name for r in results}
    unchecked = tuple(n for n in names if n not in compared)
    return ParityReport(atol, rtol, rows, tuple(results), unchecked)


# How skl2onnx lays out decision_function()'s scores where other classifiers export their
# probabilities, for the classifiers whose layout was checked here: a binary one's single
# score per row as one column, or as a pair of columns in either order; several classes as
# decision_function() gives them. Others (OneVsRestClassifier's, say) stay unchecked.
_BINARY_SCORE_LAYOUTS = {
    "LinearSVC": "column",
    "RidgeClassifier": "column",
    "RidgeClassifierCV": "column",
    "SGDClassifier": "negated first",
    "Perceptron": "negated first",
    "SVC": "negated second",
    "NuSVC": "negated second",
}


def _scores_as_exported(model: Any, scores: np.ndarray) -> np.ndarray | None:
    """decision_function()'s ``scores`` in the layout skl2onnx exports them for ``model`` (a
    Pipeline: its last step), or None for a classifier whose layout is not known here."""
    layout = _BINARY_SCORE_LAYOUTS.get(type(_final_estimator(model)).__name__)
    if layout is None or scores.ndim > 2:
        return None
    if scores.ndim == 2:
        return scores
    if layout == "column":
        return scores[:, None]
    pair = (-scores, scores) if layout == "negated first" else (scores, -scores)
    return np.stack(pair, axis=1)


def _reference(method: Any, framework_input: Any) -> np.ndarray:
    """scikit-learn's own answer on the sample, to compare with; its refusal (most estimators
    refuse NaN and infinity) as one error rather than a traceback."""
    try:
        return np.asarray(method(framework_input))
    except Exception as exc:  # estimators raise ValueError, TypeError and more
        raise ExportError(
            f"scikit-learn's {method.__name__}() fails on the sample, so there is nothing to "
            f"compare the export with: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def _describe(step: Any) -> str:
    return f"{type(step).__module__}.{type(step).__qualname__}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and np.isnan(value))
        or (type(value).__name__ == "NAType")
    )
