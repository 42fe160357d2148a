"""Loss, accuracy and learning-rate charts of one run or several overlaid."""

from __future__ import annotations

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
X_LABELS = {"iteration": "iteration", "epoch": "epoch", "time": "wall time"}
TRAIN_SYMBOL, VAL_SYMBOL = "━", f"─{VAL_MARKER}─"


@dataclass
class ChartOptions:
    """How every chart is drawn; shared by the training and runs screens."""

    smoothing: float = 0.6
    log_loss: bool = False
    x_axis: str = "iteration"
    ignore_outliers: bool = True  # scale y to the bulk of the points (loss and accuracy)

    def smoother(self, step: int) -> None:
        index = min(range(len(SMOOTHING_STEPS)), key=lambda i: abs(SMOOTHING_STEPS[i] - self.smoothing))
        self.smoothing = SMOOTHING_STEPS[max(0, min(len(SMOOTHING_STEPS) - 1, index + step))]

    def next_x_axis(self) -> None:
        self.x_axis = X_AXES[(X_AXES.index(self.x_axis) + 1) % len(X_AXES)]

    def describe(self, compact: bool = False) -> str:
        """The options and their keys, as Rich markup."""
        scale = "log" if self.log_loss else "linear"
        outliers = "clipped" if self.ignore_outliers else "shown"
        if compact:
            return f"smooth {self.smoothing:.2f} \\[] · {scale} (l) · x {self.x_axis} (a) · outliers {outliers} (o)"
        return (f"smoothing {self.smoothing:.2f} \\[ ]  ·  loss {scale} (l)  ·  x: {self.x_axis} (a)  ·  "
                f"outliers {outliers} (o)")


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
        key = (tuple((label, id(h), h.version) for label, h in runs),
               options.smoothing, options.log_loss, options.x_axis, options.ignore_outliers)
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
        common: dict[str, Any] = dict(x_axis=options.x_axis, x_range=shared_x_range(loss + accuracy + lr))
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


def shared_x_range(traces: list[Trace]) -> tuple[float, float]:
    """From 0 to the last x of any trace: every chart of a screen starts and ends at the same place."""
    highs = [float(np.nanmax(t.x)) for t in traces if len(t.x) and np.isfinite(t.x).any()]
    high = max(highs, default=0.0)
    return 0.0, high if high > 0 else 1.0
