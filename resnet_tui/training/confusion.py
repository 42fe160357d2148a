"""Where a model fails: the confusion matrix of a split and what follows from it.

Pure numpy, no Keras and no Textual: the trainer and ``resnet-tui evaluate``
build the record from predicted labels; ``show`` and the dashboard read it back
from result.json (``result["confusion"]``) and render it (report/tables.py).

The record::

    {"split": "test", "images": 10000, "classes": ["airplane", ...],
     "matrix": [[int] * 10] * 10,       # rows: true class, columns: predicted class
     "per_class_accuracy": [float | None] * 10,   # None: no image of that class in the split
     "accuracy": float}

Rates are row-normalized: ``rate[t][p]`` is the share of class ``t``'s images
predicted as ``p``, so "cat → dog 12%" means 12% of the cats were called dogs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from resnet_tui.data.dataset import CIFAR10_CLASSES

CLASS_NAMES = CIFAR10_CLASSES


def confusion_matrix(y_true, y_pred, num_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class."""
    y_true = np.asarray(y_true, np.int64).ravel()
    y_pred = np.asarray(y_pred, np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    for name, y in (("labels", y_true), ("predictions", y_pred)):
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} outside 0..{num_classes - 1}")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def predicted_labels(probabilities, count: int) -> np.ndarray:
    """The predicted class of each of the ``count`` real images.

    ``probabilities`` are the model's outputs over an evaluation pipeline
    (data.make_eval_dataset) in order; with several replicas that pipeline ends
    with fewer than ``replicas`` zero-weight copies of image 0, which are cut off
    here so that they are never counted.
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or len(probabilities) < count:
        raise ValueError(f"expected at least {count} rows of class scores, got shape {probabilities.shape}")
    return probabilities[:count].argmax(axis=1)


def row_rates(matrix) -> np.ndarray:
    """Each row divided by its total (a row with no images stays 0)."""
    matrix = np.asarray(matrix, np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def per_class_accuracy(matrix) -> list[float | None]:
    """The share of each class's images predicted right; None for a class with no image."""
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1)
    return [float(matrix[i, i] / totals[i]) if totals[i] else None for i in range(len(matrix))]


@dataclass(frozen=True)
class Confusion:
    """One off-diagonal cell: ``count`` images of ``true`` were predicted as ``predicted``."""

    true: int
    predicted: int
    count: int
    rate: float  # of the true class's images


def most_confused(matrix, k: int = 3) -> list[Confusion]:
    """The ``k`` largest off-diagonal rates (ties: the larger count, then the first cell), zero cells left out."""
    matrix = np.asarray(matrix)
    rates = row_rates(matrix)
    cells = [Confusion(t, p, int(matrix[t, p]), float(rates[t, p]))
             for t in range(len(matrix)) for p in range(len(matrix)) if t != p and matrix[t, p] > 0]
    cells.sort(key=lambda c: (-c.rate, -c.count, c.true, c.predicted))
    return cells[:k]


def confusion_record(y_true, y_pred, class_names=CLASS_NAMES, split: str = "test") -> dict:
    """The JSON-able record result.json keeps (see the module docstring)."""
    matrix = confusion_matrix(y_true, y_pred, len(class_names))
    images = int(matrix.sum())
    return {"split": split, "images": images, "classes": list(class_names), "matrix": matrix.tolist(),
            "per_class_accuracy": per_class_accuracy(matrix),
            "accuracy": float(np.trace(matrix) / images) if images else None}


def read_record(result: dict | None) -> dict | None:
    """``result["confusion"]`` if it is a well-formed record, else None (a reader must survive any file)."""
    record = (result or {}).get("confusion") if isinstance(result, dict) else None
    if not isinstance(record, dict):
        return None
    try:
        names = [str(n) for n in record["classes"]]
        matrix = np.asarray(record["matrix"], dtype=np.int64)
    except (KeyError, TypeError, ValueError):
        return None
    if matrix.shape != (len(names), len(names)) or not names or (matrix < 0).any():
        return None
    return {**record, "classes": names, "matrix": matrix.tolist(), "per_class_accuracy": per_class_accuracy(matrix),
            "images": int(matrix.sum())}
