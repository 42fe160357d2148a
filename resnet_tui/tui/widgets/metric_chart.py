"""A plotext chart that draws long series decimated to its own width, with readable axes.

The y axis is scaled to the data that matters (outliers clipped to its edge and
counted in the title line), ticks sit at round values written like the rest of
the dashboard, and the legend shares the title line so it never covers data.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from plotext._utility import colorize
from rich.text import Text
from textual.app import RenderResult
from textual.message import Message
from textual_plotext import PlotextPlot

from resnet_tui.tui.history import decimate_minmax
from resnet_tui.tui.widgets.axes import (
    AxisRange,
    clipped_note,
    count_outside,
    full_range,
    linear_ticks,
    log_ticks,
    robust_range,
    tick_labels,
    x_ticks,
)

ABOVE, BELOW = "▲", "▼"  # a point clipped to the top or bottom edge of the range
VAL_MARKER = "●"  # per-epoch validation values; the per-iteration train line has none


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


@dataclass
class LegendEntry:
    """One item of a chart's legend: ``symbol text`` in ``color``."""

    symbol: str
    text: str
    color: str | None = None
    essential: bool = True  # kept when the title line is short of room (an overlay's run colours)


class MetricChart(PlotextPlot):
    """A chart of :class:`Trace` objects.

    ``set_traces`` only stores the arrays and asks for a repaint; the decimation
    happens in ``render`` against the current width, so a resize stays exact and
    a 64k-point series costs ~2 points per terminal column.

    ``y_kind`` writes the y ticks: ``number`` or ``percent`` (fractions as %).
    Each rebuild posts :class:`MetricChart.Rendered`.
    """

    @dataclass
    class Rendered(Message, bubble=False):
        """The plot was rebuilt (``seconds``: what it cost)."""

        chart: MetricChart
        seconds: float

    def __init__(self, title: str, *, y_kind: str = "number", id: str | None = None,
                 classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.title = title
        self.y_kind = y_kind
        self.traces: list[Trace] = []
        self.legend: list[LegendEntry] = []
        self.xlabel = ""
        self.x_axis = "iteration"
        self.x_range: tuple[float, float] | None = None
        self.log_x = False
        self.zoom = 1.0  # how much of the whole x range x_range is (shown in the title)
        self.log_y = False
        self.robust = True
        self.render_seconds = 0.0  # what the last rebuild cost (the live view paces itself by it)
        self.plotted: dict[str, int] = {}  # points handed to plotext per trace at the last render
        self.drawn: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # and those points (y before clipping)
        self.y_range: AxisRange | None = None  # the y axis at the last render (log10 units on a log axis)
        self.clipped = (0, 0)  # points below and above it
        self.ticks: dict[str, list[str]] = {"x": [], "y": []}  # the tick labels at the last render
        self.header = ""  # the title line as shown

    def set_traces(self, traces: list[Trace], xlabel: str = "", log_y: bool = False, *,
                   x_axis: str = "iteration", x_range: tuple[float, float] | None = None, log_x: bool = False,
                   zoom: float = 1.0, robust: bool = False, legend: list[LegendEntry] | None = None) -> None:
        """``x_range`` fixes the x axis (the charts of a screen share one; zoomed, only the points
        inside it are drawn and scale y); ``robust`` scales y to the bulk of the points and clips
        the outliers."""
        self.traces, self.xlabel, self.log_y, self.log_x = traces, xlabel, log_y, log_x
        self.x_axis, self.x_range, self.zoom, self.robust = x_axis, x_range, zoom, robust
        self.legend = legend or []
        self.refresh()

    # -- drawing ------------------------------------------------------------------
    def render(self) -> RenderResult:
        start = time.perf_counter()
        plt = self.plt
        plt.clear_data()
        width, height = max(10, self.size.width), max(2, self.size.height)
        self.plotted, self.drawn = {}, {}
        drawn: list[tuple[Trace, np.ndarray, np.ndarray]] = []
        for index, trace in enumerate(self.traces):
            x, y = self._shown_points(trace)
            if not len(x):
                continue
            xs, ys = decimate_minmax(np.log10(x) if self.log_x else x, y, width)  # even columns as drawn
            xs = 10.0 ** xs if self.log_x else xs
            self.plotted[trace.label or f"#{index}"] = len(xs)
            self.drawn[trace.label or f"#{index}"] = (xs, ys)
            drawn.append((trace, np.log10(xs) if self.log_x else xs, np.log10(ys) if self.log_y else ys))

        self.y_range, self.clipped = None, (0, 0)
        self.ticks = {"x": [], "y": []}
        if drawn:
            values = [ys for _, _, ys in drawn]
            axis = (robust_range(values) if self.robust else None) or full_range(values)
            assert axis is not None  # every drawn trace has a finite point
            self.y_range = axis
            self.clipped = count_outside(values, axis)
            for trace, xs, ys in drawn:
                self._draw(trace, xs, ys, axis)
            self._set_axes(axis, width, height - 1)

        plt.plotsize(width, height - 1)  # the first row is the title line
        plt._set_size(width, height - 1)
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        header = self._header(width)
        self.header = header.plain
        rendered = Text("\n").join([header, Text.from_ansi(plt.build())])
        self.render_seconds = time.perf_counter() - start
        self.post_message(self.Rendered(self, self.render_seconds))
        return rendered

    def _shown_points(self, trace: Trace) -> tuple[np.ndarray, np.ndarray]:
        """The finite points of ``trace`` a log axis can place, inside the x range when one is set."""
        x, y = np.asarray(trace.x, dtype=float), np.asarray(trace.y, dtype=float)
        keep = np.isfinite(x) & np.isfinite(y)
        if self.log_y:
            keep &= y > 0
        if self.log_x:
            keep &= x > 0
        if self.x_range is not None:
            low, high = self.x_range
            keep &= (x >= low * (1 - 1e-9)) & (x <= high * (1 + 1e-9))
        return (x, y) if keep.all() else (x[keep], y[keep])

    def _draw(self, trace: Trace, xs: np.ndarray, ys: np.ndarray, axis: AxisRange) -> None:
        plt = self.plt
        above, below = ys > axis.high, ys < axis.low
        clipped = above.any() or below.any()
        shown = np.clip(ys, axis.low, axis.high) if clipped else ys
        x_list, y_list = xs.tolist(), shown.tolist()
        draw = plt.scatter if trace.dots_only else plt.plot
        draw(x_list, y_list, marker=trace.marker, color=trace.color)
        if trace.points:
            inside = ~(above | below)
            plt.scatter(xs[inside].tolist(), shown[inside].tolist(), marker=VAL_MARKER, color=trace.color)
        for mask, marker in ((above, ABOVE), (below, BELOW)):
            if mask.any():
                plt.scatter(xs[mask].tolist(), shown[mask].tolist(), marker=marker, color=trace.color)

    def _set_axes(self, axis: AxisRange, width: int, height: int) -> None:
        plt = self.plt
        rows = max(1, height - 2)  # the x axis and its labels take two
        y_count = max(2, min(6, rows // 2 + 1))
        if self.log_y:
            ticks = log_ticks(10 ** axis.low, 10 ** axis.high, y_count)
            positions, labels = np.log10(ticks).tolist(), tick_labels(ticks, "log")
        else:
            positions = linear_ticks(axis.low, axis.high, y_count)
            labels = tick_labels(positions, self.y_kind)
        plt.ylim(axis.low, axis.high)
        plt.yticks(positions, labels)
        self.ticks["y"] = labels

        low, high = self.x_range or self._data_x_range()
        high = high if high > low else low + 1.0
        y_width = max((len(label) for label in labels), default=1) + 2
        xticks, xlabels = x_ticks(self.x_axis, low, high, max(2, min(8, (width - y_width) // 8)), self.log_x)
        if self.log_x:
            low, high, xticks = math.log10(low), math.log10(high), np.log10(xticks).tolist()
        plt.xlim(low, high)
        plt.xticks(xticks, xlabels)
        self.ticks["x"] = xlabels

    def _data_x_range(self) -> tuple[float, float]:
        highs = [float(xs.max()) for xs, _ in self.drawn.values() if len(xs)]
        if self.log_x:
            low = min((float(xs.min()) for xs, _ in self.drawn.values() if len(xs)), default=1.0)
            return low, max(highs, default=10.0)
        return 0.0, max(highs, default=1.0)

    def _header(self, width: int) -> Text:
        """The title, the note on clipped points, and the legend on one line: the first of
        ever shorter forms that fits ``width`` (then cut)."""
        scales = ", ".join(name for name, on in (("log", self.log_y), ("log x", self.log_x),
                                                 (f"{self.zoom:.3g}x zoom", self.zoom > 1)) if on)
        log = f" ({scales})" if scales else ""
        title = self.title + log
        long_title = f"{self.title} vs {self.xlabel}{log}" if self.xlabel else title
        below, above = self.clipped
        marker = ABOVE if above and not below else BELOW if below and not above else f"{ABOVE}{BELOW}"
        clipped = below + above
        notes = [f"{marker} {clipped_note(below, above)}", f"{marker} {clipped} clipped", f"{marker}{clipped}"]

        def legend(entries: list[LegendEntry], gap: str) -> list[Text]:
            return [Text.assemble(Text.from_ansi(colorize(e.symbol, e.color)) if e.color else Text(e.symbol),
                                  gap, e.text) for e in entries]

        full, essential = legend(self.legend, " "), legend([e for e in self.legend if e.essential], "")
        header = Text()
        for name, note, entries, sep in ((long_title, notes[0], full, "  "), (title, notes[0], full, "  "),
                                         (title, notes[1], full, "  "), (title, notes[2], essential, " ")):
            parts = [Text(name, style="bold")] + ([Text(note, style="yellow")] if clipped else [])
            header = Text(sep).join(parts + entries)
            if header.cell_len <= width:
                break
        header.truncate(width, overflow="ellipsis")
        header.align("center", width)
        return header
