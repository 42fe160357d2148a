"""A plotext chart that draws long series decimated to its own width."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from resnet_tui.tui.history import decimate_minmax


@dataclass
class Trace:
    """One line on a chart. ``x`` and ``y`` hold every point; drawing decimates."""

    label: str | None
    x: np.ndarray
    y: np.ndarray
    color: str | tuple = "cyan"
    marker: str = "braille"
    points: bool = False  # per-epoch values: few points, drawn as dots joined by a line
    dots_only: bool = False  # no joining line: ~5x cheaper for a noisy series plotext must interpolate


class MetricChart(PlotextPlot):
    """A chart of :class:`Trace` objects.

    ``set_traces`` only stores the arrays and asks for a repaint; the decimation
    happens in ``render`` against the current width, so a resize stays exact and
    a 64k-point series costs ~2 points per terminal column.
    """

    def __init__(self, title: str, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.title = title
        self.traces: list[Trace] = []
        self.xlabel = ""
        self.log_y = False
        self.renders = 0  # how many times the plot was rebuilt (for tests)
        self.render_seconds = 0.0  # what the last rebuild cost (the live view paces itself by it)
        self.plotted: dict[str, int] = {}  # points handed to plotext per trace at the last render
        self.drawn: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # and those points

    def set_traces(self, traces: list[Trace], xlabel: str = "", log_y: bool = False) -> None:
        self.traces, self.xlabel, self.log_y = traces, xlabel, log_y
        self.refresh()

    def render(self) -> RenderResult:
        start = time.perf_counter()
        plt = self.plt
        plt.clear_data()
        # The x axis is named in the title: one row less than plotext's own x label.
        plt.title(f"{self.title} vs {self.xlabel}" if self.xlabel else self.title)
        plt.yscale("linear")
        plt.ylim(None, None)
        columns = max(10, self.size.width)
        self.plotted, self.drawn = {}, {}
        drawn = False
        for index, trace in enumerate(self.traces):
            x, y = np.asarray(trace.x, dtype=float), np.asarray(trace.y, dtype=float)
            keep = np.isfinite(x) & np.isfinite(y)
            if self.log_y:
                keep &= y > 0
            if not keep.all():
                x, y = x[keep], y[keep]
            if not len(x):
                continue
            xs, ys = decimate_minmax(x, y, columns)
            self.plotted[trace.label or f"#{index}"] = len(xs)
            self.drawn[trace.label or f"#{index}"] = (xs, ys)
            draw = plt.scatter if trace.dots_only else plt.plot
            draw(xs.tolist(), ys.tolist(), marker=trace.marker, color=trace.color, label=trace.label)
            if trace.points:
                plt.scatter(xs.tolist(), ys.tolist(), marker="●", color=trace.color)
            drawn = True
        if drawn:
            self._set_y_axis()
        self.renders += 1
        rendered = super().render()
        self.render_seconds = time.perf_counter() - start
        return rendered

    def _set_y_axis(self) -> None:
        """Log or linear; a constant series (a flat lr) gets a linear axis with some height.

        (plotext divides by the y range, fails on a log axis without data, and reads
        ylim in log10 units on a log axis: so no log axis unless the data spans a range.)
        """
        values = [t.y[np.isfinite(t.y)] for t in self.traces if len(t.y)]
        values = [v for v in values if len(v)]
        if not values:
            return
        low = min(float(v.min()) for v in values)
        high = max(float(v.max()) for v in values)
        if high > low:
            if self.log_y and low > 0:
                self.plt.yscale("log")
            return
        pad = abs(low) * 0.1 or 1.0
        self.plt.ylim(low - pad, high + pad)
