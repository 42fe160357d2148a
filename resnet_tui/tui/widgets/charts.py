"""Loss, accuracy and learning-rate charts of one run or several overlaid."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from textual.app import ComposeResult
from textual.containers import Grid

from resnet_tui.tui.history import X_AXES, RunHistory
from resnet_tui.tui.widgets.metric_chart import VAL_MARKER, LegendEntry, MetricChart, Trace

# Distinct colours for overlaid runs (plotext names).
RUN_COLORS = ("cyan+", "orange+", "magenta+", "green+", "blue+", "red+", "cyan", "orange")
SMOOTHING_STEPS = (0.0, 0.3, 0.6, 0.8, 0.9, 0.95, 0.99)
X_LABELS = {"iteration": "iteration", "epoch": "epoch", "time": "wall time", "images": "images seen"}
TRAIN_SYMBOL, VAL_SYMBOL = "━", f"─{VAL_MARKER}─"
PAN_STEP = 0.25  # [ and ] move the shown part by this share of its width
MAX_ZOOM = 1024.0
FULL_VIEW = (0.0, 1.0)


@dataclass
class ChartOptions:
    """How every chart is drawn; shared by the training and runs screens.

    ``view`` is the part of the x range shown, as fractions of the whole (of its logarithm on a
    log axis): the charts of a screen share it, it keeps its place while a live run grows, and it
    survives a change of x quantity.
    """

    smoothing: float = 0.6
    log_loss: bool = False
    x_axis: str = "iteration"
    log_x: bool = False
    ignore_outliers: bool = True  # scale y to the bulk of the points (loss and accuracy)
    view: tuple[float, float] = FULL_VIEW

    def smoother(self, step: int) -> None:
        index = min(range(len(SMOOTHING_STEPS)), key=lambda i: abs(SMOOTHING_STEPS[i] - self.smoothing))
        self.smoothing = SMOOTHING_STEPS[max(0, min(len(SMOOTHING_STEPS) - 1, index + step))]

    def next_x_axis(self) -> None:
        self.x_axis = X_AXES[(X_AXES.index(self.x_axis) + 1) % len(X_AXES)]

    @property
    def zoom(self) -> float:
        """How many times the x range is magnified (1 when all of it shows)."""
        return 1.0 / (self.view[1] - self.view[0])

    def zoom_by(self, factor: float) -> None:
        """Magnify the x range ``factor`` times (below 1: zoom out) around the middle of the view."""
        low, high = self.view
        width = min(1.0, max(1.0 / MAX_ZOOM, (high - low) / factor))
        self.view = _within((low + high - width) / 2, width)

    def pan(self, steps: int) -> None:
        """Move the view right (steps > 0) or left by PAN_STEP of its width per step."""
        low, high = self.view
        self.view = _within(low + steps * PAN_STEP * (high - low), high - low)

    def reset_view(self) -> None:
        self.view = FULL_VIEW

    def describe(self, compact: bool = False) -> str:
        """The options and their keys, as Rich markup."""
        scale = "log" if self.log_loss else "linear"
        x_scale = "log" if self.log_x else "lin"
        outliers = "clipped" if self.ignore_outliers else "shown"
        zoom = f"{self.zoom:.3g}x" + (f" at {self.view[0]:.0%}-{self.view[1]:.0%}" if self.zoom > 1 else "")
        if compact:  # what is set, not the keys (F1 lists them)
            changed = [*(["log loss"] if self.log_loss else []), *(["outliers shown"] if not self.ignore_outliers else [])]
            return " · ".join([f"x {self.x_axis}{' log' if self.log_x else ''}", f"zoom {self.zoom:.3g}x",
                               f"smooth {self.smoothing:.2f}", *changed])
        return (f"smoothing {self.smoothing:.2f} {{ }}  ·  loss {scale} (l)  ·  x: {self.x_axis} (a), "
                f"{x_scale} (x)  ·  zoom {zoom} (+ - \\[ ] 0)  ·  outliers {outliers} (o)")


def _within(low: float, width: float) -> tuple[float, float]:
    """A view ``width`` wide starting near ``low``, moved to lie inside [0, 1]."""
    low = min(max(0.0, low), 1.0 - width)
    return low, low + width


class ChartGrid(Grid):
    """The three charts, and a fourth cell from ``side`` (a compose-style function).

    ``show`` takes (label, history) pairs: one run, or several overlaid.
    """

    def __init__(self, side: Callable[[], ComposeResult] | None = None, *, id: str | None = None,
                 classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.side = side
        self.runs: list[tuple[str, RunHistory]] = []
        self.options = ChartOptions()
        self._drawn: tuple | None = None

    def compose(self) -> ComposeResult:
        yield MetricChart("loss", id="chart-loss", classes="chart")
        yield MetricChart("accuracy", y_kind="percent", id="chart-accuracy", classes="chart")
        yield MetricChart("learning rate", id="chart-lr", classes="chart")
        if self.side is not None:
            yield from self.side()

    def show(self, runs: list[tuple[str, RunHistory]], options: ChartOptions, force: bool = False) -> bool:
        """Redraw if the data or the options changed; returns whether it did."""
        key = (tuple((label, id(h), h.version) for label, h in runs), options.smoothing, options.log_loss,
               options.x_axis, options.log_x, options.view, options.ignore_outliers)
        if key == self._drawn and not force:
            return False
        self._drawn = key
        self.runs, self.options = runs, options
        overlay = len(runs) > 1
        loss, accuracy, lr = [], [], []
        for index, (label, history) in enumerate(runs):
            color = RUN_COLORS[index % len(RUN_COLORS)] if overlay else None
            loss += self._metric_traces(history, "loss", label, color, overlay)
            accuracy += self._metric_traces(history, "accuracy", label, color, overlay)
            lr.append(Trace(label if overlay else None, history.x_values(options.x_axis),
                            history.iterations["lr"], color or "yellow"))
        whole = shared_x_range(loss + accuracy + lr, options.log_x)
        common: dict[str, Any] = dict(x_axis=options.x_axis, log_x=options.log_x, zoom=options.zoom,
                                      x_range=view_range(whole, options.view, options.log_x))
        xlabel = X_LABELS[options.x_axis]
        robust = options.ignore_outliers
        legend = self._legend(runs, overlay)
        self.query_one("#chart-loss", MetricChart).set_traces(loss, xlabel, options.log_loss, robust=robust,
                                                              legend=legend, **common)
        self.query_one("#chart-accuracy", MetricChart).set_traces(accuracy, xlabel, robust=robust,
                                                                  legend=legend, **common)
        # Log scale makes every step drop (x0.1) the same height, so all of them show; a
        # schedule has no outliers.
        self.query_one("#chart-lr", MetricChart).set_traces(lr, xlabel, log_y=True, **common)
        return True

    @staticmethod
    def _legend(runs: list[tuple[str, RunHistory]], overlay: bool) -> list[LegendEntry]:
        """One run: train and val in their colours. Several: train and val by marker, then
        each run in its colour."""
        if not runs:
            return []
        if not overlay:
            return [LegendEntry(TRAIN_SYMBOL, "train", "cyan+"), LegendEntry(VAL_SYMBOL, "val", "orange+")]
        entries = [LegendEntry(TRAIN_SYMBOL, "train", essential=False), LegendEntry(VAL_SYMBOL, "val", essential=False)]
        names = short_labels([label for label, _ in runs])
        return entries + [LegendEntry("■", name, RUN_COLORS[i % len(RUN_COLORS)]) for i, name in enumerate(names)]

    def _metric_traces(self, history: RunHistory, name: str, label: str, color: str | None,
                       overlay: bool) -> list[Trace]:
        opts = self.options
        x = history.x_values(opts.x_axis)
        raw = history.iterations[name]
        traces = []
        if opts.smoothing > 0:
            if not overlay:  # the raw batches faintly behind, as TensorBoard does
                traces.append(Trace(None, x, raw, "gray", dots_only=True))
            traces.append(Trace(f"{label} train" if overlay else "train", x,
                                history.smoothed(name, opts.smoothing), color or "cyan+"))
        else:
            traces.append(Trace(f"{label} train" if overlay else "train", x, raw, color or "cyan+"))
        val = history.epochs[f"val_{name}"]
        if len(val):
            traces.append(Trace(f"{label} val" if overlay else "val", history.x_values(opts.x_axis, "epochs"),
                                val, color or "orange+", points=True))
        return traces

    def clear(self) -> None:
        self.show([], self.options, force=True)


def short_labels(labels: list[str]) -> list[str]:
    """The shortest tails (cut at '-') that still tell the labels apart: run ids
    ``20250101-120000-m8_demo`` and ``20250104-100000-m8_lr05`` are ``m8_demo`` and ``m8_lr05``."""
    split = [label.split("-") for label in labels]
    for parts in range(1, max((len(p) for p in split), default=1) + 1):
        tails = ["-".join(p[-parts:]) for p in split]
        if len(set(tails)) == len(tails):
            return tails
    return list(labels)


def shared_x_range(traces: list[Trace], log: bool = False) -> tuple[float, float]:
    """From 0 (on a log axis: the smallest x above 0) to the last x of any trace: every chart of a
    screen starts and ends at the same place."""
    highs, lows = [], []
    for trace in traces:
        x = np.asarray(trace.x, dtype=float)
        x = x[np.isfinite(x) & (x > 0)] if log else x[np.isfinite(x)]
        if len(x):
            highs.append(float(x.max()))
            lows.append(float(x.min()))
    high = max(highs, default=0.0)
    if log:
        low = min(lows, default=1.0)
        return low, high if high > low else low * 10.0
    return 0.0, high if high > 0 else 1.0


def view_range(whole: tuple[float, float], view: tuple[float, float], log: bool = False) -> tuple[float, float]:
    """The part ``view`` (fractions) of the x range ``whole``, measured along the axis as drawn."""
    low, high = (math.log10(v) for v in whole) if log else whole
    start, end = low + view[0] * (high - low), low + view[1] * (high - low)
    return (10.0 ** start, 10.0 ** end) if log else (start, end)
