"""Follow a run that another process is writing, by tailing its files.

A run trained headless (``resnet-tui train`` under nohup on a GPU box) can be
watched from any dashboard that sees its artifact folder: the follower turns
new complete lines of ``iterations.csv`` / ``epochs.csv`` into the same events
the trainer emits, so the dashboard draws it exactly like a local run. It only
reads; it never writes into the run. The per-epoch machine figures come from
``machine.csv``; the live ones (MachineSample) are sampled here, about once a
second, from the run's writer when its lock says it runs on this host.

It ends with a RunFinished when the run store no longer lists the run as
running: finished (its result), interrupted (its writer died without one) or
corrupt. A resume elsewhere cuts the metrics back to its saved epoch and
replaces the files: the follower sees the file shrink or change, announces the
run again (RunStarted, so a watcher starts its curves over) and re-reads them.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from resnet_tui.events import (
    EpochEnd,
    Event,
    IterationEnd,
    MachineEpoch,
    MachineSample,
    RunFinished,
    RunStarted,
    RunStatus,
)
from resnet_tui.machine.sampler import INTERVAL, Sampler
from resnet_tui.store.json_files import RunFileError
from resnet_tui.store.records import header_problem, parse_rows
from resnet_tui.store.runs import Run, RunInfo


class _Tail:
    """The records of new complete lines of a growing metrics file (a torn last line waits for its end)."""

    def __init__(self, path: Path, cls: type):
        self.path = path
        self.cls = cls
        self.restart()

    def restart(self) -> None:
        self.offset = 0
        self.header: list[str] | None = None
        self.inode: int | None = None
        self.rewound = False  # the file was replaced or truncated since it was last read

    def read(self) -> list[Event]:
        try:
            with open(self.path, "rb") as fh:
                stat = os.fstat(fh.fileno())
                if self.inode not in (None, stat.st_ino) or stat.st_size < self.offset:
                    self.restart()
                    self.rewound = True
                self.inode = stat.st_ino
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        lines = [line for line in chunk[:end].decode("utf-8", errors="replace").split("\n") if line]
        if self.header is None and lines:
            self.header = lines.pop(0).rstrip("\r").split(",")
            problem = header_problem(self.cls, self.header)
            if problem:
                raise RunFileError(self.path, problem)
        if self.header is None:  # no rows yet, not even the header's
            return []
        return list(parse_rows(self.cls, self.header, lines))


class RunFollower:
    """Polled by the caller (e.g. a dashboard timer): ``poll()`` returns new events."""

    def __init__(self, run: Run):
        self.run = run
        self._tails = tuple(_Tail(run.paths.csv_file(cls), cls) for cls in (IterationEnd, EpochEnd, MachineEpoch))
        self._started = False
        self._finished = False
        self._sampler: Sampler | None = None  # of the run's writer, when it runs on this host
        self._sample_due = 0.0  # time.monotonic() of the next live sample

    @property
    def finished(self) -> bool:
        return self._finished

    def poll(self) -> list[Event]:
        if self._finished:
            return []
        events: list[Event] = []
        if not self._started:
            started = self._run_started()
            if started is not None:
                events.append(started)
                self._started = True
        if self._started:
            events += self._read_metrics()
        info = self.run.info()
        if info.status == RunStatus.RUNNING:
            events += self._sample_writer(info.writer)
        else:
            if self._started:
                events += self._read_metrics()  # the last rows, written before its lock was released
            events.append(self._run_finished(info))
            self._finished = True
        return events

    def _sample_writer(self, writer: dict[str, Any] | None) -> list[MachineSample]:
        """The writer's MachineSample, about once a second, if it runs on this host (another's can't be seen)."""
        now = time.monotonic()
        if writer is None or writer["host"] != socket.gethostname() or now < self._sample_due:
            return []
        self._sample_due = now + INTERVAL
        if self._sampler is None or self._sampler.pid != writer["pid"]:
            self._sampler = Sampler.of(writer["pid"])
            return []  # CPU % is measured between two samples: the first comes a period later
        sample = self._sampler.sample()
        return [sample] if sample else []

    def _read_metrics(self) -> list[Event]:
        records = [record for tail in self._tails for record in tail.read()]
        if not any(tail.rewound for tail in self._tails):
            return records
        # Resumed elsewhere: its metrics were cut back to the saved epoch. Start over.
        for tail in self._tails:
            tail.restart()
        self._started = False
        started = self._run_started()
        if started is None:
            return []
        self._started = True
        return [started] + [record for tail in self._tails for record in tail.read()]

    def _run_started(self) -> RunStarted | None:
        try:
            config = self.run.read_config()
            meta = self.run.read_meta() or {}
            plan = self.run.read_plan() or {}
        except RunFileError:
            return None
        # plan.json appears once the data is loaded and the model built; a run
        # that ended before that is announced with what is known.
        if not plan and self.run.info().status == RunStatus.RUNNING:
            return None
        return RunStarted(
            run_id=self.run.id, config_name=meta.get("config_name", "?"), config=config,
            model_summary=self.run.read_summary(), param_count=plan.get("param_count", 0),
            steps_per_epoch=plan.get("steps_per_epoch", 0), total_iterations=plan.get("total_iterations", 0),
            epochs=config.get("EPOCHS_COUNT", 0), batch_size=config.get("BATCH_SIZE", 1),
            train_count=plan.get("train_count", 0), val_count=plan.get("val_count", 0),
            test_count=plan.get("test_count", 0), start_iteration=plan.get("start_iteration", 0),
            time=meta.get("started", 0.0), backend=meta.get("backend", "tensorflow"))

    def _run_finished(self, info: RunInfo) -> RunFinished:
        """The end of a run the store no longer lists as running; from its result when it has one."""
        if not info.status.finished:  # interrupted or corrupt: the problem says why
            return RunFinished(self.run.id, info.status, info.problem, info.iterations, info.epochs,
                               info.duration or 0.0)
        result = info.result
        return RunFinished(self.run.id, info.status, result.get("stop_reason", ""), info.iterations, info.epochs,
                           info.duration or 0.0, result.get("test_loss"), info.test_accuracy,
                           info.best_val_accuracy, result.get("error"))
