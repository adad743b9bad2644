"""Training pipelines and exporters: tabular data -> scikit-learn or PyTorch -> validated ONNX.

Installed as ``engine.training`` (scikit-build-core maps the repository's ``training/`` folder
into the ``engine`` package). One module per job:

- :mod:`~engine.training.datasets`   tabular datasets (shipped or synthetic, fixed seed), split
- :mod:`~engine.training.families`   scikit-learn model families behind one preprocessing step
- :mod:`~engine.training.torch_mlp`  the PyTorch MLP family (imports torch lazily)
- :mod:`~engine.training.metrics`    evaluation metrics per task
- :mod:`~engine.training.profile`    the reference profile of the training data (for drift)
- :mod:`~engine.training.samples`    reading ``--sample`` files (.npy, .npz, .csv, .parquet)
- :mod:`~engine.training.export_sklearn` / :mod:`~engine.training.export_torch`  to ONNX
- :mod:`~engine.training.validate`   checker, load in the engine, numeric parity
- :mod:`~engine.training.lineage`    lineage and registration in the registry
- :mod:`~engine.training.examples`   the ``engine train EXAMPLE`` end-to-end runs

Heavy dependencies (scikit-learn, skl2onnx, torch) are imported by the modules that need them,
so importing this package stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []
