"""The dashboard's messages: how screens ask the app for something, and how the app tells screens.

Screens and widgets never call the app's methods: they post a request, which
bubbles (widget -> screen -> app) to the app's ``@on`` handler. The app never
calls a screen's methods either: it posts ``SessionChanged`` or
``ChartOptionsChanged`` to the screen on show, whose ``@on`` handler redraws.
Tests watch them with ``app.run_test(message_hook=...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:  # pragma: no cover
    from resnet_tui.store.runs import RunStore
    from resnet_tui.tui.session import Changes, TrainingSession


# -- requests, posted by screens, handled by the app ------------------------------------

class StartRequested(Message):
    """Start the config under the Configs list's cursor (the Start buttons; F5 is the app's own key)."""


class PauseRequested(Message):
    """Pause the run trained here, or resume it when paused (the Pause button; F6 is the app's)."""


class StopRunRequested(Message):
    """Stop the run trained here: it finishes the step and saves (the Stop button; F7 is the app's).
    (Not ``StopRequested``: that is the training package's own name.)"""


class ResumeRequested(Message):
    """Continue the stopped or interrupted run ``run_id`` of ``store`` (r in Runs)."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        super().__init__()
        self.store = store
        self.run_id = run_id


class WatchRequested(Message):
    """Follow the run ``run_id`` of ``store`` that another process trains (w or enter in Runs)."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        super().__init__()
        self.store = store
        self.run_id = run_id


# -- news, posted by the app to the screen on show -----------------------------------------

class SessionChanged(Message, bubble=False):
    """The app's training session moved: ``changes`` says what (``Changes.all()``: redraw
    everything, e.g. a new session). ``session`` is None when there is none."""

    def __init__(self, session: TrainingSession | None, changes: Changes) -> None:
        super().__init__()
        self.session = session
        self.changes = changes


class ChartOptionsChanged(Message, bubble=False):
    """Smoothing, log scale, x axis or outliers changed (the app's ``chart_options``)."""


def read_only_refusal(what: str) -> str:
    """The toast of a read-only dashboard asked to ``what`` (start training, save configs...)."""
    return f"Read-only dashboard: it does not {what}. It browses runs and watches running ones (w)."
