"""Follow a run that another process is writing, by tailing its files.

A run trained headless (``resnet-tui train`` under nohup on a GPU box) can be
watched from any dashboard that sees its artifact folder: the follower turns
new complete lines of ``iterations.csv`` / ``epochs.csv`` into the same events
the trainer emits, so the dashboard draws it exactly like a local run. It only
reads; it never writes into the run.
"""

from __future__ import annotations

import json
from pathlib import Path

from resnet_tui.records import FILES, from_row
from resnet_tui.runs import FINISHED_STATUSES, Run
from resnet_tui.training.events import EpochEnd, Event, IterationEnd, RunFinished, RunStarted, RunStatus


class _Tail:
    """The records of new complete lines of a growing metrics file (a torn last line waits for its end)."""

    def __init__(self, path: Path, cls: type):
        self.path = path
        self.cls = cls
        self.offset = 0
        self.header: list[str] | None = None

    def read(self) -> list:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        rows = [line.split(",") for line in chunk[:end].decode("utf-8").split("\n") if line]
        if self.header is None and rows:
            self.header = rows.pop(0)
        records = []
        for cells in rows:
            try:
                records.append(from_row(self.cls, self.header, cells))
            except ValueError:
                continue
        return records


class RunFollower:
    """Polled by the caller (e.g. a dashboard timer): ``poll()`` returns new events."""

    def __init__(self, run: Run):
        self.run = run
        self._iterations = _Tail(run.paths.log / FILES[IterationEnd], IterationEnd)
        self._epochs = _Tail(run.paths.log / FILES[EpochEnd], EpochEnd)
        self._started = False
        self._finished = False

    @property
    def finished(self) -> bool:
        return self._finished

    def poll(self) -> list[Event]:
        events: list[Event] = []
        if not self._started:
            started = self._run_started()
            if started is None:
                return events
            events.append(started)
            self._started = True
        events += self._iterations.read()
        events += self._epochs.read()
        if not self._finished:
            finished = self._run_finished()
            if finished is not None and self.run.lock_owner() is None:
                events.append(finished)
                self._finished = True
        return events

    def _run_started(self) -> RunStarted | None:
        try:
            config = self.run.read_config()
            meta = self.run.read_meta() or {}
        except (OSError, ValueError):
            return None
        plan = _read_plan(self.run)
        # plan.json appears once the data is loaded and the model built; a run
        # that failed before that is announced with what is known.
        if not plan and self._run_finished() is None:
            return None
        batch = config.get("BATCH_SIZE", 1)
        epochs = config.get("EPOCHS_COUNT", 0)
        steps = plan.get("steps_per_epoch", 0)
        total = plan.get("total_iterations", 0)
        return RunStarted(
            run_id=self.run.id, config_name=meta.get("config_name", "?"), config=config,
            model_summary=self.run.read_summary(), param_count=plan.get("param_count", 0),
            steps_per_epoch=steps, total_iterations=total, epochs=epochs, batch_size=batch,
            train_count=plan.get("train_count", 0), val_count=plan.get("val_count", 0),
            test_count=plan.get("test_count", 0), start_iteration=plan.get("start_iteration", 0),
            time=meta.get("started", 0.0))

    def _run_finished(self) -> RunFinished | None:
        try:
            result = self.run.read_result()
        except (OSError, ValueError):
            return None
        if not result or result.get("status") not in FINISHED_STATUSES:
            return None
        return RunFinished(self.run.id, RunStatus(result["status"]), result.get("stop_reason", ""),
                           result.get("iterations", 0), result.get("epochs", 0), result.get("duration", 0.0),
                           result.get("test_loss"), result.get("test_accuracy"), result.get("best_val_accuracy"),
                           result.get("error"))


def _read_plan(run: Run) -> dict:
    try:
        return json.loads((run.paths.log / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
