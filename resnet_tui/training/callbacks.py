"""Keras callbacks that turn model.fit into plain events, and end or pause it by rule.

One rule per callback, as Keras' own ``TerminateOnNaN`` and ``EarlyStopping``
are written: :class:`StreamingCallback` streams the events and counts the
iterations; :class:`TerminateOnNonFinite`, :class:`IterationCap` and
:class:`UserControl` each end the fit for one reason and say why in their
``stop_reason``. They share one :class:`IterationCounter` (where the fit is)
rather than reading each other's attributes; the streaming callback goes
before them, so the count they read is the iteration just done.

``on_train_batch_end`` runs once per execution (once per iteration unless
STEPS_PER_EXECUTION is above 1; 64,000 times in a full run): keep it to one
read of the step log, arithmetic on Python floats and one sink call per
iteration, and the rules to a comparison each (UserControl: the control's lock,
twice, as ever).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import keras

from resnet_tui.events import EpochEnd, IterationEnd, Sink, StopReason
from resnet_tui.training import steplog


class StopRequested(Exception):
    """Raised by UserControl to leave ``fit`` in the middle of an epoch: Keras would
    otherwise validate the half epoch and every epoch-end callback would save it as whole."""


class TrainingControl:
    """Thread-safe stop and pause requests, shared by the trainer and its callers.

    ``lock`` orders a stop request against the training thread's checks, so the
    iteration :meth:`stop` names is the one training ends at.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self.lock = threading.Lock()
        self.stop_at: int | None = None  # the iteration a requested stop ends at
        self.next_stop: Callable[[], int] | None = None  # set by UserControl while fit runs
        self.paused_total = 0.0  # seconds spent paused, for timings that exclude pauses
        self.cause: str | None = None  # what asked for the stop, when not a person (a signal's name)
        self.reason: str | None = None  # the stop's own words, when not a stop by a person (e.g. a sweep's pruner)
        self.evaluating = False  # training is over and the test split is being evaluated

    def stopped_by(self) -> str:
        """The stop reason's words: "stopped by user", with the signal that asked, if one did."""
        if self.reason:
            return self.reason
        return f"{StopReason.USER} ({self.cause})" if self.cause else str(StopReason.USER)

    def stop(self, cause: str | None = None, reason: str | None = None) -> int | None:
        """Ask for a stop after the step under way; returns the iteration training ends at
        (None when training has not started: it then ends before its first step). ``cause``
        names what asked when it was not a person's key, e.g. "SIGTERM"; ``reason`` replaces
        "stopped by user" for a stop no person asked for (a sweep's pruner)."""
        with self.lock:
            if not self._stop.is_set():
                self.stop_at = self.next_stop() if self.next_stop else None
                self.cause, self.reason = cause, reason
                self._stop.set()
            self._running.set()  # a paused run must wake up to stop
            return self.stop_at

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

    def wait_while_paused(self, timeout: float | None = None) -> None:
        """Return once the run is not paused (or after ``timeout`` seconds, paused or not)."""
        if self._running.is_set():
            return
        start = time.perf_counter()
        self._running.wait(timeout)
        self.paused_total += time.perf_counter() - start


class IterationCounter:
    """Where a fit is, shared by its callbacks; the streaming callback keeps it.

    ``iteration`` counts every step from the StepLog rows (so it is exact when
    STEPS_PER_EXECUTION runs several steps per callback), ``completed_epochs``
    the epochs ended, and ``first_non_finite`` is the first iteration whose own
    batch loss was NaN or infinite (the logs' running mean only says that one
    of the execution's steps was). A resumed run's counter starts where its
    saved state is.
    """

    __slots__ = ("iteration", "completed_epochs", "first_non_finite")

    def __init__(self, iteration: int = 0, completed_epochs: int = 0):
        self.iteration = iteration
        self.completed_epochs = completed_epochs
        self.first_non_finite: int | None = None


class StreamingCallback(keras.callbacks.Callback):
    """Emits IterationEnd per iteration and EpochEnd per epoch to ``sink``, and keeps ``counter``.

    Keras 3 batch logs are running means over the epoch, and with
    ``steps_per_execution`` k > 1 they arrive once per k steps. The values come
    instead from the model's :class:`StepLog` (installed on ``set_model``): the
    metrics' running sums ``S_i`` and sample counts ``N_i`` after every step
    ``i``, so each batch's own value is ``(S_i - S_{i-1}) / (N_i - N_{i-1})``
    and the running mean ``S_i / N_i``, one event per iteration, in order.
    Within one execution the iterations share its images/s, and their elapsed
    times are spread evenly over it.
    """

    def __init__(self, sink: Sink, lr_at: Callable[[int], float] | None, control: TrainingControl,
                 counter: IterationCounter | None = None, elapsed_before: float = 0.0):
        super().__init__()
        self.sink = sink
        self.lr_at = lr_at  # iteration count before the update -> lr; None: read the optimizer
        self.control = control
        self.counter = counter or IterationCounter()
        self.epoch = self.counter.completed_epochs
        self.elapsed_before = elapsed_before  # training seconds of earlier processes, when resumed
        self.step_log: steplog.StepLog | steplog.JaxStepLog | None = None
        self._t0: float | None = None  # when fit began training

    def set_model(self, model):
        super().set_model(model)
        self.step_log = steplog.attach(model)  # before fit() builds its train function

    def _optimizer_lr(self) -> float:
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_begin(self, logs=None):
        self.step_log.skip_to_now()
        self._t0 = time.perf_counter()
        self._paused0 = self.control.paused_total

    def _elapsed(self, now: float) -> float:
        assert self._t0 is not None  # on_train_begin set it: Keras calls it before any batch or epoch ends
        return self.elapsed_before + now - self._t0 - (self.control.paused_total - self._paused0)

    def elapsed_now(self) -> float:
        """Training seconds so far, this process's and earlier ones' (pauses excluded)."""
        return self.elapsed_before if self._t0 is None else self._elapsed(time.perf_counter())

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1
        self._sums = (0.0, 0.0, 0.0, 0.0)  # Keras resets the metrics at each epoch start
        self._epoch_lr = None if self.lr_at else self._optimizer_lr()
        self._prev_time = self._epoch_start = time.perf_counter()
        self._prev_paused = self._epoch_paused = self.control.paused_total

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        paused = self.control.paused_total
        seconds = now - self._prev_time - (paused - self._prev_paused)
        self._prev_time, self._prev_paused = now, paused

        rows = self.step_log.take(logs).tolist()  # one row per step of this execution
        if not rows:
            return
        counter = self.counter
        images = rows[-1][1] - self._sums[1]
        rate = images / seconds if seconds > 0 else 0.0
        end = self._elapsed(now)
        start = end - seconds
        loss_total0, loss_count0, acc_total0, acc_count0 = self._sums
        for k, (loss_total, loss_count, acc_total, acc_count) in enumerate(rows, start=1):
            batch_loss = (loss_total - loss_total0) / (loss_count - loss_count0)
            batch_acc = (acc_total - acc_total0) / (acc_count - acc_count0)
            loss_total0, loss_count0, acc_total0, acc_count0 = loss_total, loss_count, acc_total, acc_count
            lr = self.lr_at(counter.iteration) if self.lr_at else self._epoch_lr
            counter.iteration += 1
            if counter.first_non_finite is None and not math.isfinite(batch_loss):
                counter.first_non_finite = counter.iteration
            self.sink(IterationEnd(counter.iteration, self.epoch, batch_loss, batch_acc, lr, rate,
                                   loss_total / loss_count, acc_total / acc_count,
                                   start + seconds * k / len(rows)))
        self._sums = (loss_total0, loss_count0, acc_total0, acc_count0)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        now = time.perf_counter()
        iteration = self.counter.iteration
        self.counter.completed_epochs = epoch + 1
        lr = self.lr_at(max(iteration - 1, 0)) if self.lr_at else self._epoch_lr
        self.sink(EpochEnd(
            epoch=epoch + 1, iteration=iteration,
            loss=float(logs.get("loss", float("nan"))), accuracy=float(logs.get("accuracy", float("nan"))),
            val_loss=_maybe_float(logs.get("val_loss")), val_accuracy=_maybe_float(logs.get("val_accuracy")),
            lr=lr, duration=now - self._epoch_start - (self.control.paused_total - self._epoch_paused),
            elapsed=self._elapsed(now)))


def _maybe_float(value) -> float | None:
    return None if value is None else float(value)


class TerminateOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite loss, like Keras' TerminateOnNaN.

    The logs' loss is the epoch's running mean, non-finite from the first bad
    batch on; ``non_finite_at`` is that batch's iteration (the counter's
    ``first_non_finite``: exact within an execution of several steps).
    """

    def __init__(self, counter: IterationCounter):
        super().__init__()
        self.counter = counter
        self.non_finite_at: int | None = None
        self.stop_reason: str | None = None

    def diverged(self) -> bool:
        """Whether this fit has ended on a non-finite loss (nothing of that epoch is to be kept)."""
        return self.non_finite_at is not None

    def on_train_batch_end(self, batch, logs=None):
        loss = logs["loss"]
        if not math.isfinite(loss):
            self.non_finite_at = self.counter.first_non_finite or self.counter.iteration
            self.stop_reason = f"non-finite loss ({loss}) at iteration {self.non_finite_at}"
            self.model.stop_training = True


class IterationCap(keras.callbacks.Callback):
    """Ends training once ``max_iterations`` (MAX_ITERATIONS; 0: no cap) iterations are done.

    The epoch under way ends there as usual (the run is complete). With
    STEPS_PER_EXECUTION k > 1 the check comes once per execution, so a cap
    that is not a whole number of executions into its epoch is overshot by up
    to k-1 iterations (all of them recorded; the stop reason says so).
    """

    def __init__(self, max_iterations: int, counter: IterationCounter):
        super().__init__()
        self.max_iterations = max_iterations
        self.counter = counter
        self.stop_reason: str | None = None

    def on_train_batch_end(self, batch, logs=None):
        iteration = self.counter.iteration
        if self.max_iterations and iteration >= self.max_iterations:
            self.stop_reason = f"{StopReason.ITERATION_CAP} ({self.max_iterations} iterations)"
            if iteration > self.max_iterations:
                self.stop_reason += (f"; reached at {iteration}: STEPS_PER_EXECUTION "
                                     f"{self.model.steps_per_execution} checks once per execution")
            self.model.stop_training = True


class UserControl(keras.callbacks.Callback):
    """Stops on request and pauses between steps (TrainingControl); goes after the other rules.

    A requested stop takes effect where Keras next gives control back: after
    the execution under way (one step unless STEPS_PER_EXECUTION k > 1), or
    before the next epoch starts. At an epoch's last step the epoch ends as
    usual (validated and saved); anywhere else :class:`StopRequested` leaves
    ``fit`` at once, so the saved state stays at the last whole epoch and a
    resumed run redoes the unfinished one from its start, exactly as an
    uninterrupted run would. A stop asked for at the same step as the
    iteration cap still wins; a non-finite loss (``diverged``) ends the fit
    with no pause and no stop.
    """

    def __init__(self, control: TrainingControl, steps_per_epoch: int, counter: IterationCounter,
                 diverged: Callable[[], bool] = lambda: False):
        super().__init__()
        self.control = control
        self.steps_per_epoch = steps_per_epoch
        self.counter = counter
        self.diverged = diverged
        self.iteration = counter.iteration  # as of the last check: what a stop asked for now counts from
        self.stop_reason: str | None = None
        self.stopped_mid_epoch = False
        self._epoch_end = counter.iteration  # the iteration the epoch under way ends at
        self._stepping = False  # an execution is under way: the next check comes at its end
        self._steps_per_execution = 1  # the model's, read in the training thread (see _next_stop)

    def _next_stop(self) -> int:
        """Where a stop asked for now takes effect (called under the control's lock, from the
        thread that asks). It must not touch ``self.model``: on JAX that property writes fit's
        state back into the model, and done from another thread while a step runs it marked
        the state written with the previous step's arrays, which the step had already consumed
        (the final save then met "Array has been deleted")."""
        if self._stepping:
            return min(self.iteration + self._steps_per_execution, self._epoch_end)
        return self.iteration

    def on_train_begin(self, logs=None):
        self._steps_per_execution = int(self.model.steps_per_execution or 1)
        self.control.next_stop = self._next_stop

    def on_epoch_begin(self, epoch, logs=None):
        with self.control.lock:
            if self.control.stop_requested:
                self.stop_reason = f"{self.control.stopped_by()} at iteration {self.iteration}"
                raise StopRequested  # before the epoch's first step: nothing of it is lost
            self._epoch_end = self.iteration + self.steps_per_epoch
            self._stepping = True

    def on_train_batch_end(self, batch, logs=None):
        with self.control.lock:
            self.iteration = self.counter.iteration  # every step of the execution counted
            self._stepping = False
        if self.diverged():
            return
        self.control.wait_while_paused()
        with self.control.lock:
            if self.control.stop_requested:
                self.stop_reason = f"{self.control.stopped_by()} at iteration {self.iteration}"
                if self.iteration < self._epoch_end:
                    self.stopped_mid_epoch = True
                    raise StopRequested
                self.model.stop_training = True  # the epoch's last step: it ends whole
            else:  # the next check comes after the next execution, unless another rule ended the fit here
                self._stepping = not self.model.stop_training and self.iteration < self._epoch_end

    def on_epoch_end(self, epoch, logs=None):
        # A stop asked for during validation takes effect here, the epoch whole.
        with self.control.lock:
            if self.control.stop_requested and not self.diverged():
                self.stop_reason = f"{self.control.stopped_by()} at iteration {self.iteration}"
                self.model.stop_training = True


def stop_rules(control: TrainingControl, counter: IterationCounter, max_iterations: int,
               steps_per_epoch: int) -> tuple[TerminateOnNonFinite, IterationCap, UserControl]:
    """The rules that end a fit, in their order (after the streaming callback that keeps ``counter``)."""
    non_finite = TerminateOnNonFinite(counter)
    return (non_finite, IterationCap(max_iterations, counter),
            UserControl(control, steps_per_epoch, counter, diverged=non_finite.diverged))
