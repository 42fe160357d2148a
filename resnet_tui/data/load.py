"""Load the dataset a model trains on, from the source its config names (``DATASET.source``).

- ``cifar10``: the python pickle batches in ``DATA_PATH/cifar-10-batches-py``,
  downloaded and md5-checked when absent.
- ``npz``: ``DATA_PATH`` is an .npz file with ``x_train``/``y_train`` and
  optionally ``x_val``/``y_val`` and ``x_test``/``y_test``.
- ``synthetic``: offline, deterministic, learnable images (class tint plus
  oriented stripes plus noise) for demos and tests.
- ``torchvision``: the seed's loader, ``torchvision.datasets.CIFAR10``, on
  the same folder (needs the ``torchvision`` extra).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from resnet_tui.data.cifar10 import ensure_cifar10, load_cifar10_folder
from resnet_tui.data.dataset import Dataset, DatasetError, Progress, channel_stats, hold_out
from resnet_tui.data.npz import load_npz
from resnet_tui.data.synthetic import make_synthetic
from resnet_tui.data.torchvision_source import load_torchvision

if TYPE_CHECKING:  # pragma: no cover

    from resnet_tui.config import Config


LIGHT_TRAIN, LIGHT_VAL, LIGHT_TEST = 1000, 200, 200  # the seed's LIGHT_MODE sizes (val: ours)


def dispatch_load_dataset(model_number: int, config: Config, progress: Progress | None = None) -> Dataset:
    """Load the dataset model ``model_number`` trains on, as ``config`` says.

    ``progress(done_bytes, total_bytes)`` is called while CIFAR-10 downloads.
    Every failure is a :class:`DatasetError` with a message for the user.
    """
    from resnet_tui.registry import UnknownModelError, model_spec

    try:
        load = model_spec(model_number).load_function()
    except UnknownModelError as exc:
        raise DatasetError(str(exc)) from None
    return load(config, progress)


def load_dataset_m8(config: Config, progress: Progress | None = None) -> Dataset:
    """CIFAR-10 (or a stand-in) for ResNet-20, split 45k/5k/10k as in the paper."""
    source = config.get("DATASET.source")
    val_count = int(config.get("DATASET.validation_count"))
    data_path = Path(os.path.expanduser(str(config.DATA_PATH)))

    if source == "cifar10":
        (x, y), (x_test, y_test) = load_cifar10_folder(ensure_cifar10(data_path, progress))
        (x_tr, y_tr), (x_val, y_val) = hold_out(x, y, val_count, "the CIFAR-10 training split")
        label, note = "CIFAR-10", ""
    elif source == "torchvision":
        (x, y), (x_test, y_test) = load_torchvision(data_path, progress)
        (x_tr, y_tr), (x_val, y_val) = hold_out(x, y, val_count, "the CIFAR-10 training split")
        label, note = "CIFAR-10 via torchvision", ""
    elif source == "npz":
        (x_tr, y_tr), (x_val, y_val), (x_test, y_test), note = load_npz(data_path, val_count)
        label = f"npz {data_path.name}"
    elif source == "synthetic":
        (x_tr, y_tr), (x_val, y_val), (x_test, y_test) = make_synthetic(
            int(config.get("DATASET.synthetic_train_count")),
            int(config.get("DATASET.synthetic_test_count")), val_count, int(config.SEED))
        label, note = f"Synthetic (seed {config.SEED})", ""
    else:
        raise DatasetError(f"unknown DATASET.source {source!r}; expected cifar10, npz, synthetic or torchvision")

    if config.LIGHT_MODE:
        # Copies: a slice would keep the whole loaded array alive.
        x_tr, y_tr = x_tr[:LIGHT_TRAIN].copy(), y_tr[:LIGHT_TRAIN].copy()
        x_val, y_val = x_val[:LIGHT_VAL].copy(), y_val[:LIGHT_VAL].copy()
        x_test, y_test = x_test[:LIGHT_TEST].copy(), y_test[:LIGHT_TEST].copy()
        note += " (LIGHT_MODE)"

    x_tr, x_val, x_test = (np.ascontiguousarray(a, dtype=np.uint8) for a in (x_tr, x_val, x_test))
    y_tr, y_val, y_test = (np.ascontiguousarray(a, dtype=np.int64) for a in (y_tr, y_val, y_test))
    mean, std = channel_stats(x_tr)
    description = f"{label}: {len(x_tr)} train / {len(x_val)} val / {len(x_test)} test{note}"
    return Dataset(x_tr, y_tr, x_val, y_val, x_test, y_test, mean, std, source, description)
