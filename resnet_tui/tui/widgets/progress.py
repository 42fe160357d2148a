"""The progress line and the latest numbers of a training session."""

from __future__ import annotations

import textwrap

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import ProgressBar, Static

from resnet_tui.report import format as fmt
from resnet_tui.report.tables import STATUS_STYLES
from resnet_tui.tui.session import SessionState, TrainingSession

STATE_STYLES = {**STATUS_STYLES, "starting": "yellow", "running": "green", "paused": "yellow", "stopping": "yellow",
                "failed": "red"}


def progress_text(session: TrainingSession | None, compact: bool = False) -> Text:
    """State, iteration x / total, epoch, ETA, images/s, elapsed."""
    if session is None:
        return Text("No run yet: pick a config (F2) and press F5 to start.", style="dim")
    label = "watching" if session.following and session.active else session.state
    state = Text(label, style=f"bold {STATE_STYLES.get(session.state, '')}")
    if session.started is None:
        if session.download and session.download.total_bytes:
            d = session.download
            what = f"downloading CIFAR-10: {d.done_bytes / 1e6:.0f} / {d.total_bytes / 1e6:.0f} MB"
        elif not session.active:
            what = "ended before training began"
        elif session.following or session.phase is None:
            what = "loading TensorFlow, the data and the model…"
        else:
            what = session.phase  # loading the data, then building the model (from the trainer's events)
        return Text.assemble(state, "  ", (what, "dim"))
    start, last = session.started, session.last
    iteration = last.iteration if last else start.start_iteration
    epoch = last.epoch if last else 0
    _, images = session.rate()
    active = session.active and session.state != SessionState.PAUSED
    eta = session.eta_seconds() if active else None
    elapsed = last.elapsed if last else 0.0
    if session.phase and session.active and not session.following:  # compiling: no step done yet
        return Text.assemble(state, "  ", (session.phase, "dim"), "  ·  ",
                             f"{start.total_iterations:,} iterations" if compact else
                             f"iteration {iteration:,} / {start.total_iterations:,}  ·  {start.epochs} epochs")
    if compact:
        parts = [f"it {iteration:,}/{start.total_iterations:,}", f"ep {epoch}/{start.epochs}",
                 f"ETA {fmt.duration(eta)}", f"{fmt.rate(images if active else 0)} img/s", fmt.duration(elapsed)]
        return Text.assemble(state, " ", " · ".join(parts))
    parts = [f"iteration {iteration:,} / {start.total_iterations:,}", f"epoch {epoch} / {start.epochs}",
             f"ETA {fmt.duration(eta)}", f"{fmt.rate(images if active else 0)} img/s",
             f"elapsed {fmt.duration(elapsed)}"]
    return Text.assemble(state, "  ", "  ·  ".join(parts))


def numbers_text(session: TrainingSession | None, width: int = 160) -> Text:
    """The latest batch, epoch and validation numbers; why a failed run failed (the toast goes
    away, and a short terminal has no room for the log)."""
    error = last_error(session, width) if session is not None and session.state == SessionState.FAILED else None
    if session is None or session.last is None:
        return Text(error or "", style="red")
    last, ep = session.last, session.last_epoch
    line1 = (f"loss {fmt.number(last.loss)}  acc {fmt.percent(last.accuracy)}  "
             f"(epoch {last.epoch} mean {fmt.number(last.epoch_loss)}, {fmt.percent(last.epoch_accuracy)})  "
             f"·  lr {fmt.lr(last.lr)}")
    if ep is not None:
        best = f"{fmt.percent(session.best_val[0])} (ep {session.best_val[1]})" if session.best_val else "—"
        line2 = (f"val loss {fmt.number(ep.val_loss)}  val acc {fmt.percent(ep.val_accuracy)}  (epoch {ep.epoch})"
                 f"  ·  best {best}")
    else:
        line2 = "validation after the first epoch"
    if session.finished and session.finished.test_accuracy is not None:
        line2 += f"  ·  test acc {fmt.percent(session.finished.test_accuracy)}"
    return Text.assemble((line1, ""), "\n", (error.replace("\n", " "), "red") if error else (line2, ""))


def last_error(session: TrainingSession, width: int) -> str | None:
    """The newest error line of the session's log, in two lines of ``width`` at most (long
    paths cut to their last parts, so the reason after them still shows)."""
    text = next((text for _, level, text in reversed(session.log) if level == "error"), None)
    if text is None:
        return None
    width = max(width, 20)
    return "\n".join(textwrap.wrap(fmt.short_paths(text, width // 2), width, max_lines=2, placeholder=" …"))


class ProgressPanel(Vertical):
    """Progress bar and line, then the numbers; ``update_from`` redraws from a session."""

    def compose(self) -> ComposeResult:
        with Horizontal(id="progress-row"):
            yield ProgressBar(total=1, show_eta=False, id="progress-bar")
            yield Static(progress_text(None), id="progress-line")
        yield Static("", id="numbers")

    def update_from(self, session: TrainingSession | None) -> None:
        bar = self.query_one(ProgressBar)
        if session is not None and session.started is not None:
            bar.update(total=session.started.total_iterations or 1,
                       progress=session.last.iteration if session.last else 0)
        else:  # indeterminate (animated) only while the run is getting ready
            bar.update(total=None if session is not None and session.active else 1, progress=0)
        # Fixed-size lines (app.tcss): no layout pass, which would repaint the whole screen.
        self.query_one("#progress-line", Static).update(progress_text(session, self.size.width < fmt.WIDE), layout=False)
        self.query_one("#numbers", Static).update(numbers_text(session, self.size.width), layout=False)
