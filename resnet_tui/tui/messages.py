"""The dashboard's messages: how screens ask the app for something, and how the app tells screens.

Screens and widgets never call the app's methods: they post a request, which
bubbles (widget -> screen -> app) to the app's ``@on`` handler. The app never
calls a screen's methods either: it posts news to a screen, whose ``@on``
handler acts: ``SessionChanged`` or ``ChartOptionsChanged`` to the screen on
show, ``ConfigWanted`` or ``QuitAsked`` to the Configs screen, which answers
with a request (``StartRequested`` carrying its config, ``QuitRequested``).

What screens read: the app gives the Training and Runs screens its
:class:`~resnet_tui.tui.controller.SessionController` when it makes them
(``TrainScreen(controller)``); they read the session and the run stores from it
(``controller.session``, ``controller.run_stores()``, ``controller.training_here``)
and never change it: a start, resume, watch, pause or stop is a request here.
Tests watch the messages with ``app.run_test(message_hook=...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:  # pragma: no cover
    from resnet_tui.config import Config
    from resnet_tui.store.runs import RunStore
    from resnet_tui.tui.session import Changes, TrainingSession


# -- requests, posted by screens, handled by the app ------------------------------------

class StartRequested(Message):
    """Start ``config``, exactly that one: the Configs screen puts its current config in (its Start
    button, or its answer to ``ConfigWanted``); None when it has problems (refused, with the reason)."""

    def __init__(self, config: Config | None) -> None:
        super().__init__()
        self.config = config


class StartChosenRequested(Message):
    """Start the config chosen in Configs (the Training screen's Start button; F5 is the app's own
    key): the app asks the Configs screen for it with ``ConfigWanted``."""


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


class QuitRequested(Message):
    """Quit: the Configs screen's edits are settled (none, or discarded). Its answer to ``QuitAsked``."""


# -- news, posted by the app to a screen ----------------------------------------------------

class SessionChanged(Message, bubble=False):
    """The app's training session moved: ``changes`` says what (``Changes.all()``: redraw
    everything, e.g. a new session). ``session`` is None when there is none. To the screen on show."""

    def __init__(self, session: TrainingSession | None, changes: Changes) -> None:
        super().__init__()
        self.session = session
        self.changes = changes


class ChartOptionsChanged(Message, bubble=False):
    """Smoothing, log scale, x axis or outliers changed (the app's ``chart_options``). To the screen on show."""


class ConfigWanted(Message, bubble=False):
    """F5 or the Training screen's Start: the Configs screen answers with ``StartRequested`` carrying
    the config it has now (shown or not)."""


class QuitAsked(Message, bubble=False):
    """ctrl+q: the Configs screen asks about unsaved edits if it has any (save as, discard, cancel),
    then answers with ``QuitRequested`` unless cancelled."""
