"""The live view of a training run: controls, progress, numbers, charts, log, model."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, Footer, Header, Static, TabbedContent, TabPane

from resnet_tui.report import format as fmt
from resnet_tui.tui.controller import SessionController, trained_here
from resnet_tui.tui.messages import (
    ChartOptionsChanged,
    PauseRequested,
    SessionChanged,
    StartChosenRequested,
    StopRunRequested,
)
from resnet_tui.tui.screens.base import DashboardScreen
from resnet_tui.tui.session import Changes, SessionState, TrainingSession
from resnet_tui.tui.widgets.charts import ChartGrid
from resnet_tui.tui.widgets.log_view import LogView
from resnet_tui.tui.widgets.machine_panel import MachinePanel
from resnet_tui.tui.widgets.metric_chart import MetricChart
from resnet_tui.tui.widgets.model_summary import ModelSummary
from resnet_tui.tui.widgets.progress import ProgressPanel

# Live charts redraw at most once a second, and less often when a rebuild is slow
# (a 64k-iteration run, a wide terminal) so they never take more than CHART_BUDGET
# of one core from training: the UI thread shares the CPU with TensorFlow.
CHART_SECONDS = 1.0
CHART_BUDGET = 0.03
LOG_STYLES = {"error": "bold red", "warning": "yellow", "info": ""}


class ChartPace:
    """When the live charts may redraw next: at most once every CHART_SECONDS, and less often when
    a redraw costs more than CHART_BUDGET of the time between two. ``clock`` is time.monotonic
    (a test gives its own)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.due = 0.0  # clock() from which the charts may redraw

    def ready(self, now: float) -> bool:
        return now >= self.due

    def drawn(self, now: float, cost: float) -> None:
        """The charts were redrawn at ``now``, and their last rebuild took ``cost`` seconds."""
        self.due = now + max(CHART_SECONDS, cost / CHART_BUDGET)


# The Runs footer shows the first few; F1 lists them all and a toast says the options after each.
CHART_BINDINGS = [
    Binding("plus,equals_sign", "app.zoom(2)", "Zoom in", key_display="+"),
    Binding("minus", "app.zoom(0.5)", "Zoom out", key_display="-"),
    Binding("left_square_bracket", "app.pan(-1)", "Pan left", key_display="[", show=False),
    Binding("right_square_bracket", "app.pan(1)", "Pan right", key_display="]", show=False),
    Binding("0", "app.reset_view", "Whole x range", key_display="0", show=False),
    Binding("left_curly_bracket", "app.smoothing(-1)", "Smooth-", key_display="{", show=False),
    Binding("right_curly_bracket", "app.smoothing(1)", "Smooth+", key_display="}", show=False),
    Binding("l", "app.toggle_log", "Log loss"),
    Binding("a", "app.next_axis", "X axis"),
    Binding("x", "app.toggle_log_x", "Log x", show=False),
    Binding("o", "app.toggle_outliers", "Outliers", show=False),
]
# The training screen prints these keys in its chart-options line instead of the footer.
QUIET_CHART_BINDINGS: list[BindingType] = [
    Binding(b.key, b.action, b.description, show=False, key_display=b.key_display) for b in CHART_BINDINGS]


class TrainScreen(DashboardScreen):
    """Draws the app's :class:`TrainingSession`: all of it when shown (read from ``controller``),
    then what each :class:`SessionChanged` the app posts after a drain says moved."""

    TITLE = "Training"
    BINDINGS: ClassVar[list[BindingType]] = QUIET_CHART_BINDINGS

    def __init__(self, controller: SessionController) -> None:
        super().__init__()
        self.controller = controller  # read only (tui/messages.py)
        self.session: TrainingSession | None = None
        self._log_seq = 0
        self._controls_state: tuple | None = None
        self.chart_pace = ChartPace()

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="train-controls"):
            yield Button("Start F5", id="start", variant="success", compact=True)
            yield Button("Pause F6", id="pause", variant="warning", compact=True)
            yield Button("Stop F7", id="stop", variant="error", compact=True)
            yield Static("", id="chart-options")
        yield ProgressPanel(id="progress")
        yield MachinePanel(id="machine")
        yield Static("", id="health")
        yield ChartGrid(self._side_panel, id="train-charts")
        yield Footer(compact=True, show_command_palette=False)

    def _show_health(self, session: TrainingSession | None) -> None:
        """One line: what the health rules saw (health.py), red when something is wrong."""
        if session is None:
            self.query_one("#health", Static).update("")
            return
        line = session.health.line()
        sick = any(a.kind in ("diverging", "stalled", "learning_rate", "overfitting") for a in session.health.alerts)
        self.query_one("#health", Static).update(Text(line, style="bold red" if sick else "dim"))

    def _side_panel(self) -> ComposeResult:
        with TabbedContent(id="train-side", classes="chart"):
            with TabPane("Log", id="tab-log"):
                yield LogView(id="train-log", wrap=True, markup=False, max_lines=2000, min_width=20)
            with TabPane("Model", id="tab-train-model"):
                yield ModelSummary("The summary appears when the run has built its model.", id="train-summary")

    def on_mount(self) -> None:
        self.show_session(self.controller.session, Changes.all())
        self.set_interval(CHART_SECONDS / 4, self._charts_tick)

    def _charts_tick(self) -> None:
        now = self.chart_pace.clock()
        if self.session is None or not self.is_current or not self.chart_pace.ready(now):
            return
        if self.redraw_charts():  # a no-op unless the history moved
            self.chart_pace.drawn(now, sum(chart.render_seconds for chart in self.query(MetricChart)))

    def on_screen_resume(self) -> None:  # after on_mount: messages wait for it
        self.show_session(self.controller.session, Changes.all())

    def on_resize(self) -> None:
        if self.is_mounted:  # the compact texts depend on the width
            self.query_one(ProgressPanel).update_from(self.session)
            self.query_one(MachinePanel).update_from(self.session)
            self.redraw_charts()

    @on(SessionChanged)
    def _session_changed(self, message: SessionChanged) -> None:
        self.show_session(message.session, message.changes)

    @on(ChartOptionsChanged)
    def _chart_options_changed(self) -> None:
        self.redraw_charts()

    def show_session(self, session: TrainingSession | None, changes: Changes) -> None:
        """Redraw what ``changes`` says moved (``Changes.all()``: everything)."""
        if session is not self.session:
            self.session, self._log_seq, self._controls_state, changes = session, 0, None, Changes.all()
            self.query_one("#train-log", LogView).clear()
            self.query_one("#train-summary", ModelSummary).show("")
        if changes.iterations or changes.status or changes.epochs:
            self.query_one(ProgressPanel).update_from(session)
        if changes.machine or changes.status:
            self.query_one(MachinePanel).update_from(session)
        if changes.alerts or changes.status or changes.finished:
            self._show_health(session)
        self._update_controls()
        if session is None:
            self.query_one(ChartGrid).clear()
            return
        self.sub_title = f"{session.config.name}" + (f" · {session.started.run_id}" if session.started else "")
        if changes.status:  # iterations and epochs: on the chart timer
            self.redraw_charts()
        if changes.log:
            self._append_log(session)
        if session.started and changes.status:
            self.query_one("#train-summary", ModelSummary).show(
                session.started.model_summary + f"\nparameters: {session.started.param_count:,}\n")

    def redraw_charts(self, force: bool = False) -> bool:
        """Redraw the charts if the history or the options moved; returns whether they were."""
        options = self.app.chart_options
        self.query_one("#chart-options", Static).update(options.describe(self.size.width < fmt.WIDE), layout=False)
        if self.session is None:
            return False
        return self.query_one(ChartGrid).show([(self.session.config.name, self.session.history)], options, force)

    def _append_log(self, session: TrainingSession) -> None:
        log = self.query_one("#train-log", LogView)
        for seq, level, text in session.log:
            if seq > self._log_seq:
                log.write(Text(f"{level[0].upper()} {text}", style=LOG_STYLES.get(level, "")))
                self._log_seq = seq

    def _update_controls(self) -> None:
        session = self.session
        state = (session.state, session.following) if session else None
        if state == self._controls_state:
            return
        self._controls_state = state
        controllable = trained_here(session)  # a followed run belongs to another process
        stopping = session is not None and session.state == SessionState.STOPPING
        pause = self.query_one("#pause", Button)
        label = "Resume F6" if session and session.state == SessionState.PAUSED else "Pause F6"
        if str(pause.label) != label:
            pause.label = label
            pause.refresh(layout=True)  # Button.label does not re-measure: "Resume F6" was cut to "Resume"
        pause.disabled = not controllable or stopping
        self.query_one("#stop", Button).disabled = not controllable or stopping
        self.query_one("#start", Button).disabled = controllable
        self.query_one("#chart-options", Static).update(self.app.chart_options.describe(self.size.width < fmt.WIDE))

    @on(Button.Pressed, "#start")
    def _start(self) -> None:
        self.post_message(StartChosenRequested())

    @on(Button.Pressed, "#pause")
    def _pause(self) -> None:
        self.post_message(PauseRequested())

    @on(Button.Pressed, "#stop")
    def _stop(self) -> None:
        self.post_message(StopRunRequested())
