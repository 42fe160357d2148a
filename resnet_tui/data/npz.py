"""An .npz file of uint8 images and labels, checked array by array."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from resnet_tui.data.dataset import DatasetError, check_label_range, hold_out

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


def load_npz(path: Path, val_count: int):
    arrays = _read_npz(path)

    def split(name: str) -> tuple[np.ndarray, np.ndarray] | None:
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
        train, val = hold_out(*train, val_count, f"{path.name}'s x_train")
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
    check_label_range(f"{file}: {name}", y)
    return y.astype(np.int64)
