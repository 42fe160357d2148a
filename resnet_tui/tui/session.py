"""One training run driven from the dashboard.

The trainer runs in a Textual thread worker and calls :class:`EventBuffer` (its
sink) from the training thread; that only appends to a deque. A followed run's
files are read by :meth:`TrainingSession.poll_follower`, in a thread worker of
its own, into the same buffer. The UI thread calls :meth:`TrainingSession.ingest`
on a timer, which drains the buffer into plain state (history arrays, latest
numbers, log lines) that screens draw from; it reads no file. Nothing here
touches a widget.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from resnet_tui.config import Config, run_config
from resnet_tui.events import (
    DatasetProgress,
    EpochEnd,
    IterationEnd,
    LogMessage,
    MachineEpoch,
    MachineSample,
    RunFinished,
    RunStarted,
    RunStatus,
)
from resnet_tui.health import Alert, HealthWatch
from resnet_tui.report.tables import stopping_message
from resnet_tui.store.runs import Run, RunStore
from resnet_tui.tui.history import RunHistory

if TYPE_CHECKING:  # pragma: no cover
    from resnet_tui.store.follow import RunFollower
    from resnet_tui.store.json_files import RunResult
    from resnet_tui.training.trainer import Trainer



class SessionState(StrEnum):
    """Where a dashboard's run is: the run statuses of store/runs.py plus the moments in between."""

    STARTING = "starting"  # loading data, building the model
    RUNNING = RunStatus.RUNNING.value
    PAUSED = "paused"
    STOPPING = "stopping"  # asked to stop; finishing the step and saving
    COMPLETED = RunStatus.COMPLETED.value
    STOPPED = RunStatus.STOPPED.value
    FAILED = RunStatus.FAILED.value
    INTERRUPTED = RunStatus.INTERRUPTED.value  # a followed run whose writer died without a result
    CORRUPT = RunStatus.CORRUPT.value  # a followed run whose files became unreadable


PHASE_LOADING = "loading TensorFlow and the data…"
PHASE_BUILDING = "building the model…"
PHASE_COMPILING = "compiling… (the first steps take longest)"

ACTIVE_STATES = (SessionState.STARTING, SessionState.RUNNING, SessionState.PAUSED, SessionState.STOPPING)


class EventBuffer:
    """The trainer's sink: thread-safe appends, drained by the UI thread."""

    def __init__(self) -> None:
        self._events: deque = deque()  # deque.append/popleft are atomic in CPython

    def __call__(self, event) -> None:
        self._events.append(event)

    def drain(self) -> list:
        events = []
        pop = self._events.popleft
        try:
            while True:
                events.append(pop())
        except IndexError:
            pass
        return events

    def __len__(self) -> int:
        return len(self._events)


@dataclass
class Changes:
    """What one :meth:`TrainingSession.ingest` changed, so views redraw only that."""

    iterations: bool = False
    epochs: bool = False
    log: bool = False
    status: bool = False
    machine: bool = False  # a new MachineSample
    notices: list[tuple[str, str]] = field(default_factory=list)  # (severity, message) for toasts
    finished: bool = False  # the run ended: worth a bell, wherever the user is
    alerts: list[Alert] = field(default_factory=list)  # what the health rules said (health.py)

    def __bool__(self) -> bool:
        return (self.iterations or self.epochs or self.log or self.status or self.machine or bool(self.notices)
                or bool(self.alerts))

    @classmethod
    def all(cls) -> Changes:
        """Everything moved: a new session, a screen shown again, a control used."""
        return cls(iterations=True, epochs=True, log=True, status=True, machine=True)


class TrainingSession:
    """State of one run: starting -> running <-> paused -> stopping -> completed/stopped/failed.

    Either trained here (``run`` in a worker thread) or *followed*: a run another
    process trains (e.g. headless on a GPU box), read from its files by a
    :class:`~resnet_tui.follow.RunFollower` into the same events; it can only be watched.
    """

    def __init__(self, config: Config, store: RunStore, log_lines: int = 2000,
                 follower: RunFollower | None = None, resume_run_id: str | None = None):
        self.config = config
        self.store = store
        self.follower = follower
        self.resume_run_id = resume_run_id  # continue this stopped/interrupted run
        self.buffer = EventBuffer()
        self.history = RunHistory()
        self.health = HealthWatch()  # the run's health, from the same events (health.py)
        self.state = SessionState.STARTING
        self.started: RunStarted | None = None
        self.finished: RunFinished | None = None
        self.last: IterationEnd | None = None
        self.last_epoch: EpochEnd | None = None
        self.best_val: tuple[float, int] | None = None  # (val accuracy, epoch)
        self.download: DatasetProgress | None = None
        # What a run trained here is doing before its first iteration, read from its events: no
        # event yet (TensorFlow and the data load), a LogMessage (the data is in: the model is
        # built), RunStarted (the first steps trace and compile); None from the first new iteration.
        self.phase: str | None = PHASE_LOADING
        self.machine: MachineSample | None = None  # the latest
        self.machine_epochs: list[MachineEpoch] = []  # each epoch's means: the line once the run has ended
        self.log: deque[tuple[int, str, str]] = deque(maxlen=log_lines)  # (seq, level, text)
        self.log_seq = 0
        self.trainer: Trainer | None = None
        self._lock = threading.Lock()
        self._requests: list[str] = []  # controls asked for before the trainer exists

    @classmethod
    def follow(cls, run: Run, store: RunStore) -> TrainingSession:
        from resnet_tui.store.follow import RunFollower

        session = cls(run_config(run), store, follower=RunFollower(run))
        session.state = SessionState.RUNNING
        session._add_log("info", f"watching {run.id}, trained by another process: it can't be paused or stopped here")
        return session

    @property
    def following(self) -> bool:
        return self.follower is not None

    # -- the training thread ------------------------------------------------
    def run(self) -> RunResult:
        """Body of the thread worker: import the trainer (and TensorFlow), train."""
        from resnet_tui.training.trainer import Trainer

        if self.resume_run_id:
            trainer = Trainer.resuming(self.store, self.resume_run_id, sink=self._resumed_sink, capture_stderr=True)
        else:
            trainer = Trainer(self.config, sink=self.buffer, store=self.store, capture_stderr=True)
        with self._lock:
            self.trainer = trainer
            for action in self._requests:
                getattr(trainer, action)()
        return trainer.run()

    def _resumed_sink(self, event) -> None:
        """A resumed run's events, with its earlier curves replayed from disk first
        (the trainer has cut them back to the saved epoch by the time it starts)."""
        self.buffer(event)
        if isinstance(event, RunStarted) and event.start_iteration:
            run = self.store.open_run(event.run_id)
            for past in [*run.read_iterations(), *run.read_epochs()]:
                self.buffer(past)

    # -- controls, from the UI thread -----------------------------------------
    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def _control(self, action: str):
        """Pass a stop/pause/resume to the trainer (queued until it exists); returns its answer."""
        assert not self.following, "a followed run belongs to another process"
        with self._lock:
            if self.trainer is None:
                self._requests.append(action)
                return None
            return getattr(self.trainer, action)()

    def stop(self) -> bool:
        if not self.active or self.following:
            return False
        stop_at = self._control("stop")
        self._add_log("info", stopping_message(stop_at, self.trainer is not None and self.trainer.control.evaluating))
        self.state = SessionState.STOPPING
        return True

    def pause(self) -> bool:
        if self.state not in (SessionState.RUNNING, SessionState.STARTING) or self.following:
            return False
        self._control("pause")
        self.state = SessionState.PAUSED
        self._add_log("info", "paused")
        return True

    def resume(self) -> bool:
        if self.state != SessionState.PAUSED or self.following:
            return False
        self._control("resume")
        self.state = SessionState.RUNNING if self.started else SessionState.STARTING
        self._add_log("info", "resumed")
        return True

    def worker_failed(self, error: BaseException) -> None:
        """The worker died outside Trainer.run (e.g. TensorFlow failed to import)."""
        self.state = SessionState.FAILED
        self._add_log("error", f"{error.__class__.__name__}: {error}")

    # -- the follower's thread --------------------------------------------------
    def poll_follower(self) -> bool:
        """Read what the followed run's files gained into the buffer (file reads: a worker
        thread calls it, never the UI). False once the run has ended (or none is followed)."""
        if self.follower is None or self.follower.finished:
            return False
        for event in self.follower.poll():  # only the lines added since the last poll
            self.buffer(event)
        return not self.follower.finished

    # -- the UI thread's timer --------------------------------------------------
    def ingest(self) -> Changes:
        changes = Changes()
        events = self.buffer.drain()
        if not events:
            return changes
        iterations: list[IterationEnd] = []
        for event in events:
            changes.alerts += self.health.see(event)
            if isinstance(event, IterationEnd):
                iterations.append(event)
                continue
            if iterations:  # keep order with the epoch rows
                self._add_iterations(iterations, changes)
                iterations = []
            if isinstance(event, EpochEnd):
                self._on_epoch(event, changes)
            elif isinstance(event, MachineSample):
                self.machine = event
                changes.machine = True
            elif isinstance(event, MachineEpoch):
                self.machine_epochs.append(event)
            elif isinstance(event, LogMessage):
                self._add_log(event.level, event.text)
                changes.log = True
                if self.started is None and self.phase == PHASE_LOADING and event.level != "error":
                    self.phase = PHASE_BUILDING  # the trainer speaks once the data is loaded
                    changes.status = True
            elif isinstance(event, DatasetProgress):
                self.download = event
                changes.status = True
            elif isinstance(event, RunStarted):
                self._on_started(event, changes)
            elif isinstance(event, RunFinished):
                self._on_finished(event, changes)
        if iterations:
            self._add_iterations(iterations, changes)
        return changes

    def check_stall(self) -> list[Alert]:
        """The stall rule, asked by a timer: only while the run trains (a pause is no stall)."""
        if self.state != SessionState.RUNNING:
            return []
        return self.health.tick()

    def _add_iterations(self, events: list[IterationEnd], changes: Changes) -> None:
        self.history.add_iterations(events)
        self.last = events[-1]
        if self.phase is not None and self.started is not None and self.last.iteration > self.started.start_iteration:
            self.phase = None  # training proper: the progress line has its numbers
        changes.iterations = True

    def _on_epoch(self, event: EpochEnd, changes: Changes) -> None:
        self.history.add_epochs([event])
        self.last_epoch = event
        changes.epochs = True
        if event.val_accuracy is not None and (self.best_val is None or event.val_accuracy > self.best_val[0]):
            self.best_val = (event.val_accuracy, event.epoch)
        val = "" if event.val_accuracy is None else f", val loss {event.val_loss:.4f}, val acc {event.val_accuracy:.2%}"
        self._add_log("info", f"epoch {event.epoch}: loss {event.loss:.4f}, acc {event.accuracy:.2%}{val}")
        changes.log = True

    def _on_started(self, event: RunStarted, changes: Changes) -> None:
        if self.started is not None:  # a followed run resumed elsewhere: its metrics start over
            self.history = RunHistory()
            self.last = self.last_epoch = self.best_val = self.finished = None
            self.machine_epochs = []
            changes.iterations = changes.epochs = True
        self.started = event
        self.phase = PHASE_COMPILING
        self.history.steps_per_epoch = event.steps_per_epoch
        self.history.batch_size = event.batch_size
        if self.state == SessionState.STARTING:
            self.state = SessionState.RUNNING
        self.download = None
        self._add_log("info", f"run {event.run_id}: {event.param_count:,} parameters, "
                              f"{event.total_iterations:,} iterations ({event.epochs} epochs x "
                              f"{event.steps_per_epoch} steps of {event.batch_size})")
        changes.status = changes.log = True

    def _on_finished(self, event: RunFinished, changes: Changes) -> None:
        self.finished = event
        self.state = SessionState(event.status)
        line = f"run {event.status}: {event.stop_reason}"
        if event.test_accuracy is not None:
            line += f"; test accuracy {event.test_accuracy:.2%}"
        self._add_log("error" if event.status == RunStatus.FAILED else "info", line)
        if event.status == RunStatus.FAILED:
            changes.notices.append(("error", f"Training failed: {event.error or event.stop_reason}"))
        elif not event.status.finished:
            changes.notices.append(("warning", f"Run {event.run_id} {event.status}: {event.stop_reason}"))
        else:
            changes.notices.append(("information", f"Run {event.status}: {event.stop_reason}"))
        changes.status = changes.log = changes.finished = True

    def _add_log(self, level: str, text: str) -> None:
        self.log_seq += 1
        self.log.append((self.log_seq, level, text))

    # -- numbers for the progress line -----------------------------------------
    @property
    def total_iterations(self) -> int:
        return self.started.total_iterations if self.started else 0

    def rate(self, window: int = 50) -> tuple[float, float]:
        """(iterations/s, images/s) over the last ``window`` iterations."""
        rows = self.history.iterations
        n = len(rows)
        if n < 2:
            return 0.0, (self.last.images_per_sec if self.last else 0.0)
        first = max(0, n - 1 - window)
        its = rows["iteration"][n - 1] - rows["iteration"][first]
        seconds = rows["elapsed"][n - 1] - rows["elapsed"][first]
        if seconds <= 0:
            return 0.0, 0.0
        per_sec = its / seconds
        batch = self.started.batch_size if self.started else self.config.BATCH_SIZE
        return per_sec, per_sec * batch

    def eta_seconds(self) -> float | None:
        per_sec, _ = self.rate()
        if not self.last or not per_sec or not self.total_iterations:
            return None
        return max(0.0, (self.total_iterations - self.last.iteration) / per_sec)
