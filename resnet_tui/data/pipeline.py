"""The tf.data pipelines: standardized, and for training augmented on the fly (pad 4, random crop, flip)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from resnet_tui.data.dataset import Dataset

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf



PAD = 4  # the paper's 4-pixel pad before the random 32x32 crop


def _standardizer(mean: np.ndarray, std: np.ndarray):
    import tensorflow as tf

    scale = tf.constant(1.0 / (255.0 * np.asarray(std, np.float32)), tf.float32)
    shift = tf.constant(np.asarray(mean, np.float32) / np.asarray(std, np.float32), tf.float32)

    def standardize(x):  # (x/255 - mean) / std, folded into one multiply-add
        return tf.cast(x, tf.float32) * scale - shift

    return standardize


def augment_batch(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Pad 4, random 32x32 crop and random horizontal flip, drawn per image.

    ``x`` is a standardized float batch (B, 32, 32, 3); ``seed`` a stateless
    seed of shape (2,). keras.layers.RandomCrop would use one offset for the
    whole batch; here each image gets its own via gathered row/column indices.
    """
    import tensorflow as tf

    # Padding the *standardized* image with zeros pads with the mean colour,
    # as the paper pads its mean-subtracted image (a zero raw pixel would be black).
    padded = tf.pad(x, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]])
    batch = tf.shape(x)[0]
    s_row, s_col, s_flip = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    top = tf.random.stateless_uniform([batch, 1], s_row, 0, 2 * PAD + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([batch, 1], s_col, 0, 2 * PAD + 1, dtype=tf.int32)
    flip = tf.random.stateless_uniform([batch, 1], s_flip) < 0.5
    steps = tf.range(32)[None, :]
    rows = top + steps  # (B, 32) rows of the padded image
    # A horizontal flip of the crop is the same columns read right to left.
    cols = tf.where(flip, left + 31 - steps, left + steps)
    out = tf.gather(padded, rows, axis=1, batch_dims=1)  # (B, 32, 40, 3)
    return tf.gather(out, cols, axis=2, batch_dims=1)  # (B, 32, 32, 3)


def images_per_epoch(count: int, batch_size: int, replicas: int = 1) -> int:
    """How many of ``count`` training images one epoch trains on.

    All of them, unless the epoch's last batch would hold fewer images than
    there are replicas: MirroredStrategy would then hand some replica an empty
    batch, which TensorFlow does not run on every CPU (oneDNN on AVX-512 fails
    in the first batch norm). Those few (< replicas) images then sit out the
    epoch; the order is drawn anew each epoch, so it is different ones each time.
    """
    last = count % batch_size
    return count - last if 0 < last < replicas else count


def make_train_dataset(ds: Dataset, batch_size: int, augment: bool, seed: int,
                       start_epoch: int = 0, replicas: int = 1) -> tf.data.Dataset:
    """Shuffled, standardized and (optionally) augmented training batches.

    Yields (float32 (B, 32, 32, 3), int64 (B,)). Each pass over the dataset
    (Keras' fit starts one per epoch) draws a new order and new augmentation;
    both follow from ``seed`` alone, whatever TensorFlow's global seed is.
    ``replicas``: see :func:`images_per_epoch`.
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    images, labels = tf.constant(ds.x_train), tf.constant(ds.y_train)
    count = len(ds.x_train)
    used = images_per_epoch(count, batch_size, replicas)
    standardize = _standardizer(ds.mean, ds.std)
    # Random ops with fixed seeds inside a dataset function would repeat the
    # same draws every epoch: the randomness comes from one Generator made
    # here, whose state advances as each epoch draws from it.
    generator = tf.random.Generator.from_seed(seed)
    # A resumed run skips the draws of the epochs it already did, so that its
    # later epochs see the same order and crops as an uninterrupted run.
    for _ in range(start_epoch):
        generator.make_seeds(2)

    def one_epoch(_):
        # Runs once per pass, in order, so runs with the same seed match.
        order_seed, augment_seed = tf.unstack(generator.make_seeds(2), axis=1)
        order = tf.argsort(tf.random.stateless_uniform([count], order_seed))  # a uniform permutation
        batches = tf.data.Dataset.from_tensor_slices(order[:used]).batch(batch_size)
        # One stateless seed per batch, so the parallel map below stays reproducible.
        return batches.enumerate().map(
            lambda k, index: (index, tf.random.experimental.stateless_fold_in(augment_seed, k)))

    def load(index, batch_seed):
        # Vectorized over the batch: one gather, one standardize, one augment.
        x = standardize(tf.gather(images, index))
        return (augment_batch(x, batch_seed) if augment else x), tf.gather(labels, index)

    data = tf.data.Dataset.from_tensors(0).flat_map(one_epoch)
    # flat_map hides the length; Keras needs it for steps per epoch and its progress bar.
    data = data.apply(tf.data.experimental.assert_cardinality(-(-used // batch_size)))
    data = data.map(load, num_parallel_calls=autotune).prefetch(autotune)
    # The generator whose state is the position in the seeded sequence of epochs
    # (a distributed fit rewinds it after Keras' build pass: training/distribute.py).
    data.seed_generator = generator
    return data


def make_eval_dataset(x: np.ndarray, y: np.ndarray, ds: Dataset | tuple[np.ndarray, np.ndarray],
                      batch_size: int, replicas: int = 1) -> tf.data.Dataset:
    """Standardized, unaugmented batches in order, for validation and test.

    ``ds`` gives the training statistics: a :class:`Dataset` or a (mean, std) pair.

    With ``replicas`` > 1 (MirroredStrategy; ``batch_size`` a multiple of it)
    every batch must split into non-empty, equal slices: a replica given an
    empty slice fails on some CPUs, and Keras builds the model from the first
    batch's slices averaged elementwise, which needs equal shapes. So the
    ``N`` images are padded with ``P = -N % replicas`` copies of the first one
    (fewer than ``replicas``), making every batch a multiple of ``replicas``,
    and the batches carry sample weights. The results stay exact, equal to a
    single-device evaluation: pads weigh 0 and real images ``c = (N + P) / N``.
    Keras sums each metric's total and count over replicas; accuracy is
    ``sum(w * hit) / sum(w) = c * hits / (c * N)``; the loss of a slice of
    ``b`` images is ``sum(w * xent) / b + L2`` and the loss mean weighs it by
    ``b``, so over all batches it is ``(c * sum(xent) + (N + P) * L2) / (N + P)
    = mean(xent) + L2``. Only float32 rounding of ``c`` differs (~1e-7).
    """
    import tensorflow as tf

    mean, std = (ds.mean, ds.std) if isinstance(ds, Dataset) else ds
    standardize = _standardizer(mean, std)
    images, labels = tf.constant(np.asarray(x, np.uint8)), tf.constant(np.asarray(y, np.int64))
    count = len(x)
    pad = -count % replicas
    # indices: one gather per batch
    columns: tuple[np.ndarray, ...] = (np.concatenate([np.arange(count), np.zeros(pad, np.int64)]),)
    if pad:
        columns += (np.concatenate([np.full(count, (count + pad) / count), np.zeros(pad)]).astype(np.float32),)

    def load(index, *weight):
        return (standardize(tf.gather(images, index)), tf.gather(labels, index), *weight)

    data = tf.data.Dataset.from_tensor_slices(columns).batch(batch_size)
    return data.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
