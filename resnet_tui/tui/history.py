"""Metric history for charts: every point kept in growable numpy arrays.

A full run is 64,000 iterations. The arrays hold them all (a few MB), and the
charts draw them decimated to the widget's width (:func:`decimate_minmax`), so
redraw cost depends on the screen, not on the length of the run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from resnet_tui.events import EpochEnd, IterationEnd
from resnet_tui.store.records import columns

ITERATION_FIELDS = columns(IterationEnd)
EPOCH_FIELDS = columns(EpochEnd)
X_AXES = ("iteration", "epoch", "time", "images")


class GrowableArray:
    """A 1-D float64 array with amortized O(1) appends (capacity doubles)."""

    def __init__(self, capacity: int = 1024):
        self._data = np.empty(capacity, dtype=np.float64)
        self._size = 0

    def extend(self, values: Sequence[float] | np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        need = self._size + len(values)
        if need > len(self._data):
            grown = np.empty(max(need, 2 * len(self._data)), dtype=np.float64)
            grown[:self._size] = self._data[:self._size]
            self._data = grown
        self._data[self._size:need] = values
        self._size = need

    @property
    def values(self) -> np.ndarray:
        """A read-only view of the filled part (no copy)."""
        view = self._data[:self._size]
        view.flags.writeable = False
        return view

    @property
    def capacity(self) -> int:
        return len(self._data)

    def __len__(self) -> int:
        return self._size


def _as_float(value) -> float:
    return math.nan if value is None else float(value)


class Table:
    """Named columns of GrowableArrays, all the same length."""

    def __init__(self, fields: tuple[str, ...]):
        self.fields = fields
        self.columns = {name: GrowableArray() for name in fields}

    def extend_rows(self, rows: Iterable[Sequence[float | None]]) -> int:
        rows = list(rows)
        if not rows:
            return 0
        block = np.array([[_as_float(v) for v in row] for row in rows], dtype=np.float64)
        for i, name in enumerate(self.fields):
            self.columns[name].extend(block[:, i])
        return len(rows)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name].values

    def __len__(self) -> int:
        return len(self.columns[self.fields[0]])

    @property
    def nbytes(self) -> int:
        return sum(col.capacity * 8 for col in self.columns.values())


class RunHistory:
    """Per-iteration and per-epoch metrics of one run, live or read from disk."""

    def __init__(self, steps_per_epoch: int = 0, batch_size: int = 0):
        self.iterations = Table(ITERATION_FIELDS)
        self.epochs = Table(EPOCH_FIELDS)
        self.steps_per_epoch = steps_per_epoch
        self.batch_size = batch_size  # images per iteration (0: unknown, no "images seen" axis)
        self.version = 0  # bumped on every change, so views redraw only when it moves
        self._smoothed: dict[str, _SmoothCache] = {}

    def add_iterations(self, events: Sequence[IterationEnd]) -> None:
        if self.iterations.extend_rows(tuple(getattr(e, f) for f in ITERATION_FIELDS) for e in events):
            self.version += 1

    def add_epochs(self, events: Sequence[EpochEnd]) -> None:
        if self.epochs.extend_rows(tuple(getattr(e, f) for f in EPOCH_FIELDS) for e in events):
            self.version += 1

    @classmethod
    def from_records(cls, iterations: Sequence[IterationEnd], epochs: Sequence[EpochEnd],
                     batch_size: int = 0) -> RunHistory:
        """From a run's records (``Run.read_iterations()`` / ``read_epochs()``)."""
        history = cls(_steps_per_epoch(iterations, epochs), batch_size)
        history.add_iterations(iterations)
        history.add_epochs(epochs)
        return history

    def x_values(self, axis: str, table: str = "iterations") -> np.ndarray:
        """The x coordinate of each row for an axis: iteration, epoch, time (seconds) or images
        (seen by the optimizer so far; NaN while the batch size is unknown)."""
        rows = self.iterations if table == "iterations" else self.epochs
        if axis == "time":
            return rows["elapsed"]
        if axis == "images":
            return rows["iteration"] * (self.batch_size or math.nan)
        if axis == "epoch":
            if table == "epochs":
                return rows["epoch"]
            if self.steps_per_epoch:
                return rows["iteration"] / self.steps_per_epoch
            return rows["epoch"]
        return rows["iteration"]

    def smoothed(self, name: str, weight: float) -> np.ndarray:
        """Per-iteration column ``name`` smoothed with a debiased EMA (cached, incremental)."""
        cache = self._smoothed.get(name)
        if cache is None or cache.weight != weight:
            cache = self._smoothed[name] = _SmoothCache(weight)
        return cache.update(self.iterations[name])

    @property
    def nbytes(self) -> int:
        return self.iterations.nbytes + self.epochs.nbytes


def _steps_per_epoch(iterations: Sequence[IterationEnd], epochs: Sequence[EpochEnd]) -> int:
    for e in epochs:
        if e.epoch and e.iteration:
            return max(1, round(e.iteration / e.epoch))
    return sum(1 for e in iterations if e.epoch == 1)


class _SmoothCache:
    """Debiased EMA as TensorBoard draws it, extended as points arrive.

    ``s = w*s + (1-w)*x`` and the output ``s / (1 - w**t)`` removes the pull
    towards the zero start. Non-finite inputs pass through without moving ``s``.
    """

    def __init__(self, weight: float):
        self.weight = weight
        self.state = 0.0
        self.count = 0
        self.out = GrowableArray()

    def update(self, values: np.ndarray) -> np.ndarray:
        start = len(self.out)
        if start < len(values):
            w, s, t = self.weight, self.state, self.count
            new = values[start:].tolist()
            out = []
            for x in new:
                if x != x or x in (math.inf, -math.inf):
                    out.append(x)
                    continue
                s = w * s + (1.0 - w) * x
                t += 1
                out.append(s / (1.0 - w ** t) if w > 0 else s)
            self.state, self.count = s, t
            self.out.extend(out)
        return self.out.values


def ema_debiased(values: Sequence[float], weight: float) -> np.ndarray:
    """Debiased EMA of a whole sequence (the same as :meth:`RunHistory.smoothed`)."""
    return _SmoothCache(weight).update(np.asarray(values, dtype=np.float64)).copy()


def decimate_minmax(x: np.ndarray, y: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``2 * columns`` points that draw like all of them.

    ``x`` must be non-decreasing. The x range is cut into ``columns`` equal bins
    and each bin keeps its lowest and highest y (NaNs ignored), so spikes and
    step drops survive while the point count stays tied to the screen width.
    """
    columns = max(1, int(columns))
    n = len(x)
    if n <= 2 * columns:
        return np.asarray(x), np.asarray(y)
    x0, x1 = float(x[0]), float(x[-1])
    span = (x1 - x0) or 1.0
    bins = np.minimum(((x - x0) / span * columns).astype(np.int64), columns - 1)
    starts = np.flatnonzero(np.r_[True, np.diff(bins) != 0])
    with np.errstate(invalid="ignore"):
        lows = np.fmin.reduceat(y, starts)
        highs = np.fmax.reduceat(y, starts)
    centers = x0 + (bins[starts] + 0.5) * span / columns
    xs = np.repeat(centers, 2)
    ys = np.empty(2 * len(starts))
    ys[0::2], ys[1::2] = lows, highs
    return xs, ys
