"""Full training state at every epoch end, so a killed run can be resumed.

Modelled on Keras' BackupAndRestore (weights + optimizer state + where we
were), with the pieces it lacks for this project: the iteration count (the
step schedule and the 64k cap are counted in iterations), the best validation
accuracy so far (a resumed ``ModelCheckpoint(save_best_only=True)`` would
otherwise forget it and overwrite a better ``best.weights.h5``), and the
elapsed training time.

Crash safety: the weights go to a file named by epoch, then ``state.json``
(the commit point) is replaced atomically to point at it, then older weight
files are removed. A kill at any moment leaves a state.json whose weights
file exists and is whole.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict
from pathlib import Path

import keras

from resnet_tui.runs import write_json_atomic
from resnet_tui.training.state import STATE_FILE, TrainingState


class StateCheckpoint(keras.callbacks.Callback):
    """Saves TrainingState at every epoch end (a clean stop ends an epoch too).

    Skips the save when the epoch ended on a non-finite loss, so the last good
    state survives.
    """

    def __init__(self, folder: Path, streaming, control_callback, best_val_accuracy: float | None = None,
                 best_epoch: int | None = None):
        super().__init__()
        self.folder = folder
        self.streaming = streaming
        self.control_callback = control_callback
        self.best_val_accuracy = best_val_accuracy  # the best so far, and its epoch: the run's result keeps them
        self.best_epoch = best_epoch

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.control_callback.non_finite_at is not None:
            return
        val = logs.get("val_accuracy")
        if val is not None and math.isfinite(val) and (self.best_val_accuracy is None or val > self.best_val_accuracy):
            self.best_val_accuracy, self.best_epoch = float(val), epoch + 1
        self.folder.mkdir(parents=True, exist_ok=True)
        weights = f"state-epoch{epoch + 1}.weights.h5"
        self.model.save_weights(self.folder / weights, overwrite=True)  # includes the optimizer's state
        state = TrainingState(epoch + 1, self.streaming.iteration, self.best_val_accuracy,
                              self.streaming.elapsed_now(), weights, self.best_epoch)
        write_json_atomic(self.folder / STATE_FILE, asdict(state))
        for old in self.folder.glob("state-epoch*.weights.h5"):
            if old.name != weights:
                try:
                    os.remove(old)
                except OSError:
                    pass


def restore(model: keras.Model, folder: Path, state: TrainingState) -> None:
    """Load weights and optimizer state (momentum, iteration count) into a compiled model."""
    model.optimizer.build(model.trainable_variables)
    model.load_weights(folder / state.weights)
