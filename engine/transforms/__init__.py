"""Feature transforms: fit a spec from training data, apply it, export it to ONNX.

::

    spec = engine.transforms.fit(df, {"age": [{"op": "impute", "strategy": "median"},
                                              {"op": "standardize"}],
                                      "city": [{"op": "vocabulary", "max_tokens": 100}]})
    x = engine.transforms.apply(spec, df)        # C++ core: float32 [rows, spec.width]
    x = engine.transforms.apply_reference(spec, df)          # numpy oracle, same result
    engine.transforms.merge_with_model(spec, "model.onnx", "model_with_transforms.onnx")

The spec format and its exact semantics are documented in :mod:`engine.transforms.spec`.
"""

from engine.transforms.fit import fit
from engine.transforms.native import NativeTransform, apply, compile_native
from engine.transforms.onnx_export import merge_with_model, to_onnx
from engine.transforms.reference import apply_reference
from engine.transforms.spec import SCHEMA_VERSION, TransformSpec

__all__ = [
    "SCHEMA_VERSION",
    "NativeTransform",
    "TransformSpec",
    "apply",
    "apply_reference",
    "compile_native",
    "fit",
    "merge_with_model",
    "to_onnx",
]
