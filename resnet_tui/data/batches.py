"""The input pipeline of the backend in use, chosen in one place.

TensorFlow trains from tf.data (``pipeline.py``: its MirroredStrategy
distributes those pipelines itself). Any other backend trains from numpy
batches that threads prepare ahead (``host_pipeline.py``), so JAX never
imports TensorFlow. Both draw each epoch's order and augmentation from the
seed and the epoch alone, so a resumed run sees the batches an uninterrupted
one saw (on the same backend: the two draw differently). ``shard=(index, count)``
is this process's slice of every global batch when several processes train one
run (JAX only: on TensorFlow a run has one process).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from resnet_tui import backend
from resnet_tui.data.dataset import Dataset


def train_batches(ds: Dataset, batch_size: int, augment: bool, seed: int, start_epoch: int = 0,
                  replicas: int = 1, shard: tuple[int, int] = (0, 1)) -> Any:
    """Shuffled, standardized, optionally augmented training batches, from epoch ``start_epoch`` on."""
    if backend.on_tensorflow():
        from resnet_tui.data.pipeline import make_train_dataset

        return make_train_dataset(ds, batch_size, augment, seed, start_epoch=start_epoch, replicas=replicas)
    from resnet_tui.data.host_pipeline import TrainBatches

    batches = TrainBatches(ds, batch_size, augment, seed, replicas=replicas, shard=shard)
    batches.set_epoch(start_epoch)
    return batches


def eval_batches(x: np.ndarray, y: np.ndarray, stats: Dataset | tuple[np.ndarray, np.ndarray], batch_size: int,
                 replicas: int = 1, shard: tuple[int, int] = (0, 1)) -> Any:
    """Standardized batches in order, with the training split's statistics (a Dataset or (mean, std))."""
    if backend.on_tensorflow():
        from resnet_tui.data.pipeline import make_eval_dataset

        return make_eval_dataset(x, y, stats, batch_size, replicas)
    from resnet_tui.data.host_pipeline import EvalBatches

    mean, std = (stats.mean, stats.std) if isinstance(stats, Dataset) else stats
    return EvalBatches(x, y, mean, std, batch_size, shard=shard)


def pipeline_callbacks(train: Any) -> list:
    """Callbacks ``fit(train)`` needs: numpy batches learn each epoch's number from one."""
    from resnet_tui.data.host_pipeline import FollowEpoch, TrainBatches

    return [FollowEpoch(train)] if isinstance(train, TrainBatches) else []
