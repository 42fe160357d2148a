"""The dashboard app: three screens (configs, training, runs), keys, and the training worker.

Screens ask the app by message (tui/messages.py: StartRequested, WatchRequested...,
handled here with ``@on``); the app tells screens by message too (SessionChanged after
each drain or a new session, ChartOptionsChanged; ConfigWanted and QuitAsked to Configs).
What the session may do is the controller's to decide (tui/controller.py); the app runs
the workers, the toasts and the dialogs.
``run_app()`` is what ``resnet-tui`` with no arguments opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.worker import Worker, WorkerState, get_current_worker

from resnet_tui.alerts import Notifier
from resnet_tui.config import Config, default_values
from resnet_tui.machine.stderr import fd2_to
from resnet_tui.report import format as fmt
from resnet_tui.store.runs import RunStore
from resnet_tui.tui.controller import Refused, SessionController
from resnet_tui.tui.messages import (
    ChartOptionsChanged,
    ConfigWanted,
    PauseRequested,
    QuitAsked,
    QuitRequested,
    ResumeRequested,
    SessionChanged,
    StartChosenRequested,
    StartRequested,
    StopRunRequested,
    WatchRequested,
)
from resnet_tui.tui.screens.config_screen import ConfigScreen
from resnet_tui.tui.screens.dialogs import ConfirmScreen, HelpScreen, UnsavedEditsScreen
from resnet_tui.tui.screens.runs_screen import RunsScreen
from resnet_tui.tui.screens.sweeps_screen import SweepsScreen
from resnet_tui.tui.screens.train_screen import TrainScreen
from resnet_tui.tui.session import Changes, TrainingSession
from resnet_tui.tui.widgets.charts import ChartOptions

STALL_CHECK_SECONDS = 5.0  # how often a run is asked whether it stopped moving
DRAIN_SECONDS = 0.2  # how often the UI takes the trainer's events: 5 times a second

# Keys that widgets handle themselves, listed in the help overlay.
WIDGET_KEYS = [
    ("tab / shift+tab", "move between fields, lists and buttons"),
    ("↑ ↓", "move in a list or table"),
    ("enter", "Configs: edit the config under the cursor; Runs: watch a running run, or go to a run's details"),
    ("esc", "Runs: back to the table (and the filter emptied)"),
    ("← →", "switch tabs when the tab bar is focused; click a tab too"),
    ("space", "toggle a checkbox; mark a run in the runs table"),
    ("ctrl+p", "command palette"),
]


class ResnetTuiApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "resnet-tui"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (fmt.WIDE, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS = [
        Binding("f1,question_mark", "help", "Help", key_display="F1"),
        Binding("f2", "show('config')", "Configs", key_display="F2"),
        Binding("f3", "show('train')", "Training", key_display="F3"),
        Binding("f4", "show('runs')", "Runs", key_display="F4"),
        Binding("f8", "show('sweeps')", "Sweeps", key_display="F8"),
        Binding("f5", "start", "Start", key_display="F5"),
        Binding("f6", "pause", "Pause", key_display="F6"),
        Binding("f7", "stop", "Stop", key_display="F7"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, configs_dir: str | os.PathLike = "configs", store: RunStore | None = None,
                 read_only: bool = False, notifier: Notifier | None = None):
        super().__init__()
        self.configs_dir = Path(configs_dir)
        # The session and what may be done with it; a new session is posted to the screen on show.
        self.controller = SessionController(store, read_only=read_only, on_new_session=self._new_session)
        self.training_worker: Worker | None = None
        self.follow_worker: Worker | None = None  # reads a watched run's files
        self.chart_options = ChartOptions()
        self.exit_code = 0  # 128 + the signal that ended the dashboard, if one did
        self.quitting = False
        self.sweep_runner = None  # the sweep this dashboard runs (Sweeps screen), while it runs
        self.notifier = notifier or Notifier()  # where alerts go beyond this terminal (alerts.py)

    def on_mount(self) -> None:
        self.install_screen(ConfigScreen(self.configs_dir, read_only=self.read_only), "config")
        self.install_screen(TrainScreen(self.controller), "train")
        self.install_screen(RunsScreen(self.controller), "runs")
        self.install_screen(SweepsScreen(self.configs_dir.parent / "sweeps"), "sweeps")
        if self.read_only:  # in every screen's header
            for name in ("config", "train", "runs", "sweeps"):
                screen = self.get_screen(name)
                screen.title = f"{screen.TITLE} · read-only"
        self.push_screen("config")
        self.set_interval(DRAIN_SECONDS, self.drain)
        self.set_interval(STALL_CHECK_SECONDS, self.check_stall)
        # A dropped SSH session sends SIGHUP, a service manager SIGTERM: as in the CLI, the step under
        # way finishes, the run is saved and recorded as stopped, the terminal restored, then exit.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
                loop.add_signal_handler(sig, self.stop_for_signal, sig)

    def stop_for_signal(self, sig: int) -> None:
        if self.quitting:  # already stopping: the trainer is saving
            return
        self.exit_code = 128 + sig  # what a shell expects of a process ended by that signal
        if self.controller.training_here:
            self.stop_and_exit()
        else:
            self.exit(return_code=self.exit_code)

    def notify(self, message: str, *, markup: bool = False, **kwargs) -> None:
        """A toast, always plain text (``markup`` is ignored): messages carry config names, run ids,
        paths and errors, whose "[" must show as typed. Screens' and widgets' notify() lead here."""
        super().notify(message, markup=False, **kwargs)

    # -- screens ----------------------------------------------------------------
    def action_show(self, name: str) -> None:
        if isinstance(self.screen, ModalScreen):
            return
        if self.screen is not self.get_screen(name):
            self.switch_screen(name)

    def action_help(self) -> None:
        if isinstance(self.screen, ModalScreen):
            return
        sections = [("Everywhere", self._keys(type(self).BINDINGS))]
        for title, screen in (("Configs (F2)", ConfigScreen), ("Training (F3)", TrainScreen),
                              ("Runs (F4)", RunsScreen), ("Sweeps (F8)", SweepsScreen)):
            sections.append((title, self._keys(screen.BINDINGS)))
        sections.append(("In widgets", WIDGET_KEYS))
        self.push_screen(HelpScreen(sections))

    def _keys(self, bindings) -> list[tuple[str, str]]:
        rows = []
        for binding in bindings:
            shown = [self.get_key_display(Binding(key, binding.action)) for key in binding.key.split(",")]
            keys = " / ".join(k.upper() if k[:1] == "f" and k[1:].isdigit() else k for k in shown)
            rows.append((keys, binding.description or binding.action))
        return rows

    # -- training ----------------------------------------------------------------
    # The controller decides (tui/controller.py); the app runs the workers, the toasts and the
    # dialogs, and tells the screen on show.
    @property
    def session(self) -> TrainingSession | None:
        """The run started, resumed or watched here (the controller's). Setting it, as tests do to
        draw a session without a thread, hands it to the controller."""
        return self.controller.session

    @session.setter
    def session(self, session: TrainingSession | None) -> None:
        self.controller.session = session

    @property
    def read_only(self) -> bool:
        return self.controller.read_only

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        # Read-only: the training keys show dimmed in the footer (None) and do nothing.
        if self.read_only and action in ("start", "pause", "stop"):
            return None
        if action == "pause" and isinstance(self.screen, SweepsScreen):  # a sweep is started and stopped, not paused
            return False
        return True

    def say(self, refusal: Refused) -> None:
        """The toast of a refused request."""
        self.notify(str(refusal), severity=refusal.severity)

    # The screens' requests (their buttons and keys), bubbled up to the app.
    @on(StartRequested)
    def _start_requested(self, request: StartRequested) -> None:
        self.start(request.config)

    @on(StartChosenRequested)
    def _start_chosen_requested(self) -> None:
        self.action_start()

    @on(PauseRequested)
    def _pause_requested(self) -> None:
        self.action_pause()

    @on(StopRunRequested)
    def _stop_requested(self) -> None:
        self.action_stop()

    @on(ResumeRequested)
    def _resume_requested(self, request: ResumeRequested) -> None:
        self.resume_run(request.store, request.run_id)

    @on(WatchRequested)
    def _watch_requested(self, request: WatchRequested) -> None:
        self.follow_run(request.store, request.run_id)

    def action_start(self) -> None:
        """F5: start the config chosen in Configs, which the Configs screen puts in a StartRequested."""
        if isinstance(self.screen, ModalScreen):
            return
        if self.sweep_runner is not None:  # one training at a time in this process
            self.notify("A sweep runs here: its trials train one after another (F8); stop it first",
                        severity="warning")
            return
        self.get_screen("config").post_message(ConfigWanted())

    def start(self, config: Config | None) -> None:
        """Train ``config`` here (None: it has problems), in a worker thread; while a watched run
        goes on, ask first."""
        try:
            question = self.controller.check_start(config)
        except Refused as refusal:
            self.say(refusal)
            return
        assert config is not None  # check_start refuses None
        if question is None:
            self._train(self.controller.start(config))
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(question.note)
                self._train(self.controller.start(config))

        self.push_screen(ConfirmScreen(question.text, yes=question.yes, no=question.no), answered)

    def _train(self, session: TrainingSession) -> None:
        self.training_worker = self.run_worker(session.run, name="training", group="training",
                                               thread=True, exit_on_error=False)
        self.action_show("train")

    def resume_run(self, store: RunStore, run_id: str) -> None:
        """Continue a stopped or interrupted run under its own id, in a worker thread."""
        try:
            session = self.controller.resume(store, run_id)
        except Refused as refusal:
            self.say(refusal)
            return
        self._train(session)

    def follow_run(self, store: RunStore, run_id: str) -> None:
        """Watch a run that another process trains (its files, read as they grow)."""
        try:
            session = self.controller.follow(store, run_id)
        except Refused as refusal:
            self.say(refusal)
            return
        if session is not None:  # None: it is this dashboard's own session, shown as it is
            self.follow_worker = self._poll_follower(session)
        self.action_show("train")

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def _poll_follower(self, session: TrainingSession) -> None:
        """Read the watched run's files as they grow, into the session's buffer (the drain timer
        takes them), until it ends or the session is replaced (which cancels this worker)."""
        worker = get_current_worker()
        while not worker.is_cancelled and session.poll_follower():
            time.sleep(DRAIN_SECONDS)

    def action_pause(self) -> None:
        try:
            self.controller.pause()
        except Refused as refusal:
            self.say(refusal)
        self._show_session(Changes.all())

    def action_stop(self) -> None:
        try:
            self.controller.stop()
        except Refused as refusal:
            self.say(refusal)
        self._show_session(Changes.all())

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is self.follow_worker and event.state == WorkerState.ERROR and self.session is not None:
            assert event.worker.error is not None  # a worker in the ERROR state has its error
            self.session.worker_failed(event.worker.error)  # its files could not be read
            self.notify(f"Can't watch {self.session.config.name}: {event.worker.error}", severity="error", timeout=10)
            self._show_session(Changes.all())
            return
        if event.worker is not self.training_worker or self.session is None:
            return
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            assert error is not None
            self.session.worker_failed(error)
            self.notify(f"Training could not run: {error}", severity="error", timeout=10)
            self._show_session(Changes.all())
        elif event.state == WorkerState.SUCCESS:
            self.drain()  # the last events (RunFinished) may still be in the buffer

    def drain(self) -> None:
        """Timer: move the trainer's events into the session, tell the screen on show what changed."""
        session = self.session
        if session is None:
            return
        changes = session.ingest()
        if not changes:
            return
        for severity, message in changes.notices:
            self.notify(message, severity=severity, timeout=8, markup=False)  # they quote run files
        if changes.finished:
            self.bell()  # the user may be on another screen, or away
        self.raise_alerts(session, changes.alerts)
        self._show_session(changes)

    def raise_alerts(self, session: TrainingSession, alerts: list) -> None:
        """The health rules' alerts: a bell and a toast here (the end has its own), and the user's
        notifier (alerts.py) wherever it sends them."""
        for alert in alerts:
            if alert.kind not in ("completed", "stopped", "failed", "interrupted"):
                self.bell()
                self.notify(f"{session.config.name}: {alert.kind}: {alert.message}", severity="warning", timeout=12)
            if session.started is not None:
                self.notifier.send(alert, session.started.run_id, session.config.name)

    def check_stall(self) -> None:
        """Timer: a run that stopped moving says so (its writer hung or stopped writing)."""
        session = self.session
        if session is not None:
            alerts = session.check_stall()
            if alerts:
                self.raise_alerts(session, alerts)
                self._show_session(Changes(status=True))

    def _new_session(self, session: TrainingSession | None) -> None:
        """The controller's session was replaced: a new one is drawn whole."""
        if self.follow_worker is not None and (session is None or not session.following):
            self.follow_worker.cancel()  # no run is watched any more (a new watch cancels it too)
        self._show_session(Changes.all())

    def _show_session(self, changes: Changes) -> None:
        """Only the screen on show redraws; the others catch up when they are shown again."""
        self.screen.post_message(SessionChanged(self.session, changes))

    # -- chart options (training and runs screens) ------------------------------------
    def _redraw_charts(self) -> None:
        self.screen.post_message(ChartOptionsChanged())

    def action_smoothing(self, step: int) -> None:
        self.chart_options.smoother(step)
        self._redraw_charts()

    def action_toggle_log(self) -> None:
        self.chart_options.log_loss = not self.chart_options.log_loss
        self._redraw_charts()

    def action_next_axis(self) -> None:
        self.chart_options.next_x_axis()
        self._redraw_charts()

    def action_toggle_log_x(self) -> None:
        self.chart_options.log_x = not self.chart_options.log_x
        self._redraw_charts()

    def action_zoom(self, factor: float) -> None:
        self.chart_options.zoom_by(factor)
        self._redraw_charts()

    def action_pan(self, steps: int) -> None:
        self.chart_options.pan(steps)
        self._redraw_charts()

    def action_reset_view(self) -> None:
        self.chart_options.reset_view()
        self._redraw_charts()

    def action_toggle_outliers(self) -> None:
        self.chart_options.ignore_outliers = not self.chart_options.ignore_outliers
        self._redraw_charts()

    # -- quitting ---------------------------------------------------------------------
    def on_unmount(self) -> None:
        # However the app ends, the training thread must not outlive it unasked.
        self.controller.stop_training()
        if self.sweep_runner is not None:
            self.sweep_runner.stop()

    async def action_quit(self) -> None:
        if isinstance(self.screen, (ConfirmScreen, UnsavedEditsScreen)) or self.quitting:
            return
        # Edits are not dropped silently: the Configs screen asks about them, then QuitRequested.
        self.get_screen("config").post_message(QuitAsked())

    @on(QuitRequested)
    def _quit_requested(self) -> None:
        self.quit_unless_training()

    def quit_unless_training(self) -> None:
        """Quit; while this dashboard trains a run, ask first (and stop it cleanly)."""
        question = self.controller.quit_question()
        if question is None:
            self.exit()
            return

        def answered(stop: bool | None) -> None:
            if stop:
                self.stop_and_exit()

        self.push_screen(ConfirmScreen(question.text, yes=question.yes, no=question.no), answered)

    @work(group="quit")
    async def stop_and_exit(self) -> None:
        """Stop, wait for the trainer to save, then exit."""
        self.quitting = True
        self.controller.stop_training()
        self.notify("Stopping the run and saving it…", timeout=30)
        self._show_session(Changes.all())
        if self.training_worker is not None:
            with contextlib.suppress(Exception):  # a failed worker has nothing left to wait for
                await self.training_worker.wait()
        self.drain()
        self.exit(return_code=self.exit_code)


def not_writable(folder: Path) -> str | None:
    """Why ``folder`` (created if missing) cannot take a file, or None when it can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


@contextlib.contextmanager
def stderr_to_log(path: Path) -> Iterator[None]:
    """Keep the terminal for Textual and send fd 2 to a log file.

    Textual draws on ``sys.__stderr__``; TensorFlow's C++ code (its import
    included) writes to fd 2 directly, and the trainer points fd 2 at the run's
    train.log while training. So the UI gets its own duplicate of the terminal,
    and fd 2 only ever leads to log files while the app runs.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with fd2_to(path) as terminal:
        if terminal is None:  # no real fd 2: nothing to protect
            yield
            return
        saved_dunder = sys.__stderr__
        # typeshed marks sys.__stderr__ Final; Textual draws on it, so it is swapped on purpose.
        sys.__stderr__ = os.fdopen(terminal, "w",  # type: ignore[misc]
                                   encoding=getattr(saved_dunder, "encoding", None) or "utf-8",
                                   errors="replace", closefd=False)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.__stderr__.flush()
            sys.__stderr__ = saved_dunder  # type: ignore[misc]  # put back (Final in typeshed)


def run_app(configs_dir: str | os.PathLike = "configs", artifact_dir: str | os.PathLike | None = None,
            read_only: bool = False) -> int:
    """Open the dashboard; returns the exit status (128 + N after signal N). ``artifact_dir`` puts
    runs under one folder instead of the configs' paths.

    ``read_only`` (or a runs folder this process cannot write) opens it to browse and watch only.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    store = RunStore.under(artifact_dir) if artifact_dir is not None else None
    log_root = store.roots["log"] if store is not None else Path(default_values()["LOG_PATH"])
    unwritable = None if read_only else not_writable(log_root)
    if unwritable:
        print(f"{log_root} is not writable ({unwritable}): opening the dashboard read-only.", flush=True)
        read_only = True
    if read_only:  # fd 2's log goes where this user can write, not into the runs folder
        log_root = Path(tempfile.gettempdir()) / f"resnet-tui-{os.getuid()}"
    notifier = Notifier.from_settings()  # AlertSettingsError, before the screen takes the terminal
    with stderr_to_log(log_root / "dashboard-stderr.log"):
        app = ResnetTuiApp(configs_dir, store=store, read_only=read_only, notifier=notifier)
        try:
            app.run()
            return app.return_code or 0
        finally:
            if app.controller.training_here:
                # The thread finishes its step and saves before the process can exit: say why we wait.
                print("Stopping the training run (it is recorded as stopped)…", flush=True)
                app.controller.stop_training()
