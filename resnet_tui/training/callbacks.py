"""Keras callbacks that turn model.fit into plain events, and obey stop/pause.

``on_train_batch_end`` runs once per iteration (64,000 times in a full run):
keep it to arithmetic on Python floats and one sink call.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable

import keras

from resnet_tui.training.events import EpochEnd, IterationEnd, Sink


class TrainingControl:
    """Thread-safe stop and pause requests, shared by the trainer and its callers."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self.evaluate_on_stop = True
        self.paused_total = 0.0  # seconds spent paused, for timings that exclude pauses

    def stop(self, evaluate: bool = True) -> None:
        self.evaluate_on_stop = evaluate
        self._stop.set()
        self._running.set()  # a paused run must wake up to stop

    def pause(self) -> None:
        if not self._stop.is_set():
            self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self) -> None:
        if self._running.is_set():
            return
        start = time.perf_counter()
        self._running.wait()
        self.paused_total += time.perf_counter() - start


class StreamingCallback(keras.callbacks.Callback):
    """Emits IterationEnd per batch and EpochEnd per epoch to ``sink``.

    Keras 3 batch logs are running means over the epoch, weighted by the
    samples seen. With ``N_k`` samples after batch ``k`` and running mean
    ``m_k``, the batch's own value is ``(m_k*N_k - m_{k-1}*N_{k-1}) / n_k``.
    """

    def __init__(self, sink: Sink, batch_size: int, train_count: int,
                 lr_at: Callable[[int], float] | None, control: TrainingControl,
                 start_iteration: int = 0, start_epoch: int = 0):
        super().__init__()
        self.sink = sink
        self.batch_size = batch_size
        self.train_count = train_count
        self.lr_at = lr_at  # iteration count before the update -> lr; None: read the optimizer
        self.control = control
        self.iteration = start_iteration
        self.epoch = start_epoch
        self.completed_epochs = start_epoch
        self.elapsed_before = 0.0  # from an earlier process, when resumed

    def _optimizer_lr(self) -> float:
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_begin(self, logs=None):
        self._t0 = time.perf_counter()
        self._paused0 = self.control.paused_total

    def _elapsed(self, now: float) -> float:
        return self.elapsed_before + now - self._t0 - (self.control.paused_total - self._paused0)

    def elapsed_now(self) -> float:
        return self._elapsed(time.perf_counter())

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1
        self._seen = 0
        self._loss_sum = 0.0
        self._acc_sum = 0.0
        self._epoch_lr = None if self.lr_at else self._optimizer_lr()
        self._prev_time = self._epoch_start = time.perf_counter()
        self._prev_paused = self._epoch_paused = self.control.paused_total

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        paused = self.control.paused_total
        seconds = now - self._prev_time - (paused - self._prev_paused)
        self._prev_time, self._prev_paused = now, paused

        seen = min((batch + 1) * self.batch_size, self.train_count)
        count = seen - self._seen
        mean_loss, mean_acc = logs["loss"], logs["accuracy"]
        loss_sum, acc_sum = mean_loss * seen, mean_acc * seen
        batch_loss = (loss_sum - self._loss_sum) / count
        batch_acc = (acc_sum - self._acc_sum) / count
        self._seen, self._loss_sum, self._acc_sum = seen, loss_sum, acc_sum

        lr = self.lr_at(self.iteration) if self.lr_at else self._epoch_lr
        self.iteration += 1
        self.sink(IterationEnd(self.iteration, self.epoch, batch_loss, batch_acc, lr,
                               count / seconds if seconds > 0 else 0.0,
                               mean_loss, mean_acc, self._elapsed(now)))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        now = time.perf_counter()
        self.completed_epochs = epoch + 1
        lr = self.lr_at(max(self.iteration - 1, 0)) if self.lr_at else self._epoch_lr
        self.sink(EpochEnd(
            epoch=epoch + 1, iteration=self.iteration,
            loss=float(logs.get("loss", float("nan"))), accuracy=float(logs.get("accuracy", float("nan"))),
            val_loss=_maybe_float(logs.get("val_loss")), val_accuracy=_maybe_float(logs.get("val_accuracy")),
            lr=lr, duration=now - self._epoch_start - (self.control.paused_total - self._epoch_paused),
            elapsed=self._elapsed(now)))


def _maybe_float(value) -> float | None:
    return None if value is None else float(value)


class ControlCallback(keras.callbacks.Callback):
    """Stops on a non-finite loss, at the iteration cap or on request (after the
    current step); pauses between steps."""

    def __init__(self, control: TrainingControl, max_iterations: int, start_iteration: int = 0):
        super().__init__()
        self.control = control
        self.max_iterations = max_iterations  # 0: no cap
        self.iteration = start_iteration
        self.stop_reason: str | None = None
        self.non_finite_at: int | None = None

    def on_train_batch_end(self, batch, logs=None):
        self.iteration += 1
        loss = logs["loss"]  # the epoch's running mean: non-finite from the first bad batch on
        if not math.isfinite(loss):
            self.non_finite_at = self.iteration
            self.stop_reason = f"non-finite loss ({loss}) at iteration {self.iteration}"
            self.model.stop_training = True
            return
        self.control.wait_while_paused()
        if self.control.stop_requested:
            self.stop_reason = "stopped by user"
            self.model.stop_training = True
        elif self.max_iterations and self.iteration >= self.max_iterations:
            self.stop_reason = f"iteration cap ({self.max_iterations} iterations)"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        # A stop asked for during validation takes effect here.
        if self.control.stop_requested and self.non_finite_at is None:
            self.stop_reason = "stopped by user"
            self.model.stop_training = True
