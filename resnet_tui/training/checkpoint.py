"""Full training state at every epoch end, so a killed run can be resumed.

Modelled on Keras' BackupAndRestore (weights + optimizer state + where we
were), with the pieces it lacks for this project: the iteration count (the
step schedule and the 64k cap are counted in iterations), the best validation
accuracy so far (a resumed ``ModelCheckpoint(save_best_only=True)`` would
otherwise forget it and overwrite a better ``best.weights.h5``), and the
elapsed training time, and the counters of Keras' own epoch-end callbacks
(EarlyStopping, ReduceLROnPlateau), which reset themselves at the start of
every ``fit``.

Crash safety: the weights go to a file named by epoch (written under a
temporary name, then renamed), then ``state.json`` (the commit point) is
replaced atomically to point at it, then older weight files are removed. A
kill at any moment leaves a state.json whose weights file exists and is
whole. A full disk is caught before h5py meets it (:class:`EnoughSpace`):
h5py leaves a partial file there and can crash the process in its cleanup.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np

from resnet_tui.store.atomic import write_atomic, write_json_atomic
from resnet_tui.store.layout import STATE_FILE
from resnet_tui.store.runs import StorageError
from resnet_tui.store.state import TrainingState
from resnet_tui.training.callbacks import IterationCounter

# What Keras' epoch-end callbacks count across epochs; their on_train_begin resets it all.
COUNTERS = {"early_stopping": ("wait", "best", "best_epoch"),
            "reduce_lr_on_plateau": ("wait", "best", "cooldown_counter")}


class StateCheckpoint(keras.callbacks.Callback):
    """Saves TrainingState at every epoch end (a stop at an epoch's end too).

    Goes last in the callback list, so it saves what the others decided at
    that epoch's end (a learning-rate cut, a patience count). Restores the
    ``counting`` callbacks' counters at the start of a resumed fit, after
    their own ``on_train_begin`` reset them. Skips the save when ``skip_save()``
    says so (the epoch ended on a non-finite loss), so the last good state
    survives. The iteration comes from ``counter``, the training seconds from
    ``elapsed()``.
    """

    def __init__(self, folder: Path, counter: IterationCounter, elapsed: Callable[[], float],
                 skip_save: Callable[[], bool] = lambda: False, best_val_accuracy: float | None = None,
                 best_epoch: int | None = None, counting: dict[str, keras.callbacks.Callback | None] | None = None,
                 resumed: TrainingState | None = None):
        super().__init__()
        self.folder = folder
        self.counter = counter
        self.elapsed = elapsed
        self.skip_save = skip_save
        self.best_val_accuracy = best_val_accuracy  # the best so far, and its epoch: the run's result keeps them
        self.best_epoch = best_epoch
        self.counting = {name: cb for name, cb in (counting or {}).items() if cb is not None}
        self.saved = resumed  # the last state on disk

    def on_train_begin(self, logs=None):
        if self.saved is None:
            return
        for name, callback in self.counting.items():
            counters = self.saved.callbacks.get(name, {})
            for key in COUNTERS[name]:
                if key in counters:
                    setattr(callback, key, counters[key])
            if counters.get("best_weights"):
                with np.load(self.folder / counters["best_weights"]) as saved:
                    callback.best_weights = [saved[f"w{i}"] for i in range(len(saved.files))]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.skip_save():
            return
        val = logs.get("val_accuracy")
        if val is not None and math.isfinite(val) and (self.best_val_accuracy is None or val > self.best_val_accuracy):
            self.best_val_accuracy, self.best_epoch = float(val), epoch + 1
        self.folder.mkdir(parents=True, exist_ok=True)
        weights = f"state-epoch{epoch + 1}.weights.h5"
        write_atomic(self.folder / weights, self.model.save_weights)  # includes the optimizer's state
        state = TrainingState(epoch + 1, self.counter.iteration, self.best_val_accuracy,
                              self.elapsed(), weights, self.best_epoch, self._counters(epoch + 1))
        write_json_atomic(self.folder / STATE_FILE, asdict(state))
        self.saved = state
        keep = {weights, state.callbacks.get("early_stopping", {}).get("best_weights")}
        for old in [*self.folder.glob("state-epoch*.weights.h5"), *self.folder.glob("early-stopping-epoch*.npz")]:
            if old.name not in keep:
                try:
                    os.remove(old)
                except OSError:
                    pass

    def _counters(self, epoch: int) -> dict:
        """The counting callbacks' counters (JSON-ready); an EarlyStopping's best weights go to a file."""
        saved = {}
        for name, callback in self.counting.items():
            counters = {key: _plain(getattr(callback, key, None)) for key in COUNTERS[name]}
            best_weights = getattr(callback, "best_weights", None)
            if best_weights is not None:
                counters["best_weights"] = f"early-stopping-epoch{epoch}.npz"
                np.savez(self.folder / counters["best_weights"], **{f"w{i}": w for i, w in enumerate(best_weights)})
            saved[name] = counters
        return saved


class BestWeights(keras.callbacks.Callback):
    """The weights of the epoch with the best validation accuracy so far (``best.weights.h5``),
    written whole: Keras' ModelCheckpoint rewrites the file in place, so a kill during that write
    left a torn file and the previous best was gone. ``best``: a resumed run's best so far."""

    def __init__(self, path: Path, best: float | None = None):
        super().__init__()
        self.path = path
        self.best = best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get("val_accuracy")
        if value is None or not math.isfinite(value) or (self.best is not None and value <= self.best):
            return
        self.best = float(value)
        write_atomic(self.path, self.model.save_weights)


class EnoughSpace(keras.callbacks.Callback):
    """Placed before the epoch-end saves: fails the run with a clear message, and no
    partial file, while ``folder`` still has room for ``files`` weight files."""

    def __init__(self, folder: Path, key: str, files: int):
        super().__init__()
        self.folder, self.key, self.files = folder, key, files

    def on_epoch_end(self, epoch, logs=None):
        ensure_space(self.folder, self.key, self.files * weights_file_size(self.model))


def weights_file_size(model: keras.Model) -> int:
    """About how many bytes a weights file of ``model`` takes, its optimizer's state included."""
    variables = [*model.weights, *(model.optimizer.variables if model.optimizer else [])]
    data = sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables)
    return int(data * 1.1) + 256 * 1024  # h5 metadata and chunking


def ensure_space(folder: Path, key: str, needed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise StorageError.writing(folder, key, f"No space left on device (saving needs about "
                                                f"{needed / 2**20:.1f} MB, {free / 2**20:.1f} MB free)")


def _plain(value):
    """A counter as JSON can hold it (Keras keeps some as NumPy scalars)."""
    return value if value is None or isinstance(value, int) else float(value)


def restore(model: keras.Model, folder: Path, state: TrainingState) -> None:
    """Load weights and optimizer state (momentum, iteration count) into a compiled model."""
    model.optimizer.build(model.trainable_variables)
    model.load_weights(folder / state.weights)
