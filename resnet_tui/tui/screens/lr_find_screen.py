"""The learning-rate range test over the Configs screen (F9): the curve as it is measured, a cursor
to pick a rate with the arrow keys, Enter to put it in the config as an unsaved edit.

The test runs in a worker thread (training/lr_finder.py) and sends each point here; nothing is
recorded as a run. The two suggestions are marked on the curve; the choice is the person's.
"""

from __future__ import annotations

import threading
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static
from textual_plotext import PlotextPlot

from resnet_tui.config import Config, learning_rate_key


class LrCurvePlot(PlotextPlot):
    """Smoothed loss against the learning rate on a log axis, the suggestions and the cursor."""

    def show(self, lrs: list[float], smoothed: list[float], marks: dict[str, float], cursor: int | None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.xscale("log")
        plt.title("smoothed loss against learning rate (log)")
        if lrs:
            plt.plot(lrs, smoothed, marker="braille", color="cyan")
            for label, lr in marks.items():
                index = min(range(len(lrs)), key=lambda i: abs(lrs[i] - lr))
                plt.scatter([lrs[index]], [smoothed[index]], marker="●", color="yellow", label=label)
            if cursor is not None:
                plt.scatter([lrs[cursor]], [smoothed[cursor]], marker="◆", color="green", label="cursor")
        self.refresh()


REDRAW_SECONDS = 0.3  # how often the growing curve is drawn


class LrFindScreen(ModalScreen[float | None]):
    """Dismissed with the chosen rate (Enter) or None (Esc, which also stops the test)."""

    BINDINGS = [
        Binding("left", "move(-1)", "◀", show=False), Binding("right", "move(1)", "▶", show=False),
        Binding("shift+left", "move(-10)", show=False), Binding("shift+right", "move(10)", show=False),
        Binding("s", "jump('steepest')", "Steepest"), Binding("m", "jump('minimum_tenth')", "Min/10"),
        Binding("enter", "choose", "Use it"), Binding("escape", "cancel", "Cancel"),
    ]
    DEFAULT_CSS = """
    LrFindScreen { align: center middle; }
    LrFindScreen > Vertical { width: 90%; height: 80%; border: round $primary; background: $surface; }
    LrFindScreen LrCurvePlot { height: 1fr; }
    LrFindScreen #lr-status, LrFindScreen #lr-keys { height: auto; }
    """

    def __init__(self, config: Config, iterations: int = 200):
        super().__init__()
        self.config = config
        self.iterations = iterations
        self.key = learning_rate_key(config.values)
        self.curve: Any = None  # the LrCurve being measured (training/lr_finder.py)
        self.cursor: int | None = None
        self.cancel_event = threading.Event()
        self.ended = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(f"Learning-rate range test of {self.config.name}: {self.iterations} iterations at most, "
                              f"the rate growing exponentially; no run is recorded", style="bold"))
            yield LrCurvePlot()
            yield Static("", id="lr-status")
            yield Static(Text(f"←/→ move the cursor (shift: 10 points) · s steepest · m minimum/10 · "
                              f"Enter puts it in {self.key} (unsaved) · Esc cancels", style="dim"), id="lr-keys")

    def on_mount(self) -> None:
        from resnet_tui.training.lr_finder import LrCurve

        self.curve = LrCurve(self.config.name)
        self._status("building the model and compiling its first step…")
        self.run_worker(self._measure, thread=True, group="lr-find", name="lr-find")
        # Drawn on a timer, not per point: the training thread never waits for a repaint.
        self._drawn_points = 0
        self._draw_timer = self.set_interval(REDRAW_SECONDS, self._redraw_new_points)

    def _redraw_new_points(self) -> None:
        if len(self.curve.lrs) != self._drawn_points:
            self._drawn_points = len(self.curve.lrs)
            self._redraw()

    def _measure(self) -> None:
        from resnet_tui.training.lr_finder import find_lr

        try:
            find_lr(self.config, iterations=self.iterations, cancel=self.cancel_event, curve=self.curve)
            self.app.call_from_thread(self._done, None)
        except Exception as exc:  # a dataset missing, a model that cannot build: said, not raised
            self.app.call_from_thread(self._done, exc)

    def _done(self, error: Exception | None) -> None:
        self.ended = True
        self._draw_timer.stop()
        if error is not None:
            self._status(f"✗ the range test failed: {error}", "red")
            return
        if self.cursor is None and self.curve.steepest is not None:
            self.action_jump("steepest")
        self._redraw()

    def _redraw(self) -> None:
        curve = self._live_curve()
        if curve is None:
            return
        marks = {name: value for name, value in (("steepest", curve.steepest), ("min/10", curve.minimum_tenth))
                 if value is not None}
        self.query_one(LrCurvePlot).show(curve.lrs, curve.smoothed, marks, self.cursor)
        state = "done" if self.ended else f"{len(curve.lrs)} of {self.iterations}"
        end = f" · {curve.stopped}" if curve.stopped else ""
        chosen = f" · cursor {curve.lrs[self.cursor]:.3g}" if self.cursor is not None else ""
        hints = " · ".join(f"{name} {value:.3g}" for name, value in marks.items())
        self._status(f"{state}{end} · {hints}{chosen}" if hints else f"{state}{end}{chosen}")

    def _live_curve(self) -> Any:
        """The curve find_lr fills in the worker thread (appends only: safe to read here)."""
        return self.curve

    def _status(self, text: str, style: str = "") -> None:
        self.query_one("#lr-status", Static).update(Text(text, style=style))

    def action_move(self, step: int) -> None:
        curve = self._live_curve()
        if curve is None or not curve.lrs:
            return
        start = self.cursor if self.cursor is not None else len(curve.lrs) // 2
        self.cursor = max(0, min(len(curve.lrs) - 1, start + step))
        self._redraw()

    def action_jump(self, which: str) -> None:
        curve = self._live_curve()
        value = getattr(curve, which, None) if curve is not None else None
        if value is None:
            self.notify("Not enough points yet", severity="warning")
            return
        self.cursor = min(range(len(curve.lrs)), key=lambda i: abs(curve.lrs[i] - value))
        self._redraw()

    def action_choose(self) -> None:
        curve = self._live_curve()
        if curve is None or self.cursor is None:
            self.notify("Move the cursor onto the curve first (←/→, s or m)", severity="warning")
            return
        self.cancel_event.set()
        self.dismiss(float(f"{curve.lrs[self.cursor]:.3g}"))

    def action_cancel(self) -> None:
        self.cancel_event.set()
        self.dismiss(None)
