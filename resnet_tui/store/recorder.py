"""A sink that records a run's events into its run folder as they arrive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from resnet_tui.events import EpochEnd, Event, IterationEnd, LogMessage, MachineEpoch, RunFinished, RunStarted
from resnet_tui.store.atomic import write_json_atomic
from resnet_tui.store.json_files import PLAN_FIELDS
from resnet_tui.store.runs import Run, StorageError


class RunRecorder:
    """Appends metrics to the run's CSV files; the trainer writes the result itself."""

    def __init__(self, run: Run):
        self.run = run
        self._handlers: dict[type, Callable[[Any], None]] = {  # event type -> what records it
            IterationEnd: self._iteration,
            EpochEnd: self._epoch,
            MachineEpoch: self.run.append_machine,
            RunStarted: self._started,
            LogMessage: self._log,
            RunFinished: self._finished,
        }

    def __call__(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is None:
            return
        try:
            handler(event)
        except OSError as exc:  # a full disk's write error names no file: say which folder
            raise StorageError.writing(self.run.paths.log, "LOG_PATH", exc) from exc

    def _iteration(self, e: IterationEnd) -> None:
        self.run.append_iteration(e)

    def _epoch(self, e: EpochEnd) -> None:
        self.run.append_epoch(e)

    def _started(self, e: RunStarted) -> None:
        self.run.write_summary(e.model_summary)
        # What a follower in another process needs to draw progress (resnet_tui.follow).
        write_json_atomic(self.run.file_path("plan"), {name: getattr(e, name) for name in PLAN_FIELDS})

    def _log(self, e: LogMessage) -> None:
        self.run.log(f"[{e.level}] {e.text}")

    def _finished(self, e: RunFinished) -> None:
        self.run.close()
