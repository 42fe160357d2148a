"""Follow a run that another process is writing, by tailing its files.

A run trained headless (``resnet-tui train`` under nohup on a GPU box) can be
watched from any dashboard that sees its artifact folder: the follower turns
new complete lines of ``iterations.csv`` / ``epochs.csv`` into the same events
the trainer emits, so the dashboard draws it exactly like a local run. It only
reads; it never writes into the run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from resnet_tui.runs import EPOCH_COLUMNS, ITERATION_COLUMNS, Run
from resnet_tui.training.events import EpochEnd, Event, IterationEnd, RunFinished, RunStarted


class _Tail:
    """New complete lines of a growing file (a torn last line waits for its end)."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.header: list[str] | None = None

    def read_rows(self) -> list[list[str]]:
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
        return [r for r in rows if self.header and len(r) == len(self.header)]


def _num(text: str) -> float | None:
    return float(text) if text not in ("", "None") else None


class RunFollower:
    """Polled by the caller (e.g. a dashboard timer): ``poll()`` returns new events."""

    def __init__(self, run: Run):
        self.run = run
        self._iterations = _Tail(run.paths.log / "iterations.csv")
        self._epochs = _Tail(run.paths.log / "epochs.csv")
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
        for row in self._iterations.read_rows():
            values = dict(zip(self._iterations.header, row))
            try:
                events.append(IterationEnd(*(_convert(name, values.get(name, "")) for name in ITERATION_COLUMNS)))
            except (TypeError, ValueError):
                continue
        for row in self._epochs.read_rows():
            values = dict(zip(self._epochs.header, row))
            try:
                events.append(EpochEnd(*(_convert(name, values.get(name, "")) for name in EPOCH_COLUMNS)))
            except (TypeError, ValueError):
                continue
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
        if not result or result.get("status") not in ("completed", "stopped", "failed"):
            return None
        return RunFinished(self.run.id, result["status"], result.get("stop_reason", ""),
                           result.get("iterations", 0), result.get("epochs", 0), result.get("duration", 0.0),
                           result.get("test_loss"), result.get("test_accuracy"), result.get("best_val_accuracy"),
                           result.get("error"))


def events_from_rows(iterations: list[dict], epochs: list[dict]) -> list[Event]:
    """IterationEnd/EpochEnd events from rows read by Run.read_iterations/read_epochs."""
    def value(name, v):
        if name in ("iteration", "epoch"):
            return int(v)
        return math.nan if v is None and name not in ("val_loss", "val_accuracy") else v

    events: list[Event] = [IterationEnd(*(value(n, r.get(n)) for n in ITERATION_COLUMNS)) for r in iterations]
    events += [EpochEnd(*(value(n, r.get(n)) for n in EPOCH_COLUMNS)) for r in epochs]
    return events


def _convert(name: str, text: str):
    value = _num(text)
    if name in ("iteration", "epoch"):
        return int(value)
    if value is None and name not in ("val_loss", "val_accuracy"):
        return math.nan
    return value


def _read_plan(run: Run) -> dict:
    try:
        return json.loads((run.paths.log / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
