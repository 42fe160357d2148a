"""Datasets for the models, and the tf.data input pipelines that feed them.

Loading (``dispatch_load_dataset``) gives plain uint8 numpy arrays plus the
per-channel statistics of the training split; ``make_train_dataset`` and
``make_eval_dataset`` turn them into standardized (and, for training,
augmented) ``tf.data`` pipelines. TensorFlow is imported only inside the
pipeline builders, so that loading configs and painting the dashboard stay
fast; torch is never imported here (the ``torchvision`` source runs it in a
child process).

Sources (``DATASET.source``):

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

import hashlib
import http.client
import importlib.util
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

    from resnet_tui.config import Config

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_ARCHIVE_BYTES = 170498071  # used for progress when the server sends no Content-Length
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"

LIGHT_TRAIN, LIGHT_VAL, LIGHT_TEST = 1000, 200, 200  # the seed's LIGHT_MODE sizes (val: ours)
SYNTHETIC_MAX_VAL_FRACTION = 0.2
PAD = 4  # the paper's 4-pixel pad before the random 32x32 crop

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


# --------------------------------------------------------------------------- dispatch

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
        (x, y), (x_test, y_test) = _load_cifar10_folder(_ensure_cifar10(data_path, progress))
        (x_tr, y_tr), (x_val, y_val) = _hold_out(x, y, val_count, "the CIFAR-10 training split")
        label, note = "CIFAR-10", ""
    elif source == "torchvision":
        (x, y), (x_test, y_test) = _load_torchvision(data_path, progress)
        (x_tr, y_tr), (x_val, y_val) = _hold_out(x, y, val_count, "the CIFAR-10 training split")
        label, note = "CIFAR-10 via torchvision", ""
    elif source == "npz":
        (x_tr, y_tr), (x_val, y_val), (x_test, y_test), note = _load_npz(data_path, val_count)
        label = f"npz {data_path.name}"
    elif source == "synthetic":
        (x_tr, y_tr), (x_val, y_val), (x_test, y_test) = _make_synthetic(
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


def _hold_out(x: np.ndarray, y: np.ndarray, count: int, what: str):
    """The last ``count`` items become the validation split (the paper's 45k/5k)."""
    if count >= len(x):
        raise DatasetError(f"DATASET.validation_count is {count} but {what} has only {len(x)} images; "
                           f"lower it so some remain for training")
    cut = len(x) - count
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


# --------------------------------------------------------------------------- cifar10

def _ensure_cifar10(data_path: Path, progress: Progress | None) -> Path:
    """The ``cifar-10-batches-py`` folder under ``data_path``, downloading it if absent."""
    folder = data_path / CIFAR10_FOLDER
    if folder.is_dir():
        return folder
    archive = data_path / CIFAR10_ARCHIVE
    if not archive.is_file():
        try:
            data_path.mkdir(parents=True, exist_ok=True)
            _download(CIFAR10_URL, archive, progress)
        except (OSError, http.client.HTTPException) as exc:  # includes URLError and timeouts
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            raise DatasetError(
                f"CIFAR-10 is not in {folder.resolve()} and downloading it failed ({reason}). "
                f"Download {CIFAR10_URL} and put the archive at {archive.resolve()}, "
                f"or its extracted folder at {folder.resolve()}, then start again."
            ) from None
    _check_md5(archive)
    _extract(archive, data_path)
    return folder


def _download(url: str, dest: Path, progress: Progress | None) -> None:
    """Stream ``url`` to ``dest``; the file appears only once complete."""
    partial = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or CIFAR10_ARCHIVE_BYTES)
            done = 0
            if progress is not None:
                progress(done, total)
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)


def _check_md5(archive: Path) -> None:
    digest = hashlib.md5()
    with open(archive, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != CIFAR10_MD5:
        raise DatasetError(f"{archive.resolve()} is corrupt (md5 {digest.hexdigest()}, expected {CIFAR10_MD5}); "
                           f"delete it and start again to download it anew")


def _extract(archive: Path, data_path: Path) -> None:
    """Extract only ``cifar-10-batches-py/`` regular files, refusing odd paths.

    Extracted into a temporary folder first and moved into place at the end,
    so an interrupted extraction never looks like a complete dataset.
    """
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = []
            for m in tar.getmembers():
                parts = Path(m.name).parts
                if m.name.startswith("/") or ".." in parts or not parts or parts[0] != CIFAR10_FOLDER:
                    raise DatasetError(f"{archive.resolve()} holds an unexpected path {m.name!r}; refusing to extract")
                if m.isfile() or m.isdir():
                    members.append(m)
            with tempfile.TemporaryDirectory(dir=data_path, prefix=".extract-") as tmp:
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=members, **kwargs)
                os.replace(Path(tmp) / CIFAR10_FOLDER, data_path / CIFAR10_FOLDER)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DatasetError(f"cannot extract {archive.resolve()}: {exc}; delete it and start again") from None


class _RefusedObject(pickle.UnpicklingError):
    """A pickle naming something other than the numpy pieces of a CIFAR batch."""


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batch format (a dict of lists and numpy arrays) and nothing else.

    A pickle can run any callable it names; these files only need numpy's.
    """

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),  # bytes, in protocol 2
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise _RefusedObject(f"{module}.{name}")
        return super().find_class(module, name)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR batch file -> (images (N, 32, 32, 3) uint8, labels (N,) int64)."""
    if not path.is_file():
        raise DatasetError(f"CIFAR-10 batch file {path.resolve()} is missing; "
                           f"delete {path.parent.resolve()} to download the dataset again")
    what = f"CIFAR-10 batch file {path.resolve()}"
    download_again = f"delete {path.parent.resolve()} to download the dataset again"
    try:
        with open(path, "rb") as f:
            # Written by Python 2: keys come back as bytes.
            entry = _BatchUnpickler(f, encoding="bytes").load()
        data = np.asarray(entry.get(b"data", entry.get("data")))
        labels = np.asarray(entry.get(b"labels", entry.get("labels")), dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (len(data),):
            raise ValueError("unexpected contents")
    except _RefusedObject as exc:
        raise DatasetError(f"{what} holds objects other than the CIFAR arrays ({exc}); it was not loaded "
                           f"(unpickling them could run code); {download_again}") from None
    except Exception as exc:  # truncated, not a pickle, wrong layout: all the same to the user
        raise DatasetError(f"{what} is truncated or corrupt ({exc}); {download_again}") from None
    _check_label_range(what, labels)
    # Rows are 1024 red, then 1024 green, then 1024 blue values, each row-major: CHW -> HWC.
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _load_cifar10_folder(folder: Path):
    parts = [_read_batch(folder / name) for name in CIFAR10_TRAIN_FILES]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return (x, y), _read_batch(folder / CIFAR10_TEST_FILE)


# --------------------------------------------------------------------------- torchvision

# Run in a child process: importing torchvision after TensorFlow crashes the
# process (torch loads triton, whose LLVM clashes with TensorFlow's: a
# segfault), and the training process is better off without torch anyway.
_TORCHVISION_SCRIPT = """
import sys
import numpy as np
try:
    from torchvision.datasets import CIFAR10
except ImportError as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
root, out = sys.argv[1], sys.argv[2]
try:
    train = CIFAR10(root=root, train=True, download=False)
    test = CIFAR10(root=root, train=False, download=False)
except RuntimeError as exc:
    print(exc, file=sys.stderr)
    sys.exit(4)
np.savez(out, x_train=train.data, y_train=np.asarray(train.targets),
         x_test=test.data, y_test=np.asarray(test.targets))
"""
_TORCHVISION_MISSING = ("DATASET.source 'torchvision' needs torchvision, which is not installed: "
                        "pip install 'resnet-tui[torchvision]' (or use DATASET.source 'cifar10', "
                        "which reads the same files without it)")


def _load_torchvision(data_path: Path, progress: Progress | None):
    """The seed's loader, ``torchvision.datasets.CIFAR10``, on the same folder layout.

    The archive is fetched by our own downloader (progress reported, nothing
    printed over the dashboard); torchvision then checks every file's md5.
    """
    if importlib.util.find_spec("torchvision") is None:
        raise DatasetError(_TORCHVISION_MISSING)
    _ensure_cifar10(data_path, progress)
    with tempfile.TemporaryDirectory(prefix="resnet-tui-torchvision-") as tmp:
        out = Path(tmp) / "cifar10.npz"
        result = subprocess.run([sys.executable, "-c", _TORCHVISION_SCRIPT, str(data_path.resolve()), str(out)],
                                capture_output=True, text=True)
        error = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        if result.returncode == 3:
            raise DatasetError(f"{_TORCHVISION_MISSING}; importing it failed: {error}")
        if result.returncode != 0:
            raise DatasetError(f"torchvision could not load CIFAR-10 from {data_path.resolve()}: {error}")
        with np.load(out) as arrays:
            return ((arrays["x_train"], arrays["y_train"].astype(np.int64)),
                    (arrays["x_test"], arrays["y_test"].astype(np.int64)))


# --------------------------------------------------------------------------- npz

NPZ_EXPECTED = ("an .npz file (numpy.savez) with x_train (N, 32, 32, 3) uint8 and y_train (N,) labels 0..9, "
                "optionally x_val/y_val and x_test/y_test")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz file; never unpickles (an object array could run code)."""
    problem = ("does not exist" if not path.exists() else "is a folder" if path.is_dir()
               else None if zipfile.is_zipfile(path) else "is not an .npz archive")
    if problem:
        raise DatasetError(f"DATA_PATH {path.resolve()} {problem}; the npz source needs {NPZ_EXPECTED}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: _npz_array(path, npz, key) for key in npz.files}
    except DatasetError:
        raise
    except Exception as exc:  # a damaged member: bad zip, bad header, short data
        raise DatasetError(f"{path.resolve()} is not a readable .npz file ({exc})") from None


def _npz_array(path: Path, npz, key: str) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):  # not numpy's refusal of an object array
            raise
        raise DatasetError(f"{path.resolve()}: {key} holds Python objects rather than an array of numbers; "
                           f"it was not loaded (unpickling could run code)") from None


def _load_npz(path: Path, val_count: int):
    arrays = _read_npz(path)

    def split(name: str):
        x, y = arrays.get(f"x_{name}"), arrays.get(f"y_{name}")
        if x is None and y is None:
            return None
        if x is None or y is None:
            have, missing = (f"x_{name}", f"y_{name}") if y is None else (f"y_{name}", f"x_{name}")
            raise DatasetError(f"{path.name}: has {have} but no {missing}")
        return _check_images(path.name, f"x_{name}", x), _check_labels(path.name, f"y_{name}", y, len(x))

    train, val, test = split("train"), split("val"), split("test")
    if train is None:
        raise DatasetError(f"{path.name}: has no x_train/y_train (it holds {', '.join(arrays) or 'nothing'})")
    note = ""
    if val is None:
        train, val = _hold_out(*train, val_count, f"{path.name}'s x_train")
    if test is None:
        if len(val[0]) == 0:
            raise DatasetError(f"{path.name}: has no x_test and no validation images to stand in for it; "
                               f"add x_test/y_test or set DATASET.validation_count above 0")
        test, note = val, " (no x_test: test = validation set)"
    return train, val, test, note


def _check_images(file: str, name: str, x: np.ndarray) -> np.ndarray:
    if x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise DatasetError(f"{file}: {name} has shape {x.shape}, expected (N, 32, 32, 3) "
                           f"(channels last)")
    if x.dtype != np.uint8:
        raise DatasetError(f"{file}: {name} has dtype {x.dtype}, expected uint8 pixels 0..255")
    return x


def _check_labels(file: str, name: str, y: np.ndarray, count: int) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:  # Keras' own CIFAR loader gives (N, 1)
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{file}: {name} has shape {y.shape} and dtype {y.dtype}, "
                           f"expected integer class labels of shape (N,)")
    if len(y) != count:
        raise DatasetError(f"{file}: {name} has {len(y)} labels but x_{name[2:]} has {count} images")
    _check_label_range(f"{file}: {name}", y)
    return y.astype(np.int64)


def _check_label_range(what: str, y: np.ndarray) -> None:
    """Every source's labels are CIFAR-10's ten classes (else TensorFlow fails deep in the loss)."""
    if len(y) and (y.min() < 0 or y.max() > len(CIFAR10_CLASSES) - 1):
        raise DatasetError(f"{what} has labels from {y.min()} to {y.max()}, expected 0..9")


# --------------------------------------------------------------------------- synthetic

def _make_synthetic(train_count: int, test_count: int, val_count: int, seed: int):
    """Offline stand-in for CIFAR-10 that a small CNN can learn.

    Each class has its own colour tint and stripe pattern (5 orientations x 2
    frequencies); every image gets a random stripe phase, brightness and pixel
    noise, so the classes overlap a little and learning is not instant.
    """
    n_val = min(val_count, int(train_count * SYNTHETIC_MAX_VAL_FRACTION))
    rng = np.random.default_rng(seed)
    x, y = _synthetic_images(rng, train_count)
    x_test, y_test = _synthetic_images(rng, test_count)
    cut = train_count - n_val
    return (x[:cut], y[:cut]), (x[cut:], y[cut:]), (x_test, y_test)


# Fixed per-class looks (independent of SEED): tints on the [-1, 1] scale.
_TINTS = np.array([[0.6, -0.3, -0.3], [-0.3, 0.6, -0.3], [-0.3, -0.3, 0.6], [0.5, 0.5, -0.5],
                   [0.5, -0.5, 0.5], [-0.5, 0.5, 0.5], [0.3, 0.3, 0.3], [-0.3, -0.3, -0.3],
                   [0.6, 0.1, -0.5], [-0.5, 0.1, 0.6]], dtype=np.float32)
_ANGLES = np.deg2rad(np.arange(10) % 5 * 36.0).astype(np.float32)
_FREQS = np.where(np.arange(10) < 5, 2.0, 4.0).astype(np.float32)  # cycles per image


def _synthetic_images(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 10, size=count).astype(np.int64)
    grid = np.arange(32, dtype=np.float32) / 32.0
    rows, cols = np.meshgrid(grid, grid, indexing="ij")
    x = np.empty((count, 32, 32, 3), np.uint8)
    for start in range(0, count, 1024):  # in chunks to bound the float temporaries
        yc = y[start:start + 1024]
        n = len(yc)
        angle, freq = _ANGLES[yc][:, None, None], _FREQS[yc][:, None, None]
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1)).astype(np.float32)
        stripes = np.sin(2 * np.pi * freq * (cols * np.cos(angle) + rows * np.sin(angle)) + phase)
        brightness = rng.uniform(-30, 30, size=(n, 1, 1, 1)).astype(np.float32)
        img = (128 + brightness + 20 * _TINTS[yc][:, None, None, :] + 30 * stripes[..., None]
               + rng.normal(0, 45, size=(n, 32, 32, 3)).astype(np.float32))
        x[start:start + n] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return x, y


# --------------------------------------------------------------------------- tf.data pipelines

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
    columns = (np.concatenate([np.arange(count), np.zeros(pad, np.int64)]),)  # indices: one gather per batch
    if pad:
        columns += (np.concatenate([np.full(count, (count + pad) / count), np.zeros(pad)]).astype(np.float32),)

    def load(index, *weight):
        return (standardize(tf.gather(images, index)), tf.gather(labels, index), *weight)

    data = tf.data.Dataset.from_tensor_slices(columns).batch(batch_size)
    return data.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
