"""CIFAR-10's python pickle batches: downloaded and md5-checked when absent, read without running pickled code."""

from __future__ import annotations

import hashlib
import http.client
import os
import pickle
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from resnet_tui.data.dataset import DatasetError, Progress, check_label_range

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_ARCHIVE_BYTES = 170498071  # used for progress when the server sends no Content-Length
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"


def ensure_cifar10(data_path: Path, progress: Progress | None) -> Path:
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
                kwargs: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
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
    check_label_range(what, labels)
    # Rows are 1024 red, then 1024 green, then 1024 blue values, each row-major: CHW -> HWC.
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def load_cifar10_folder(folder: Path):
    parts = [_read_batch(folder / name) for name in CIFAR10_TRAIN_FILES]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return (x, y), _read_batch(folder / CIFAR10_TEST_FILE)


