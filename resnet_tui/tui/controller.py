"""The dashboard's training session, decided in plain Python: which session there is, whether a
run is being trained here, and what start, resume, follow, pause and stop do or why they are refused.

The app (tui/app.py) keeps what is Textual's: the worker threads, the toasts, the screens and the
dialogs. It asks the controller and acts on the answer: a new :class:`TrainingSession` to run or
follow, a :class:`Question` to put to the user first, or a :class:`Refused` whose text is the toast.
The screens get the controller when the app makes them, to read from (tui/messages.py says how).

Nothing here imports Textual, and TensorFlow only loads in the training worker (session.run).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeGuard

from resnet_tui.config import Config, default_values, run_config
from resnet_tui.store.runs import RunStore
from resnet_tui.tui.session import SessionState, TrainingSession


def read_only_refusal(what: str) -> str:
    """The toast of a read-only dashboard asked to ``what`` (start training, save configs...)."""
    return f"Read-only dashboard: it does not {what}. It browses runs and watches running ones (w)."


def trained_here(session: TrainingSession | None) -> TypeGuard[TrainingSession]:
    """``session`` is a run this dashboard is training (starting, running, paused or stopping), not
    one it watches: it must be stopped (F7) before another starts, and quitting stops it."""
    return session is not None and session.active and not session.following


def watched(session: TrainingSession | None) -> TypeGuard[TrainingSession]:
    """``session`` follows a run that another process is still training: here it is only watched."""
    return session is not None and session.active and session.following


class Refused(Exception):
    """A request the dashboard turns down: ``str(refusal)`` is the toast, ``severity`` its kind."""

    def __init__(self, message: str, severity: str = "warning") -> None:
        super().__init__(message)
        self.severity = severity


@dataclass(frozen=True)
class Question:
    """Something to ask before going on: ``text``, the two answers' labels, and what to say on yes."""

    text: str
    yes: str
    no: str
    note: str = ""


class SessionController:
    """Owns the dashboard's training session and decides what may be done with it.

    ``on_new_session(session)`` is called whenever the session is replaced (started, resumed,
    followed, or set directly as tests do): the app tells the screen on show from there.
    """

    def __init__(self, store: RunStore | None = None, read_only: bool = False,
                 on_new_session: Callable[[TrainingSession | None], None] | None = None) -> None:
        # Runs go to ``store`` when one is given (--artifact-dir); else where each config says.
        self.store_given = store is not None
        self.store = store or RunStore.from_values(default_values())
        # Read-only: browse and watch runs, never write (no start, resume or config save).
        self.read_only = read_only
        self.on_new_session = on_new_session
        self._session: TrainingSession | None = None

    # -- what there is ------------------------------------------------------------------
    @property
    def session(self) -> TrainingSession | None:
        """The run started, resumed or followed here; None before the first."""
        return self._session

    @session.setter
    def session(self, session: TrainingSession | None) -> None:
        if session is self._session:
            return
        self._session = session
        if self.on_new_session is not None:
            self.on_new_session(session)

    @property
    def training_here(self) -> bool:
        """A run is being trained by this dashboard (see :func:`trained_here`)."""
        return trained_here(self._session)

    @property
    def watching(self) -> bool:
        """A run another process trains is being followed, and it goes on (see :func:`watched`)."""
        return watched(self._session)

    def run_stores(self) -> list[RunStore]:
        """Where runs are listed from: the dashboard's store and any a run of this session used."""
        stores = [self.store]
        if self._session is not None and self._session.store.roots != self.store.roots:
            stores.append(self._session.store)
        return stores

    # -- start, resume, follow: a new session, or why not ------------------------------------------
    def _refuse_if_read_only(self, what: str) -> None:
        if self.read_only:
            raise Refused(read_only_refusal(what))

    def _refuse_if_training(self, then: str) -> None:
        session = self._session
        if trained_here(session):
            raise Refused(f"A run of {session.config.name} is {session.state}: stop it (F7) {then}.")

    def check_start(self, config: Config | None) -> Question | None:
        """Whether ``config`` (None: the config has problems) may start: raises :class:`Refused`,
        or returns a :class:`Question` to ask first (a watched run goes on), or None: go."""
        self._refuse_if_read_only("start training")
        self._refuse_if_training("before starting another")
        if config is None:
            raise Refused("The config has problems: fix them in Configs (F2) first.", "error")
        if watched(self._session):
            name = self._session.config.name
            return Question(f"You are watching {name}, which another process is training.\n"
                            f"Start {config.name} here as well? Both would train at once on this machine.",
                            yes="Start it too", no="Keep watching",
                            note=f"Stopped watching {name}; it goes on training elsewhere.")
        return None

    def start(self, config: Config) -> TrainingSession:
        """The session that trains ``config`` here, once :meth:`check_start` said yes (and the user,
        if asked). The app runs its ``run`` in a worker thread."""
        store = self.store if self.store_given else RunStore.from_values(config.values)
        paths = store.path_values()
        if any(config.get(key) != folder for key, folder in paths.items()):
            # --artifact DIR: the run's folders are there, and its config.json must say so
            config = config.with_values(paths)
        session = TrainingSession(config, store)
        self.session = session
        return session

    def resume(self, store: RunStore, run_id: str) -> TrainingSession:
        """The session that continues the stopped or interrupted run ``run_id`` of ``store`` under
        its own id (run in a worker thread, as :meth:`start`'s); raises :class:`Refused`."""
        self._refuse_if_read_only("resume runs")
        session = self._session
        if trained_here(session) and run_id in (session.resume_run_id, session.started and session.started.run_id):
            raise Refused(f"{run_id} is being trained here already: the Training screen (F3) shows it.")
        self._refuse_if_training("before resuming another")
        try:
            run = store.open_run(run_id)
            problem = run.resume_problem()
            config = None if problem else run_config(run)
        except (OSError, ValueError, LookupError) as exc:
            problem, config = str(exc), None
        if config is None:
            raise Refused(f"Can't resume: {problem}", "error")
        session = TrainingSession(config, store, resume_run_id=run.id)
        self.session = session
        return session

    def follow(self, store: RunStore, run_id: str) -> TrainingSession | None:
        """The session that watches ``run_id`` of ``store``, which another process trains (the app
        polls its files in a worker thread); None when it is this dashboard's session already
        (nothing new: show it). Raises :class:`Refused`."""
        session = self._session
        if session is not None and session.started and session.started.run_id == run_id:
            return None
        if trained_here(session):
            raise Refused(f"A run of {session.config.name} is training here: stop it (F7) first.")
        try:
            followed = TrainingSession.follow(store.open_run(run_id), store)
        except (OSError, ValueError, LookupError) as exc:
            raise Refused(f"Can't watch {run_id}: {exc}", "error") from exc
        self.session = followed
        return followed

    # -- the controls -----------------------------------------------------------------------
    def _refuse_if_watched(self) -> None:
        if watched(self._session):
            raise Refused(f"{self._session.config.name} is trained by another process: here it can only be watched.")

    def pause(self) -> None:
        """Pause the run trained here, or resume it when paused; raises :class:`Refused`."""
        self._refuse_if_watched()
        session = self._session
        if session is None or not session.active:
            raise Refused("No run is training.")
        if session.state == SessionState.PAUSED:
            session.resume()
        elif not session.pause():
            raise Refused(f"Can't pause while {session.state}.")

    def stop(self) -> None:
        """Stop the run trained here: it finishes the step and saves. Raises :class:`Refused`."""
        self._refuse_if_watched()
        if self._session is None or not self._session.stop():
            raise Refused("No run is training.")

    # -- quitting -----------------------------------------------------------------------------
    def quit_question(self) -> Question | None:
        """What to ask before quitting: a run trained here is stopped first (None: just quit)."""
        if not trained_here(self._session):
            return None
        return Question(f"A run of {self._session.config.name} is training.\n"
                        "Stop it (it is recorded as stopped) and quit?", yes="Stop and quit", no="Keep training")

    def stop_training(self) -> bool:
        """The dashboard is closing: stop the run trained here, if there is one (True then). The
        training thread must not outlive the app unasked."""
        if not trained_here(self._session):
            return False
        self._session.stop()
        return True
