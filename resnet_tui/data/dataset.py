"""What every data source returns: a Dataset of uint8 images, its classes and statistics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

Progress = Callable[[int, int], None]


class DatasetError(Exception):
    """A dataset that cannot be loaded; ``str()`` is one message fit for a user."""


@dataclass
class Dataset:
    """Images as uint8 (N, 32, 32, 3), labels as int64 (N,).

    ``mean`` and ``std`` are float32 (3,), per channel on the [0, 1] scale, from
    the training split only (what the model trains on, LIGHT_MODE included).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    source: str
    description: str
    class_names: tuple[str, ...] = CIFAR10_CLASSES

    def stats(self) -> dict[str, list[float]]:
        """The standardization statistics as plain floats, for a run's record."""
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of uint8 images, on the [0, 1] scale.

    Counted with a 256-bin histogram per channel: exact, and without the
    float copy of the whole training set that ``x.std()`` would make.
    """
    if len(x) == 0:
        raise DatasetError("the training split is empty")
    values = np.arange(256, dtype=np.float64) / 255.0
    mean, std = np.empty(3, np.float32), np.empty(3, np.float32)
    for c in range(3):
        counts = np.bincount(x[..., c].ravel(), minlength=256).astype(np.float64)
        m = (counts @ values) / counts.sum()
        mean[c] = m
        std[c] = np.sqrt((counts @ (values - m) ** 2) / counts.sum())
    if np.any(std == 0):
        raise DatasetError("the training images have a channel with zero variance; cannot standardize")
    return mean, std


def hold_out(x: np.ndarray, y: np.ndarray, count: int, what: str):
    """The last ``count`` items become the validation split (the paper's 45k/5k)."""
    if count >= len(x):
        raise DatasetError(f"DATASET.validation_count is {count} but {what} has only {len(x)} images; "
                           f"lower it so some remain for training")
    cut = len(x) - count
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def check_label_range(what: str, y: np.ndarray) -> None:
    """Every source's labels are CIFAR-10's ten classes (else TensorFlow fails deep in the loss)."""
    if len(y) and (y.min() < 0 or y.max() > len(CIFAR10_CLASSES) - 1):
        raise DatasetError(f"{what} has labels from {y.min()} to {y.max()}, expected 0..9")
