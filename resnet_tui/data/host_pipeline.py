"""The input pipeline in plain numpy, for Keras backends without tf.data (JAX).

Keras' JAX backend has no tf.data; this module feeds it from the host without
TensorFlow (it must not import it, not even lazily). It does what
:mod:`resnet_tui.data.pipeline` does (standardize; for training a pad-4 random
crop and random flip drawn per image; a new order every epoch), with two
differences:

* Everything random follows from ``(seed, epoch)`` alone, not from a generator
  whose state advances: epoch ``e``'s order comes from
  ``default_rng([seed, e, 0])`` and batch ``k``'s crops and flips from
  ``default_rng([seed, e, 1, k])``. A batch is a pure function of
  ``(epoch, k)``, so a resumed run sees exactly the batches an uninterrupted
  run saw, and extra reads (Keras peeks a batch to build the model) change
  nothing.
* Each batch is made by a few vectorized numpy operations (one gather for the
  crops and flips), served by a :class:`keras.utils.PyDataset` whose worker
  threads prepare the next batches while the model trains on this one (numpy
  releases the GIL while it computes). The threads are this module's own, each
  batch kept under its (epoch, index): Keras' own PyDataset prefetch hands
  out stale batches on JAX (see :class:`_ReadAhead`).

With several processes (``shard=(index, count)``: DISTRIBUTE=data_parallel over
processes or machines) each process reads only its rows of every global batch,
the ``index``-th of ``count`` equal slices. The global batch's order and its
crops and flips are drawn as one process draws them, then cut, so the processes
together train on exactly the one-process batches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import keras
import numpy as np

from resnet_tui.data.dataset import Dataset
from resnet_tui.data.pipeline import PAD, images_per_epoch

SIZE = 32  # CIFAR-10's images are SIZE x SIZE x 3
_OFFSETS = 2 * PAD + 1  # crop offsets 0..2*PAD along each axis

Batch = tuple[np.ndarray, np.ndarray]  # (float32 images (B, 32, 32, 3), int64 labels (B,))


def _folded(mean: np.ndarray, std: np.ndarray, image_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) with x * scale - shift == (x/255 - mean) / std, float32 over a flattened image.

    Per channel, repeated over every pixel: numpy's loops then run over whole
    images, not 3 values at a time (7x faster for a batch of 128).
    """
    std = np.asarray(std, np.float64)
    scale = (1.0 / (255.0 * std)).astype(np.float32)
    shift = (np.asarray(mean, np.float64) / std).astype(np.float32)
    repeat = int(np.prod(image_shape)) // scale.size
    return np.tile(scale, repeat), np.tile(shift, repeat)


def _standardize_folded(x: np.ndarray, scale: np.ndarray, shift: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    flat = np.multiply(x.reshape(len(x), scale.size), scale, dtype=np.float32,
                       out=None if out is None else out.reshape(len(x), scale.size))
    flat -= shift
    return flat.reshape(x.shape)


def standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x/255 - mean) / std as float32, folded into one multiply-add (as pipeline.py does).

    ``x``: a uint8 batch (N, ..., C); ``mean``, ``std``: per channel (C,), on the [0, 1] scale.
    """
    return _standardize_folded(x, *_folded(mean, std, x.shape[1:]))


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pad 4, random 32x32 crop and random horizontal flip, drawn per image.

    ``x`` is a standardized float32 batch (B, 32, 32, 3). Padding the
    *standardized* image with zeros pads with the mean colour, as the paper
    pads its mean-subtracted image. From ``rng`` it draws, in this order, the
    row offsets (B,), the column offsets (B,), each 0..8, and the flips (B,),
    each with p = 0.5 (:func:`draw_crops`). One gather does crop and flip
    together: a flipped crop is the same columns read right to left.
    """
    return crop_and_flip(x, *draw_crops(rng, len(x)))


def draw_crops(rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The row offsets, column offsets and flips of ``batch`` images, as :func:`augment` draws them."""
    top = rng.integers(0, _OFFSETS, size=batch)
    left = rng.integers(0, _OFFSETS, size=batch)
    flip = rng.random(batch) < 0.5
    return top, left, flip


def crop_and_flip(x: np.ndarray, top: np.ndarray, left: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Each image of ``x`` padded by 4, cropped at (``top``, ``left``), flipped where ``flip``."""
    batch, channels = len(x), x.shape[-1]
    padded, pixel, _ = _scratch(batch, channels)
    padded[:, PAD:PAD + SIZE, PAD:PAD + SIZE] = x  # the border stays 0
    side = SIZE + 2 * PAD
    steps = np.arange(SIZE)
    rows = top[:, None] + steps  # (B, 32) rows of each padded image
    cols = np.where(flip[:, None], left[:, None] + (SIZE - 1) - steps, left[:, None] + steps)  # (B, 32)
    # Flat pixel index into the (B*40*40, C) view: one take of whole pixels.
    np.add(((np.arange(batch)[:, None] * side + rows) * side)[:, :, None], cols[:, None, :], out=pixel)
    return np.take(padded.reshape(-1, channels), pixel, axis=0)


_scratches = threading.local()


def _scratch(batch: int, channels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's zero-bordered (B, 40, 40, C) float32, (B, 32, 32) index and (B, 32, 32, C) float32 buffers.

    Reused from batch to batch: fresh arrays of a few MB come from mmap, and
    the page faults on their first writes cost more than the work (about 5 ms
    instead of 1.4 ms for an augmented batch of 128 on a 2-core EPYC).
    """
    side = SIZE + 2 * PAD
    padded = getattr(_scratches, "padded", None)
    if padded is None or len(padded) < batch or padded.shape[-1] != channels:
        padded = _scratches.padded = np.zeros((batch, side, side, channels), np.float32)
        _scratches.pixel = np.empty((batch, SIZE, SIZE), np.intp)
        _scratches.standardized = np.empty((batch, SIZE, SIZE, channels), np.float32)
    return padded[:batch], _scratches.pixel[:batch], _scratches.standardized[:batch]


class _ReadAhead:
    """Batches prepared ahead in worker threads, each kept under the key it is a function of.

    Keras' own prefetch (PyDataset ``workers`` > 1) is not used: on the JAX and
    torch backends ``fit`` first reads a batch through it to build the model,
    then stops it, and the batches it had queued meanwhile (made before
    FollowEpoch set the epoch) are handed out first in the first epoch, whose
    own last batches then open the next epoch, and so on (Keras 3.15). Here a
    batch is only ever returned for the key it was asked for; what was made
    ahead for another key is dropped.
    """

    def __init__(self, workers: int, ahead: int):
        self.workers = workers
        self.ahead = ahead
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[Hashable, Future] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[Any], Batch], following: Sequence[Any]) -> Batch:
        """``compute(key)``, made ahead if it was asked for; then starts on ``following``."""
        if self.workers < 1 or self.ahead < 1:
            return compute(key)
        following = following[:self.ahead]
        with self._lock:
            future = self._pending.pop(key, None)
            for other in set(self._pending) - set(following):  # passed, or another epoch's
                self._pending.pop(other).cancel()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="host-pipeline")
            for upcoming in following:
                if upcoming not in self._pending:
                    self._pending[upcoming] = self._pool.submit(compute, upcoming)
        return future.result() if future is not None else compute(key)

    def close(self) -> None:
        """Drops what was made ahead and ends the threads (a later ``get`` starts new ones)."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._pending.clear()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class TrainBatches(keras.utils.PyDataset):
    """Shuffled, standardized and (optionally) augmented training batches of ``dataset``.

    Yields (float32 (B, 32, 32, 3), int64 (B,)); the last batch of an epoch may
    be partial. The epoch is set explicitly, by :meth:`set_epoch` or by the
    :class:`FollowEpoch` callback during ``fit``; ``replicas``: see
    :func:`resnet_tui.data.pipeline.images_per_epoch`.

    Call ``fit(..., shuffle=False)``: the order is already drawn per epoch
    from ``seed``, and Keras' default ``shuffle=True`` would reorder the
    batches with Python's global ``random``.

    ``shard=(index, count)``: only the ``index``-th of ``count`` equal slices
    of each global batch of ``batch_size`` (each batch must split evenly: the
    trainer checks), cropped and flipped as in the whole batch.
    """

    # workers=2, ahead=8: the training step (on the accelerator, or on the CPU's
    # other cores) is the bottleneck; an augmented batch of 128 costs about 1 ms of
    # one core, so two threads keep the next batches ready without taking cores from
    # the step, and 8 batches ahead (~1.6 MB each at 128) cover a slow one or a
    # busy core. workers=0: none, each batch is made when Keras asks for it.
    def __init__(self, dataset: Dataset, batch_size: int, augment: bool, seed: int,
                 replicas: int = 1, workers: int = 2, ahead: int = 8, shard: tuple[int, int] = (0, 1)):
        # Keras' workers=1: its training loop asks for the batches one by one, in
        # order, and _ReadAhead prepares the next ones (why not Keras' prefetch: see there).
        super().__init__(workers=1, use_multiprocessing=False)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.images = dataset.x_train
        self.labels = np.asarray(dataset.y_train, np.int64)
        self.batch_size = batch_size
        self.augment = augment
        self.seed = seed
        self.shard = _checked_shard(shard)
        self.count = len(self.images)
        self.used = images_per_epoch(self.count, batch_size, replicas)
        self._scale, self._shift = _folded(dataset.mean, dataset.std, self.images.shape[1:])
        self._read_ahead = _ReadAhead(workers, ahead)
        # (epoch, its order): one tuple, replaced whole, so no reader sees one
        # epoch's number with another's order.
        self._state = (0, self.order(0))

    @property
    def epoch(self) -> int:
        return self._state[0]

    def order(self, epoch: int) -> np.ndarray:
        """The image indices epoch ``epoch`` trains on, in order (``used`` of them)."""
        return np.random.default_rng([self.seed, epoch, 0]).permutation(self.count)[:self.used]

    def set_epoch(self, epoch: int) -> None:
        """Batches from now on are those of ``epoch`` (0-based, Keras' epoch index)."""
        if epoch != self._state[0]:
            self._state = (epoch, self.order(epoch))

    def __len__(self) -> int:
        return -(-self.used // self.batch_size)

    def __getitem__(self, index: int) -> Batch:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        epoch, order = self._state

        def compute(key: tuple[int, int]) -> Batch:
            k = key[1]
            whole = order[k * self.batch_size:(k + 1) * self.batch_size]  # the global batch
            rows = shard_rows(len(whole), self.shard)
            chosen = whole[rows]
            images = self.images[chosen]
            if not self.augment:
                return _standardize_folded(images, self._scale, self._shift), self.labels[chosen]
            # crop_and_flip copies the standardized batch out, so it can go to this thread's scratch
            scratch = _scratch(len(images), images.shape[-1])[2]
            standardized = _standardize_folded(images, self._scale, self._shift, out=scratch)
            top, left, flip = draw_crops(np.random.default_rng([self.seed, epoch, 1, k]), len(whole))
            return crop_and_flip(standardized, top[rows], left[rows], flip[rows]), self.labels[chosen]

        following = [(epoch, k) for k in range(index + 1, min(index + 1 + self._read_ahead.ahead, len(self)))]
        return self._read_ahead.get((epoch, index), compute, following)

    def close(self) -> None:
        """Ends the read-ahead threads (they start again if more batches are read)."""
        self._read_ahead.close()


def _checked_shard(shard: tuple[int, int]) -> tuple[int, int]:
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"there is no shard {index} of {count}")
    return index, count


def shard_rows(batch: int, shard: tuple[int, int]) -> slice:
    """The rows of a global batch of ``batch`` images that shard ``(index, count)`` reads."""
    index, count = shard
    if batch % count:
        raise ValueError(f"a batch of {batch} images does not split evenly into {count} shards")
    size = batch // count
    return slice(index * size, (index + 1) * size)


class FollowEpoch(keras.callbacks.Callback):
    """Sets a :class:`TrainBatches`' epoch at the start of each of ``fit``'s epochs.

    Keras passes the absolute epoch index (``initial_epoch`` onwards), so a
    resumed fit draws the epochs it resumes at.
    """

    def __init__(self, dataset: TrainBatches):
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch, logs=None):
        self.dataset.set_epoch(epoch)


class EvalBatches(keras.utils.PyDataset):
    """Standardized, unaugmented batches of ``x``, ``y`` in order (the last may be partial).

    ``mean`` and ``std`` are the training split's statistics; ``workers``,
    ``ahead`` and ``shard`` as for :class:`TrainBatches`.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, mean: np.ndarray, std: np.ndarray, batch_size: int,
                 workers: int = 2, ahead: int = 8, shard: tuple[int, int] = (0, 1)):
        super().__init__(workers=1, use_multiprocessing=False)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.images = x
        self.labels = np.asarray(y, np.int64)
        self.batch_size = batch_size
        self.shard = _checked_shard(shard)
        self._scale, self._shift = _folded(mean, std, x.shape[1:])
        self._read_ahead = _ReadAhead(workers, ahead)

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def _compute(self, index: int) -> Batch:
        start = index * self.batch_size
        rows = shard_rows(min(self.batch_size, len(self.images) - start), self.shard)
        part = slice(start + rows.start, start + rows.stop)
        return _standardize_folded(self.images[part], self._scale, self._shift), self.labels[part]

    def __getitem__(self, index: int) -> Batch:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        following = list(range(index + 1, min(index + 1 + self._read_ahead.ahead, len(self))))
        return self._read_ahead.get(index, self._compute, following)

    def close(self) -> None:
        """Ends the read-ahead threads (they start again if more batches are read)."""
        self._read_ahead.close()
