"""Running a sweep: an Optuna study whose trials are ordinary runs.

Optuna does the searching, the pruning and the bookkeeping that several
processes share; this module turns a trial into a run and back:

- each trial draws its keys, builds the config (a combination the schema
  refuses fails that trial, with the reason) and trains it with
  :class:`~resnet_tui.training.trainer.Trainer`, tagged in run.json with its
  study and trial number; it is listed in Runs and resumable like any run;
- every epoch's validation accuracy is reported to the trial; when the pruner
  says so the run is stopped at that epoch's end (saved, resumable) with the
  pruner's reason, and the trial is PRUNED;
- the trial's value is the run's best validation accuracy (maximized);
- the budget counts completed and pruned trials across every worker
  (``MaxTrialsCallback``), so a failed trial is redone, never counted;
- the storage is a database all workers reach: by default a SQLite file in the
  artifact folder; PostgreSQL for several machines. Workers beat a heartbeat:
  a worker killed mid-trial leaves its trial RUNNING only until the next
  worker's start or trial sees the heartbeat stale and marks it FAILED
  (``fail_stale_trials``); its run stays ``interrupted`` and resumable.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from resnet_tui.config import ConfigError
from resnet_tui.events import EpochEnd, Event, RunStatus
from resnet_tui.store.runs import RunStore
from resnet_tui.sweep.spec import SweepSpec, check_trial

# Each trial is said once, by the sweep's own line; the heartbeat is stable in practice (Optuna 3-5).
optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning, module="optuna")

SPEC_ATTR = "resnet_tui_sweep"  # the study's user attribute holding the sweep (workers need no file)
RUN_ATTR = "run_id"  # each trial's user attribute: its run


class SweepStopped(Exception):
    """The person stopped the sweep: the trial under way was stopped and no new one starts."""


def default_storage(store: RunStore, name: str) -> str:
    """One machine needs no server: a SQLite file beside the runs (ARTIFACT/sweeps/NAME.db)."""
    folder = store.roots["log"].parent / "sweeps"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / f'{name}.db').resolve()}"


def open_storage(url: str, heartbeat_seconds: float) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(url, heartbeat_interval=max(1, round(heartbeat_seconds)),
                                      grace_period=max(3, round(3 * heartbeat_seconds)))


def _sampler(spec: SweepSpec, offset: int = 0) -> optuna.samplers.BaseSampler:
    """The sweep's sampler; ``offset`` (the trials in the study when this worker joined) keeps a second
    worker from drawing the first one's values all over again: the same seed would repeat them."""
    seed = None if spec.seed is None else spec.seed + offset
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    if spec.pruner == "median":
        # Steps are epochs from 1: the first that may be pruned is the one after the warm-up.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=spec.warmup_epochs + 1)
    if spec.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=spec.warmup_epochs + 1)
    return optuna.pruners.NopPruner()


def create_study(spec: SweepSpec, storage_url: str) -> optuna.Study:
    """The sweep's study, created or (same name, same storage) continued."""
    storage = open_storage(storage_url, spec.heartbeat_seconds)
    # A sweep continued later draws on from where it was, not its first values again.
    done = next((summary.n_trials for summary in optuna.get_all_study_summaries(storage, include_best_trial=False)
                 if summary.study_name == spec.name), 0)
    study = optuna.create_study(study_name=spec.name, storage=storage, direction="maximize",
                                sampler=_sampler(spec, done), pruner=_pruner(spec), load_if_exists=True)
    if SPEC_ATTR not in study.user_attrs:
        study.set_user_attr(SPEC_ATTR, spec.to_json())
    return study


def join_study(name: str, storage_url: str) -> tuple[SweepSpec, optuna.Study]:
    """A study another process created, with its sweep as stored in it (``sweep-worker``)."""
    probe = optuna.load_study(study_name=name, storage=storage_url)
    stored = probe.user_attrs.get(SPEC_ATTR)
    if stored is None:
        raise ConfigError(f"study {name!r} in {storage_url} was not made by `resnet-tui sweep`")
    spec = SweepSpec.from_json(stored)
    joined_at = len(probe.get_trials(deepcopy=False))
    return spec, optuna.load_study(study_name=name, storage=open_storage(storage_url, spec.heartbeat_seconds),
                                   sampler=_sampler(spec, joined_at), pruner=_pruner(spec))


def counted(study: optuna.Study) -> int:
    """Trials the budget counts: completed and pruned."""
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                         optuna.trial.TrialState.PRUNED)))


@dataclass
class TrialReport:
    """What a finished trial did, for the sweep's own log line."""

    number: int
    state: str
    params: dict[str, Any]
    value: float | None
    epochs: int
    run_id: str | None
    note: str


class SweepRunner:
    """Runs a study's trials in this process until its budget is spent or a person stops it."""

    def __init__(self, spec: SweepSpec, study: optuna.Study, store: RunStore | None = None,
                 sink: Callable[[Event], None] | None = None, on_trial: Callable[[TrialReport], None] | None = None):
        self.spec, self.study = spec, study
        self.store = store
        self.sink = sink or (lambda event: None)
        self.on_trial = on_trial or (lambda report: None)
        self.trainer: Any = None  # the trial under way's
        self._stopped = threading.Event()

    def run(self) -> None:
        """Trials until the budget is spent (counted over every worker) or :meth:`stop`."""
        trials, budget = self.spec.trials, []
        if trials is not None:
            if counted(self.study) >= trials:
                return
            budget = [optuna.study.MaxTrialsCallback(trials, states=(optuna.trial.TrialState.COMPLETE,
                                                                     optuna.trial.TrialState.PRUNED))]
        timeout = self.spec.timeout_minutes * 60 if self.spec.timeout_minutes else None
        # n_trials bounds a sweep whose every trial fails (a refused combination, a missing dataset).
        self.study.optimize(self._objective, n_trials=None if trials is None else 10 * trials, timeout=timeout,
                            callbacks=budget, catch=(TrialFailed,), gc_after_trial=True)

    def stop(self) -> None:
        """Stop the trial under way (saved, resumable) and start no other."""
        self._stopped.set()
        self.study.stop()
        if self.trainer is not None:
            self.trainer.stop()

    def _objective(self, trial: optuna.Trial) -> float:
        from resnet_tui.training.trainer import Trainer

        if self._stopped.is_set():
            raise SweepStopped
        drawn = {param.key: param.suggest(trial) for param in self.spec.params}
        try:
            config = check_trial(self.spec, drawn)
        except ConfigError as exc:
            self._report(trial, "FAIL", drawn, None, 0, None, f"refused: {exc}")
            raise TrialFailed(str(exc)) from None
        pruning = _PruneOnEpochs(trial)

        def sink(event: Event) -> None:
            pruning(event, trainer)
            self.sink(event)

        store = self.store or RunStore.from_values(config.values)
        self.trainer = trainer = Trainer(config, sink=sink, store=store,
                                         sweep={"study": self.spec.name, "trial": trial.number})
        try:
            result = trainer.run()
        finally:
            self.trainer = None
        trial.set_user_attr(RUN_ATTR, result.run_id)
        epochs = result.epochs or 0
        if pruning.reason is not None and result.status == RunStatus.STOPPED:
            self._report(trial, "PRUNED", drawn, pruning.best, epochs, result.run_id, pruning.reason)
            raise optuna.TrialPruned(pruning.reason)
        if self._stopped.is_set() and result.status == RunStatus.STOPPED:
            note = f"stopped by user; resume its run with `resnet-tui resume {result.run_id}`"
            self._report(trial, "FAIL", drawn, pruning.best, epochs, result.run_id, note)
            raise TrialFailed(note)
        if result.status != RunStatus.COMPLETED or pruning.best is None:
            note = result.error or result.stop_reason or "no validation accuracy (is validation_count 0?)"
            self._report(trial, "FAIL", drawn, pruning.best, epochs, result.run_id, note)
            raise TrialFailed(note)
        self._report(trial, "COMPLETE", drawn, pruning.best, epochs, result.run_id, result.stop_reason or "")
        return pruning.best

    def _report(self, trial: optuna.Trial, state: str, drawn: dict[str, Any], value: float | None, epochs: int,
                run_id: str | None, note: str) -> None:
        trial.set_user_attr("note", note)
        trial.set_user_attr("epochs", epochs)
        self.on_trial(TrialReport(trial.number, state, drawn, value, epochs, run_id, note))


class TrialFailed(Exception):
    """A trial that ended without a value; Optuna records it FAILED and the sweep goes on."""


class _PruneOnEpochs:
    """Reports each epoch's validation accuracy to the trial; stops the run when the pruner says so."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial
        self.best: float | None = None
        self.reason: str | None = None

    def __call__(self, event: Event, trainer: Any) -> None:
        if not isinstance(event, EpochEnd) or event.val_accuracy is None or self.reason is not None:
            return
        self.best = max(self.best or 0.0, event.val_accuracy)
        self.trial.report(event.val_accuracy, event.epoch)
        if self.trial.should_prune():
            self.reason = (f"pruned at epoch {event.epoch} by the {type(self.trial.study.pruner).__name__}: "
                           f"val acc {event.val_accuracy:.2%} against the other trials at that epoch")
            trainer.stop(reason=self.reason)  # at this epoch's end: it is validated and saved whole


def best_config_values(spec: SweepSpec, study: optuna.Study) -> dict[str, Any]:
    """The base config with the best completed trial's values."""
    from resnet_tui.sweep.spec import trial_values

    best = study.best_trial
    drawn = {param.key: _stored(best.params[param.key]) for param in spec.params}
    return trial_values(spec, drawn)


def _stored(value: Any) -> Any:
    """A choice Optuna stored as JSON text (a list) back to its value."""
    import json

    return json.loads(value) if isinstance(value, str) and value.startswith("[") else value


def importances(study: optuna.Study) -> dict[str, float]:
    """Which keys mattered, by Optuna's default evaluator ({} before two trials completed)."""
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(completed) < 2 or len(completed[0].params) < 1:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):  # e.g. every trial drew the same values
        return {}


def study_path_hint(url: str) -> str:
    return str(Path(url.removeprefix("sqlite:///"))) if url.startswith("sqlite:///") else url
