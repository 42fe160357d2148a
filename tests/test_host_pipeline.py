"""The numpy input pipeline for backends without tf.data (resnet_tui.data.host_pipeline)."""

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from resnet_tui.data.dataset import Dataset
from resnet_tui.data.host_pipeline import EvalBatches, FollowEpoch, TrainBatches, augment, standardize

ROOT = Path(__file__).resolve().parents[1]
MEAN = np.array([0.49, 0.48, 0.45], np.float32)
STD = np.array([0.25, 0.24, 0.26], np.float32)


def make_dataset(count: int = 300, seed: int = 0, same_image: bool = False) -> Dataset:
    """Noise images (every crop of one is unlike any other) with labels 0..9; or ``count`` copies of one."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (1 if same_image else count, 32, 32, 3), dtype=np.uint8)
    x = np.repeat(x, count, axis=0) if same_image else x
    y = rng.integers(0, 10, count).astype(np.int64)
    return Dataset(x, y, x[:20], y[:20], x[:10], y[:10], MEAN, STD, "test", "noise")


def reference(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float64) / 255.0 - MEAN.astype(np.float64)) / STD.astype(np.float64)


def epoch_batches(tb: TrainBatches, epoch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    tb.set_epoch(epoch)
    return [tb[k] for k in range(len(tb))]


def test_standardize_is_the_float32_standard_score():
    x = make_dataset(50).x_train
    out = standardize(x, MEAN, STD)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, reference(x), rtol=0, atol=1e-6)


def test_without_augmentation_an_epoch_is_every_image_once_in_a_new_order():
    ds = make_dataset(300)
    tb = TrainBatches(ds, batch_size=64, augment=False, seed=7)
    assert len(tb) == 5  # 4 of 64 and one of 44
    batches = epoch_batches(tb, 2)
    assert [len(y) for _, y in batches] == [64, 64, 64, 64, 44]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    assert x.dtype == np.float32 and x.shape == (300, 32, 32, 3) and y.dtype == np.int64
    # Every image once: each standardized image is image order[i], with its label.
    order = tb.order(2)
    assert sorted(order) == list(range(300)) and list(order) != list(range(300))
    np.testing.assert_allclose(x, reference(ds.x_train[order]), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(y, ds.y_train[order])
    with pytest.raises(IndexError):
        tb[5]


def test_an_epoch_leaves_out_the_images_a_replica_would_miss():
    # 301 images in batches of 100 on 2 replicas: a last batch of 1 would leave one replica empty.
    tb = TrainBatches(make_dataset(301), batch_size=100, augment=False, seed=1, replicas=2)
    assert tb.used == 300 and len(tb) == 3
    assert sum(len(y) for _, y in epoch_batches(tb, 0)) == 300


def test_a_batch_follows_from_seed_and_epoch_alone():
    ds = make_dataset(300)
    through = TrainBatches(ds, 64, augment=True, seed=3)
    for epoch in range(3):  # an uninterrupted run
        epoch_batches(through, epoch)
    resumed = TrainBatches(ds, 64, augment=True, seed=3)
    resumed[2]  # a peek at epoch 0 (Keras reads one batch to build the model)
    resumed.set_epoch(3)
    assert resumed.epoch == 3 and resumed.seed == 3
    backwards = [resumed[k] for k in reversed(range(len(resumed)))]  # read in any order
    for (xa, ya), (xb, yb) in zip(epoch_batches(through, 3), backwards[::-1]):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    # A different epoch or seed: a different order.
    assert not np.array_equal(through.order(3), through.order(4))
    assert not np.array_equal(through.order(3), TrainBatches(ds, 64, augment=True, seed=4).order(3))
    assert not np.array_equal(epoch_batches(through, 3)[0][0],
                              epoch_batches(TrainBatches(ds, 64, augment=True, seed=4), 3)[0][0])


def test_crops_and_flips_differ_by_epoch_and_batch():
    # All images alike, so the order cannot tell batches apart: only the crops and flips can.
    tb = TrainBatches(make_dataset(128, same_image=True), 32, augment=True, seed=3, workers=0)
    epoch3, epoch4 = epoch_batches(tb, 3), epoch_batches(tb, 4)
    assert not np.array_equal(epoch3[0][0], epoch4[0][0])
    assert not np.array_equal(epoch3[0][0], epoch3[1][0])
    tb.set_epoch(3)
    np.testing.assert_array_equal(tb[0][0], epoch3[0][0])


def crop_and_flip(source: np.ndarray, image: np.ndarray) -> list[tuple[int, int, bool]]:
    """Every (top, left, flipped) whose crop of the zero-padded ``source`` is ``image``."""
    padded = np.pad(source, ((4, 4), (4, 4), (0, 0)))
    found = []
    for top in range(9):
        for left in range(9):
            crop = padded[top:top + 32, left:left + 32]
            found += [(top, left, flipped) for flipped, candidate in ((False, crop), (True, crop[:, ::-1]))
                      if np.array_equal(candidate, image)]
    return found


def test_each_augmented_image_is_a_padded_crop_of_its_source_maybe_flipped():
    ds = make_dataset(300)
    tb = TrainBatches(ds, 64, augment=True, seed=11)
    batches = epoch_batches(tb, 1)
    images = np.concatenate([b[0] for b in batches])
    assert images.dtype == np.float32 and images.shape == (300, 32, 32, 3)
    sources = standardize(ds.x_train, MEAN, STD)[tb.order(1)]
    draws = []
    for source, image in zip(sources, images):
        found = crop_and_flip(source, image)
        assert len(found) == 1, found
        draws += found
    tops, lefts, flips = zip(*draws)
    assert len(set(tops)) >= 5 and len(set(lefts)) >= 5 and {0, 8} <= set(tops) | set(lefts)
    assert 0.35 <= np.mean(flips) <= 0.65


def test_augment_alone_is_repeatable_and_returns_its_own_array():
    x = standardize(make_dataset(200).x_train, MEAN, STD)
    out = augment(x, np.random.default_rng(0))
    assert out.dtype == np.float32 and out.shape == x.shape
    # At most 4 rows and 4 columns of a crop are padding (zeros): under 25% of it.
    assert np.all((out == 0).mean(axis=(1, 2, 3)) < 0.25)
    kept = out.copy()
    augment(x[::-1], np.random.default_rng(1))
    np.testing.assert_array_equal(out, kept)  # a later call does not write over an earlier result
    np.testing.assert_array_equal(augment(x, np.random.default_rng(0)), out)


def test_read_ahead_never_serves_another_epochs_batch():
    ds = make_dataset(300)
    tb = TrainBatches(ds, 32, augment=True, seed=5, workers=2, ahead=4)
    tb[0]  # epoch 0's batches 1..4 start being made ahead
    tb.set_epoch(1)
    plain = TrainBatches(ds, 32, augment=True, seed=5, workers=0)
    plain.set_epoch(1)
    for k in (1, 2, 3, 4, 5):
        np.testing.assert_array_equal(tb[k][0], plain[k][0])
    tb.close()
    np.testing.assert_array_equal(tb[6][0], plain[6][0])  # threads start again after close


def test_the_shards_of_a_batch_are_its_rows_cropped_and_flipped_as_in_the_whole_batch():
    """Several processes each read one shard of every global batch: together, exactly the one-process
    batches (the last, 300 - 4 * 64 = 44 images, splits in 4 too)."""
    ds = make_dataset(300)
    whole = TrainBatches(ds, 64, augment=True, seed=3, workers=0)
    shards = [TrainBatches(ds, 64, augment=True, seed=3, shard=(i, 4)) for i in range(4)]
    for epoch in (0, 2):
        for tb in [whole, *shards]:
            tb.set_epoch(epoch)
        for k in range(len(whole)):
            x, y = whole[k]
            parts = [tb[k] for tb in shards]
            assert [len(py) for _, py in parts] == [len(y) // 4] * 4
            np.testing.assert_array_equal(np.concatenate([px for px, _ in parts]), x)
            np.testing.assert_array_equal(np.concatenate([py for _, py in parts]), y)
    evaluated = EvalBatches(ds.x_train, ds.y_train, MEAN, STD, batch_size=64)
    halves = [EvalBatches(ds.x_train, ds.y_train, MEAN, STD, batch_size=64, shard=(i, 2)) for i in range(2)]
    for k in range(len(evaluated)):
        np.testing.assert_array_equal(np.concatenate([eb[k][0] for eb in halves]), evaluated[k][0])
        np.testing.assert_array_equal(np.concatenate([eb[k][1] for eb in halves]), evaluated[k][1])
    with pytest.raises(ValueError, match="a batch of 44 images does not split evenly into 3 shards"):
        TrainBatches(ds, 64, augment=False, seed=3, shard=(0, 3), workers=0)[4]
    with pytest.raises(ValueError, match="there is no shard 2 of 2"):
        EvalBatches(ds.x_train, ds.y_train, MEAN, STD, batch_size=64, shard=(2, 2))


def test_eval_batches_are_standardized_in_order_with_a_partial_last():
    ds = make_dataset(100)
    eb = EvalBatches(ds.x_train, ds.y_train, MEAN, STD, batch_size=32)
    assert len(eb) == 4
    batches = [eb[k] for k in range(len(eb))]
    assert [len(y) for _, y in batches] == [32, 32, 32, 4]
    np.testing.assert_allclose(np.concatenate([b[0] for b in batches]), reference(ds.x_train), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), ds.y_train)


def fit_and_record(dataset: Dataset, initial_epoch: int = 1, epochs: int = 3) -> tuple[list[int], int, bool]:
    """Fits a tiny model on TrainBatches with FollowEpoch, recording at each step the dataset's
    epoch and the batch the model trains on: (epochs seen, steps per epoch, whether those batches
    were each epoch's batches 0, 1, ... in order). The no-TensorFlow test runs it on JAX too."""
    batches = TrainBatches(dataset, 64, augment=True, seed=9)
    reference = TrainBatches(dataset, 64, augment=True, seed=9, workers=0)
    epochs_seen: list[int] = []
    trained_on: list[np.ndarray] = []

    class Recording(keras.Model):
        def train_step(self, *args):  # (data) on TensorFlow and torch, (state, data) on JAX
            trained_on.append(keras.ops.convert_to_numpy(args[-1][0]).copy())
            return super().train_step(*args)

    class EpochAtEachBatch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            epochs_seen.append(batches.epoch)

    inputs = keras.Input((32, 32, 3))
    model = Recording(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(inputs)))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=True)
    model.fit(batches, initial_epoch=initial_epoch, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[FollowEpoch(batches), EpochAtEachBatch()])
    expected = []
    for epoch in range(initial_epoch, epochs):
        reference.set_epoch(epoch)
        expected += [reference[k][0] for k in range(len(reference))]
    same = len(trained_on) == len(expected) and all(np.array_equal(a, b) for a, b in zip(trained_on, expected))
    return epochs_seen, len(batches), same


def test_follow_epoch_sets_keras_epochs_and_the_model_trains_on_their_batches():
    epochs_seen, steps, same = fit_and_record(make_dataset(300))
    assert steps == 5
    assert epochs_seen == [1] * 5 + [2] * 5
    assert same, "the model trained on other batches than each epoch's, in order"


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX, the backend this module is for, is not "
                    "installed (the JAX lane, make test-jax, has it)")
def test_the_module_and_a_fit_on_it_never_import_tensorflow():
    backend = "jax"
    # As the JAX trainer feeds the model (Keras' own prefetch failed there, not on TensorFlow).
    script = textwrap.dedent(f"""
        import sys
        import resnet_tui.data.host_pipeline
        assert "tensorflow" not in sys.modules, "importing the module imported TensorFlow"
        import keras
        assert keras.backend.backend() == {backend!r}, keras.backend.backend()
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from test_host_pipeline import fit_and_record, make_dataset
        epochs_seen, steps, same = fit_and_record(make_dataset(300))
        assert epochs_seen == [1] * steps + [2] * steps, epochs_seen
        assert same, "the model trained on other batches than each epoch's, in order"
        assert "tensorflow" not in sys.modules, "a fit imported TensorFlow"
        print("ok")
    """)
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
