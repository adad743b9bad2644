"""The PyTorch MLP family: scikit-learn preprocessing, then a torch MLP.

The preprocessing is the same ColumnTransformer the scikit-learn families use (fitted here on
the training split); the MLP takes its float32 output. For export, the two halves become one
ONNX graph (:func:`engine.training.export_torch.export_tabular_torch`), so serving takes raw
columns, strings included, like every other family.

Classification modules return ``(label, probabilities)``: int64 class index and softmax.
Regression modules return ``variable`` ``[rows, 1]``; the target is standardised for
training and the module un-standardises it, so outputs are in the target's own units.
Training is seeded (``torch.manual_seed`` and a seeded shuffle) and single-threaded, so two
runs with the same seed give the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from engine.training.datasets import TabularDataset
from engine.training.families import build_preprocessor

__all__ = ["TorchTabularModel", "TorchTrainParams", "build_mlp", "train_torch_mlp"]


@dataclass(frozen=True)
class TorchTrainParams:
    hidden: tuple[int, ...] = (32, 16)
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; was {getattr(self, name)!r}")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden must list layer widths >= 1; was {self.hidden!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "hidden": list(self.hidden),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
        }


def build_mlp(
    n_features: int,
    n_outputs: int,
    task: str,
    hidden: tuple[int, ...],
    target_mean: float = 0.0,
    target_std: float = 1.0,
) -> Any:
    """An untrained MLP module for ``task`` (see the module docstring for its outputs)."""
    import torch
    from torch import nn

    class TabularMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            width = n_features
            for size in hidden:
                layers += [nn.Linear(width, size), nn.ReLU()]
                width = size
            layers.append(nn.Linear(width, n_outputs))
            self.layers = nn.Sequential(*layers)
            self.classify = task == "classification"
            self.register_buffer("target_mean", torch.tensor(target_mean, dtype=torch.float32))
            self.register_buffer("target_std", torch.tensor(target_std, dtype=torch.float32))

        def logits(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.layers(x)
            return out

        def forward(self, x: torch.Tensor) -> Any:
            out = self.layers(x)
            if self.classify:
                probabilities = torch.softmax(out, dim=1)
                return torch.argmax(probabilities, dim=1), probabilities
            return out * self.target_std + self.target_mean

    return TabularMLP()


@dataclass
class TorchTabularModel:
    """A fitted preprocessor and MLP; ``classes`` maps label index -> class (classification)."""

    preprocessor: Any
    module: Any
    task: str
    classes: np.ndarray | None

    def features(self, frame: Any) -> np.ndarray:
        return np.asarray(self.preprocessor.transform(frame), dtype=np.float32)

    def forward(self, frame: Any) -> tuple[np.ndarray, ...]:
        """The module's outputs on ``frame`` as numpy arrays, in output order."""
        import torch

        with torch.no_grad():
            out = self.module(torch.from_numpy(self.features(frame)))
        outs = out if isinstance(out, tuple) else (out,)
        return tuple(o.numpy() for o in outs)

    def predict_proba(self, frame: Any) -> np.ndarray:
        return self.forward(frame)[1]

    def predict(self, frame: Any) -> np.ndarray:
        if self.task == "classification":
            assert self.classes is not None
            labels: np.ndarray = self.classes[self.forward(frame)[0]]
            return labels
        return self.forward(frame)[0].reshape(-1)


def train_torch_mlp(
    data: TabularDataset, seed: int, params: TorchTrainParams | None = None
) -> TorchTabularModel:
    """Fit the preprocessor and train the MLP on ``data`` with Adam, seeded."""
    import torch
    from torch import nn

    params = params or TorchTrainParams()
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-for-bit repeatable runs; the demo sizes do not need more
    try:
        preprocessor = build_preprocessor(data.numeric, data.categorical).fit(data.features)
        x = torch.from_numpy(np.asarray(preprocessor.transform(data.features), dtype=np.float32))
        classes: np.ndarray | None = None
        if data.task == "classification":
            classes, codes = np.unique(data.target, return_inverse=True)
            y = torch.from_numpy(codes.astype(np.int64))
            module = build_mlp(x.shape[1], len(classes), data.task, params.hidden)
            loss_fn: nn.Module = nn.CrossEntropyLoss()
        else:
            target = data.target.astype(np.float64)
            mean, std = float(target.mean()), float(target.std() or 1.0)
            y = torch.from_numpy(((target - mean) / std).astype(np.float32)).reshape(-1, 1)
            module = build_mlp(x.shape[1], 1, data.task, params.hidden, mean, std)
            loss_fn = nn.MSELoss()
        optimizer = torch.optim.Adam(
            module.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
        )
        order = np.random.default_rng(seed)
        module.train()
        for _ in range(params.epochs):
            perm = torch.from_numpy(order.permutation(len(y)))
            for start in range(0, len(y), params.batch_size):
                rows = perm[start : start + params.batch_size]
                optimizer.zero_grad()
                loss = loss_fn(module.logits(x[rows]), y[rows])
                loss.backward()
                optimizer.step()
        module.eval()
    finally:
        torch.set_num_threads(threads)
    return TorchTabularModel(preprocessor, module, data.task, classes)
