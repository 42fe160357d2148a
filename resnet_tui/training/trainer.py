"""The trainer: compile and fit in the calling thread, controllable from others.

The dashboard calls :meth:`Trainer.run` from a worker thread and
:meth:`Trainer.stop` / :meth:`pause` / :meth:`resume` from the UI thread; the
CLI calls it from the main thread. Everything a watcher needs arrives as plain
events through the sink; everything worth keeping lands in the run store.
"""

from __future__ import annotations

import contextlib
import math
import time
import traceback
from collections.abc import Collection
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from resnet_tui import backend
from resnet_tui.config import Config
from resnet_tui.events import LogMessage, RunFinished, RunStarted, RunStatus, Sink, SinkFanout, StopReason
from resnet_tui.health import HealthWatch
from resnet_tui.machine.sampler import INTERVAL, MachineMonitor
from resnet_tui.machine.stderr import fd2_to
from resnet_tui.store.json_files import FinishedStatus, RunResult
from resnet_tui.store.runs import ResumeError, Run, RunStore, StorageError

if TYPE_CHECKING:  # these import keras and TensorFlow: the trainer imports them when it runs
    import keras

    from resnet_tui.data.dataset import Dataset
    from resnet_tui.store.state import TrainingState
    from resnet_tui.training.callbacks import IterationCap, IterationCounter, StreamingCallback, TerminateOnNonFinite, UserControl
    from resnet_tui.training.checkpoint import StateCheckpoint
    from resnet_tui.training.distribute import Distribution

from resnet_tui.training.devices import describe_device, library_versions


@dataclass
class TrainingPlan:
    steps_per_epoch: int
    epochs: int
    total_iterations: int


def plan_training(config: Config, train_count: int, replicas: int = 1) -> TrainingPlan:
    """How many iterations a run will do: epochs x steps, capped by MAX_ITERATIONS."""
    from resnet_tui.data.pipeline import images_per_epoch

    steps = math.ceil(images_per_epoch(train_count, config.BATCH_SIZE, replicas) / config.BATCH_SIZE)
    total = steps * config.EPOCHS_COUNT
    if config.MAX_ITERATIONS:
        total = min(total, config.MAX_ITERATIONS)
    return TrainingPlan(steps, config.EPOCHS_COUNT, total)


@dataclass
class Placement:
    """Where a run trains (DISTRIBUTE: none or MirroredStrategy) and the plan its replicas allow."""

    distribution: Distribution
    plan: TrainingPlan


@dataclass
class Callbacks:
    """A fit's callbacks in their order (``all``), and those the trainer reads once it ends.

    The order: the strategy's, tests' extras, streaming (it keeps ``counter``),
    the stop rules (non-finite loss, iteration cap, with several processes their
    agreement on stops and pauses, user control), the best
    checkpoint, early stopping, plateau, and last the state checkpoint, so it
    saves what the others decided at the epoch's end.
    """

    all: list[keras.callbacks.Callback]
    counter: IterationCounter
    streaming: StreamingCallback
    non_finite: TerminateOnNonFinite
    iteration_cap: IterationCap
    user_control: UserControl
    state_checkpoint: StateCheckpoint
    early_stopping: keras.callbacks.EarlyStopping | None
    distribution_callbacks: list[keras.callbacks.Callback]


@dataclass
class Outcome:
    """How a run ended: its status, what ended it in words, and a failure's error."""

    status: FinishedStatus
    reason: str
    error: str | None = None


@dataclass
class Start:
    """When a run started (``started``: its first start, kept by a resume), and this process's start."""

    started: float
    began: float
    resumed_at: list[float]  # [began] when this process resumes the run


@dataclass
class Environment:
    """What a run trains with: library versions, device, and its dataset's record."""

    versions: dict[str, str]
    device: str
    dataset: dict[str, Any]


@dataclass
class Progress:
    """What a run's steps have made, each recorded as it returns, so a run that fails keeps
    what came before the failure (None or False: not reached). The result is built from it;
    result.json leaves out what the run never got to, as it always has."""

    environment: Environment | None = None
    distribute: dict[str, Any] | None = None
    param_count: int | None = None
    streaming: StreamingCallback | None = None  # made first of the callbacks: from then on, how far it got
    callbacks: Callbacks | None = None
    fitted: bool = False  # fit ended (or had nothing to do): the best validation accuracy is known
    test: dict[str, Any] | None = None  # evaluate_on_test's figures

    def unreached(self) -> set[str]:
        """The RunResult fields of what the run never got to."""
        missing = set()
        if self.environment is None:
            missing.add("dataset")
        if self.distribute is None:
            missing.add("distribute")
        if self.param_count is None:
            missing.add("param_count")
        if not self.fitted:
            missing |= {"best_val_accuracy", "best_epoch"}
        if self.test is None:
            missing |= {"test_loss", "test_accuracy", "confusion"}
        return missing


def result_record(result: RunResult, leave_out: Collection[str] = ()) -> dict[str, Any]:
    """What result.json holds: ``result``'s fields, less ``leave_out``."""
    return {key: value for key, value in asdict(result).items() if key not in leave_out}


class Trainer:
    """Runs one training run of ``config``, recording it in ``store``.

    ``Trainer(config).run()`` starts a new run; ``Trainer.resuming(store, id)``
    continues a stopped or interrupted one under the same id.
    """

    def __init__(self, config: Config, sink: Sink | None = None, store: RunStore | None = None,
                 capture_stderr: bool = True, resume_run: Run | None = None,
                 extra_callbacks: list[keras.callbacks.Callback] | None = None,
                 machine_interval: float | None = INTERVAL, sweep: dict[str, Any] | None = None):
        from resnet_tui.training.callbacks import TrainingControl  # imports keras

        self.config = config
        self.store = store or RunStore.from_values(config.values)
        self.control = TrainingControl()
        self.capture_stderr = capture_stderr
        self.run_record: Run | None = resume_run
        self.resume_state: TrainingState | None = None
        self.model: keras.Model | None = None
        self.extra_callbacks = extra_callbacks or []  # e.g. fault injection in tests
        self._external_sink = sink
        self.sink: Sink = _ignore  # while it runs: the watchers, then also the run's recorder
        self.machine_interval = machine_interval  # seconds between machine samples; None: none (benchmarks)
        self.sweep = sweep  # {"study": name, "trial": number} for a sweep's trial, kept in run.json
        self._monitor: MachineMonitor | None = None
        self.health = HealthWatch()

    @classmethod
    def resuming(cls, store: RunStore, run_id: str, sink: Sink | None = None,
                 capture_stderr: bool = True) -> Trainer:
        """A trainer that continues run ``run_id`` from its last saved epoch."""
        from resnet_tui.config import run_config
        from resnet_tui.store.state import TrainingState

        run = store.open_run(run_id)
        problem = run.resume_problem()
        if problem:
            raise ResumeError(problem)
        state = TrainingState.read(run.paths.checkpoint)
        trainer = cls(run_config(run), sink, store, capture_stderr, resume_run=run)
        trainer.resume_state = state
        return trainer

    # Thread-safe controls ------------------------------------------------
    def stop(self, cause: str | None = None, reason: str | None = None) -> int | None:
        """Finish the step under way, save, and record the run as stopped (by ``cause``, e.g. a
        signal's name, or for ``reason``); returns the iteration training ends at (None before
        training starts)."""
        return self.control.stop(cause, reason)

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    @property
    def paused(self) -> bool:
        return self.control.paused

    # The run ---------------------------------------------------------------
    def run(self) -> RunResult:
        """Train to the end; returns the result (also written to result.json).

        Raises only before the run exists (storage not writable, dataset missing or
        malformed, run busy); any failure inside the run is recorded as failed and returned.
        """
        import keras

        self.store.probe_writable()
        self.sink = _ignore if self._external_sink is None else self._external_sink
        keras.utils.set_random_seed(self.config.SEED)
        # Loaded before the run exists, so a typo in DATA_PATH leaves no failed run behind.
        dataset = self._load_data()
        resumed = self.run_record is not None
        if self.run_record is None:
            self.run_record = self.store.create_run(self.config.name)  # its lock held
        else:
            self.run_record.acquire_lock()
        run = self.run_record
        try:
            if resumed:  # under the lock: what this resume read may have changed while it waited
                self._recheck_resume(run)
            start = self._begin(run, resumed, dataset)
            progress = Progress()
            outcome = self._train_recording_failures(run, start, dataset, progress)
            return self._finish(run, start, progress, outcome)
        finally:
            self._stop_monitor()
            run.release_lock()

    def _recheck_resume(self, run: Run) -> None:
        """ResumeError if another process resumed or finished the run since :meth:`resuming` read
        its state: acting on the old state would cut away what that process recorded."""
        from resnet_tui.store.state import TrainingState

        result = run.read_result()
        if result is not None and result.get("status") == RunStatus.COMPLETED:
            raise ResumeError(f"run {run.id} was completed by another process while this resume waited")
        if TrainingState.read(run.paths.checkpoint) != self.resume_state:
            raise ResumeError(f"run {run.id} was resumed by another process while this resume waited: "
                              f"its saved state moved on; resume it again if it is not running")

    def _begin(self, run: Run, resumed: bool, dataset: Dataset) -> Start:
        """Claim the run's files, start recording, say what is about to happen."""
        from resnet_tui.store.recorder import RunRecorder

        state = self.resume_state
        run.write_meta(self.config.name, resumed=resumed, sweep=self.sweep)
        if resumed:  # from its saved state; with none (no epoch had ended), from the start
            run.begin_resume(state.epoch if state else 0, state.iteration if state else 0)
        else:
            run.write_config(self.config.values)
        self.health = HealthWatch()  # what it says goes into the result (health.py)
        self.sink = SinkFanout([RunRecorder(run), self.health],
                               watchers=[] if self._external_sink is None else [self._external_sink])
        if self.machine_interval is not None:  # samples from now; each epoch's means follow its EpochEnd
            self.sink = self._monitor = MachineMonitor(self.sink, self.machine_interval).start()
        now = time.time()
        start = Start(started=now, began=now, resumed_at=[])
        if resumed:
            start = Start(started=(run.read_meta() or {}).get("started", now), began=now, resumed_at=[now])
        for warning in self.config.warnings:
            self.sink(LogMessage("warning", warning))
        self.sink(LogMessage("info", dataset.description))
        if resumed:
            self.sink(LogMessage("info", f"resuming {run.id} after epoch {state.epoch}, iteration {state.iteration}"
                                 if state else f"resuming {run.id} from the start: no epoch had ended"))
        return start

    def _train_recording_failures(self, run: Run, start: Start, dataset: Dataset, progress: Progress) -> Outcome:
        """How the run ended: any exception becomes a failed run, not a raise
        (the caller may be a UI thread)."""
        try:
            with fd2_to(run.paths.train_log) if self.capture_stderr else contextlib.nullcontext():
                return self._train(run, start, dataset, progress)
        except Exception as exc:
            from resnet_tui.training.processes import failure_words

            error = failure_words(exc)  # names a process that died, when several train the run
            _try(run.write_error, traceback.format_exc())
            _try(run.log, f"[error] {error}")
            self.sink(LogMessage("error", error))
            return Outcome(RunStatus.FAILED, f"{StopReason.ERROR}: {exc.__class__.__name__}", error)

    def _finish(self, run: Run, start: Start, progress: Progress, outcome: Outcome) -> RunResult:
        """The result: written to result.json (and error.log for a failure), told to the watchers."""
        self._stop_monitor()  # no sample after RunFinished
        streaming, callbacks, state = progress.streaming, progress.callbacks, self.resume_state
        if streaming is not None:
            duration = streaming.elapsed_now()
            iterations, epochs = streaming.counter.iteration, streaming.counter.completed_epochs
        elif state is not None:
            duration, iterations, epochs = state.elapsed, state.iteration, state.epoch
        else:
            duration, iterations, epochs = time.time() - start.began, 0, 0
        best = callbacks.state_checkpoint if callbacks is not None and progress.fitted else None
        test, environment = progress.test or {}, progress.environment
        result = RunResult(
            status=outcome.status, run_id=run.id, config_name=self.config.name, started=start.started, finished=time.time(),
            resumed_at=start.resumed_at, stop_reason=outcome.reason, error=outcome.error,
            duration=duration, iterations=iterations, epochs=epochs, param_count=progress.param_count or 0,
            best_val_accuracy=best.best_val_accuracy if best else None, best_epoch=best.best_epoch if best else None,
            test_loss=test.get("test_loss"), test_accuracy=test.get("test_accuracy"), confusion=test.get("confusion"),
            versions=environment.versions if environment else _safe(library_versions),
            device=environment.device if environment else _safe(describe_device),
            dataset=environment.dataset if environment else {}, distribute=progress.distribute or {},
            health=[alert.record() for alert in self.health.alerts])
        if outcome.status == RunStatus.FAILED and not run.paths.error_log.exists():
            _try(run.write_error, f"{outcome.error}\n")
        leave_out = progress.unreached() | (set() if start.resumed_at else {"resumed_at"})
        try:
            run.write_result(result_record(result, leave_out))
        except OSError as exc:  # without result.json the run's figures are lost: it failed, and says where
            error = str(StorageError.writing(run.paths.result, "RESULT_PATH", exc))
            result = replace(result, status=RunStatus.FAILED, error=error,
                                         stop_reason=f"{StopReason.ERROR}: the result could not be saved")
            _try(run.write_error, f"{error}\n")
            _try(run.log, f"[error] {error}")
            with contextlib.suppress(OSError):
                self.sink(LogMessage("error", error))
        try:
            self.sink(RunFinished(run.id, result.status, result.stop_reason, iterations, epochs, duration,
                                  result.test_loss, result.test_accuracy, result.best_val_accuracy, result.error))
        except OSError:  # the disk may be full; the result above is what could be saved
            pass
        return result

    def _stop_monitor(self) -> None:
        if self._monitor is not None:
            self._monitor.stop()

    def _train(self, run: Run, start: Start, dataset: Dataset, progress: Progress) -> Outcome:
        """The steps of a run: environment, placement, model, pipelines, callbacks, fit, outcome,
        save and test; each one's product goes to the next, and into ``progress``."""
        from resnet_tui.models.summary import count_params
        from resnet_tui.training.distribute import Distribution

        progress.environment = Environment(library_versions(), describe_device(), {
            "source": dataset.source, "description": dataset.description, **dataset.stats()})
        distribution = Distribution.from_config(self.config)
        progress.distribute = distribution.record()
        placement = self._place(distribution, dataset)
        with distribution.running():
            model, schedule = self._build_model(run, placement)
            param_count = progress.param_count = count_params(model)
            train_ds, val_ds, test_ds = self._pipelines(dataset, distribution)
            self._announce(run, model, dataset, placement.plan, param_count, start.started)
            streaming = progress.streaming = self._streaming(schedule)
            callbacks = progress.callbacks = self._callbacks(run, train_ds, val_ds is not None, placement, streaming)
            self._fit(model, train_ds, val_ds, callbacks, placement.plan)
            progress.fitted = True
            outcome = self._outcome(run, callbacks, placement.plan)
            if outcome.status != RunStatus.FAILED:
                progress.test = self._save_and_test(run, model, test_ds, dataset, outcome.status)
        return outcome

    def _load_data(self) -> Dataset:
        from resnet_tui.data.load import dispatch_load_dataset
        from resnet_tui.events import DatasetProgress

        return dispatch_load_dataset(self.config.model_number, self.config,
                                     progress=lambda done, total: self.sink(DatasetProgress(done, total)))

    def _place(self, distribution: Distribution, dataset: Dataset) -> Placement:
        """The plan ``distribution``'s devices allow, once its messages are out and the config is checked."""
        import keras

        from resnet_tui.training.compile import mixed_precision_warning
        from resnet_tui.training.distribute import DistributeError

        config, train_count = self.config, len(dataset.y_train)
        for text in distribution.messages:
            self.sink(LogMessage("info", text))
        distribution.check_evaluation(config.BATCH_SIZE, len(dataset.y_val), len(dataset.y_test))
        for text in distribution.check_batches(config.BATCH_SIZE, train_count):
            self.sink(LogMessage("warning", text))
        steps_per_execution = config.get("STEPS_PER_EXECUTION") or 1
        if distribution.replicas > 1 and steps_per_execution > 1:
            # Keras' multi-step loop fails inside MirroredStrategy ("You must feed a value for
            # placeholder tensor", keras-team/keras issue 19246); one replica is fine.
            raise DistributeError(f"STEPS_PER_EXECUTION {steps_per_execution} does not work with "
                                  f"{distribution.replicas} replicas in Keras {keras.__version__} "
                                  f"(keras-team/keras issue 19246): set it to 1 with DISTRIBUTE=mirrored")
        if steps_per_execution > 1 and distribution.backend == "jax":
            # Each step's sums come out of JAX's step in its logs (steplog.JaxStepLog), one step per call.
            raise DistributeError(f"STEPS_PER_EXECUTION {steps_per_execution} is not supported on the JAX backend "
                                  f"(every iteration is recorded from its own step): set it to 1")
        slow = mixed_precision_warning(config.get("MIXED_PRECISION") or "float32")
        if slow:
            self.sink(LogMessage("warning", slow))
        return Placement(distribution, plan_training(config, train_count, distribution.replicas))

    def _build_model(self, run: Run, placement: Placement) -> tuple[keras.Model, Any]:
        """m8 compiled with its schedule (None: a constant rate), its variables created where
        the strategy wants them; a resumed run's weights and optimizer state restored."""
        from resnet_tui.models.resnet import dispatch_build_model
        from resnet_tui.training.checkpoint import restore
        from resnet_tui.training.compile import compile_model
        from resnet_tui.training.schedules import make_schedule

        config = self.config
        schedule = make_schedule(config, placement.plan.total_iterations)
        with placement.distribution.scope():
            model = self.model = dispatch_build_model(config.model_number, config)
            compile_model(model, config, schedule or config.OPTIMIZER["learning_rate"])
            if self.resume_state:
                restore(model, run.paths.checkpoint, self.resume_state)
        return model, schedule

    def _pipelines(self, dataset: Dataset, distribution: Distribution) -> tuple[Any, Any, Any]:
        """The input pipelines (data/batches.py): training (shuffled, augmented per epoch),
        validation (None: no validation split), test; with several processes, this one's shard."""
        from resnet_tui.data.batches import eval_batches, train_batches

        config, start_epoch = self.config, self.resume_state.epoch if self.resume_state else 0
        replicas, shard = distribution.replicas, distribution.shard
        train_ds = train_batches(dataset, config.BATCH_SIZE, config.AUGMENT_MODE, config.SEED,
                                 start_epoch=start_epoch, replicas=replicas, shard=shard)
        val_ds = (eval_batches(dataset.x_val, dataset.y_val, dataset, config.BATCH_SIZE, replicas, shard)
                  if len(dataset.y_val) else None)
        test_ds = eval_batches(dataset.x_test, dataset.y_test, dataset, config.BATCH_SIZE, replicas, shard)
        return train_ds, val_ds, test_ds

    def _announce(self, run: Run, model: keras.Model, dataset: Dataset, plan: TrainingPlan, param_count: int,
                  started: float) -> None:
        from resnet_tui.models.summary import model_summary_text

        config = self.config
        self.sink(RunStarted(
            run_id=run.id, config_name=config.name, config=config.values, model_summary=model_summary_text(model),
            param_count=param_count, steps_per_epoch=plan.steps_per_epoch,
            total_iterations=plan.total_iterations, epochs=plan.epochs, batch_size=config.BATCH_SIZE,
            train_count=len(dataset.y_train), val_count=len(dataset.y_val), test_count=len(dataset.y_test),
            start_iteration=self.resume_state.iteration if self.resume_state else 0, time=started,
            backend=backend.current()))

    def _streaming(self, schedule: Any) -> StreamingCallback:
        """The streaming callback, with the run's iteration counter (a resumed run's starts at its state)."""
        from resnet_tui.training.callbacks import IterationCounter, StreamingCallback

        state = self.resume_state
        counter = IterationCounter(state.iteration, state.epoch) if state else IterationCounter()
        return StreamingCallback(self.sink, schedule.value_at if schedule else None, self.control, counter,
                                 elapsed_before=state.elapsed if state else 0.0)

    def _callbacks(self, run: Run, train_ds: Any, validates: bool, placement: Placement,
                   streaming: StreamingCallback) -> Callbacks:
        """The fit's callbacks, in the order Callbacks describes."""
        import keras

        from resnet_tui.data.batches import pipeline_callbacks
        from resnet_tui.training.callbacks import stop_rules
        from resnet_tui.training.checkpoint import BestWeights, EnoughSpace, StateCheckpoint

        config, state, counter = self.config, self.resume_state, streaming.counter
        control, shared = self.control, []
        if placement.distribution.processes > 1:  # UserControl acts on what all the processes agreed
            from resnet_tui.training.processes import SharedControl

            shared = [SharedControl(self.control)]
            control = shared[0].shared
        non_finite, iteration_cap, user_control = stop_rules(control, counter, config.MAX_ITERATIONS,
                                                             placement.plan.steps_per_epoch)
        distribution_callbacks = placement.distribution.callbacks(train_ds)
        callbacks = [*distribution_callbacks, *pipeline_callbacks(train_ds), *self.extra_callbacks, streaming,
                     non_finite, iteration_cap, *shared, user_control]
        best = state.best_val_accuracy if state else None
        # Room for a best-weights file and the next state's, next to the state kept until then.
        callbacks.append(EnoughSpace(run.paths.checkpoint, "CHECKPOINT_PATH", files=2 if validates else 1))
        if validates:  # from the best so far: a resumed run must not forget it
            callbacks.append(BestWeights(run.paths.best_weights, best))
        early_stopping = None
        if config.EARLY_STOP_MODE["enabled"]:
            es = config.EARLY_STOP_MODE
            early_stopping = keras.callbacks.EarlyStopping(
                monitor=es["monitor"], patience=es["patience"], min_delta=es["min_delta"], verbose=es["verbose"],
                restore_best_weights=es["restore_best_weights"])
            callbacks.append(early_stopping)
        plateau = None
        if config.SCHEDULE_MODE["enabled"]:
            sm = config.SCHEDULE_MODE
            plateau = keras.callbacks.ReduceLROnPlateau(
                monitor=sm["monitor"], factor=sm["factor"], patience=sm["patience"], min_delta=sm["min_delta"],
                min_lr=sm["min_lr"])
            callbacks.append(plateau)
        state_checkpoint = StateCheckpoint(
            run.paths.checkpoint, counter, streaming.elapsed_now, skip_save=non_finite.diverged,
            best_val_accuracy=best, best_epoch=state.best_epoch if state else None,
            counting={"early_stopping": early_stopping, "reduce_lr_on_plateau": plateau}, resumed=state)
        callbacks.append(state_checkpoint)
        return Callbacks(callbacks, counter, streaming, non_finite, iteration_cap, user_control, state_checkpoint,
                         early_stopping, distribution_callbacks)

    def _capped_at_start(self) -> bool:
        """A resumed run already at MAX_ITERATIONS: nothing is left to fit."""
        start_iteration = self.resume_state.iteration if self.resume_state else 0
        return bool(self.config.MAX_ITERATIONS) and start_iteration >= self.config.MAX_ITERATIONS

    def _fit(self, model: keras.Model, train_ds: Any, val_ds: Any, callbacks: Callbacks, plan: TrainingPlan) -> None:
        """Keras' fit, unless a resumed run has nothing left to do. A stop in the middle of an
        epoch leaves fit at once; the strategy's callbacks still get their end of training."""
        from resnet_tui.training.callbacks import StopRequested

        start_epoch = self.resume_state.epoch if self.resume_state else 0
        if self._capped_at_start() or start_epoch >= plan.epochs:
            return
        try:
            model.fit(train_ds, epochs=plan.epochs, initial_epoch=start_epoch, validation_data=val_ds,
                      callbacks=callbacks.all, verbose=0, shuffle=False)  # the pipeline shuffles itself
        except StopRequested:
            for callback in callbacks.distribution_callbacks:
                callback.on_train_end()  # replicas' statistics averaged before the final save

    def _outcome(self, run: Run, callbacks: Callbacks, plan: TrainingPlan) -> Outcome:
        """The run's status and, in words, what ended it: the first rule that did, in this order."""
        config, non_finite, early_stopping = self.config, callbacks.non_finite, callbacks.early_stopping
        if non_finite.diverged():
            reason = f"{StopReason.DIVERGED}: {non_finite.stop_reason}; {kept_state_note(run)}"
            return Outcome(RunStatus.FAILED, reason, error=reason)
        if callbacks.user_control.stop_reason:
            return Outcome(RunStatus.STOPPED, self._stop_note(callbacks))
        cap_reason = callbacks.iteration_cap.stop_reason
        if cap_reason or self._capped_at_start():
            return Outcome(RunStatus.COMPLETED,
                           cap_reason or f"{StopReason.ITERATION_CAP} ({config.MAX_ITERATIONS} iterations)")
        if early_stopping is not None and early_stopping.stopped_epoch > 0:
            return Outcome(RunStatus.COMPLETED, f"{StopReason.EARLY_STOPPING} on {config.EARLY_STOP_MODE['monitor']}")
        return Outcome(RunStatus.COMPLETED, f"{StopReason.EPOCH_LIMIT} ({plan.epochs} epochs)")

    def _stop_note(self, callbacks: Callbacks) -> str:
        """What a stop kept, in words: where it stopped and where a resume starts."""
        user_control = callbacks.user_control
        note = user_control.stop_reason or ""
        if user_control.stopped_mid_epoch:
            saved = callbacks.state_checkpoint.saved
            note += (f"; epoch {callbacks.counter.completed_epochs + 1} was not finished, "
                     f"so a resume starts it again from iteration {saved.iteration if saved else 0}")
        return note

    def _save_and_test(self, run: Run, model: keras.Model, test_ds: Any, dataset: Dataset,
                       status: RunStatus) -> dict[str, Any] | None:
        """Save the final model; evaluate it on the test set if the run completed: loss, accuracy,
        per-class accuracy and confusion matrix (a stopped run is unfinished: its test figures would
        mean little and cost a wait; `resnet-tui evaluate` gives them on demand). Returns those
        figures (None: not evaluated)."""
        from resnet_tui.store.atomic import write_atomic
        from resnet_tui.training.checkpoint import ensure_space, weights_file_size

        ensure_space(run.paths.model, "MODEL_PATH", weights_file_size(model))
        write_atomic(run.paths.final_model, model.save)
        if status != RunStatus.COMPLETED:
            return None
        from resnet_tui.training.evaluate import evaluate_on_test

        self.control.evaluating = True  # a stop asked for now cannot skip what is under way: say so
        self.sink(LogMessage("info", f"evaluating on {len(dataset.y_test)} test images"))
        return evaluate_on_test(model, test_ds, dataset.y_test, dataset.class_names, source="end of training")


def kept_state_note(run: Run) -> str:
    """Which saved state a failed run keeps, in words."""
    from resnet_tui.store.state import TrainingState

    state = TrainingState.read(run.paths.checkpoint)
    return (f"the last good state (epoch {state.epoch}, iteration {state.iteration}) is kept"
            if state else "no epoch had completed, so there is no saved state")


def _ignore(event) -> None:
    pass


def _try(fn, *args) -> None:
    """Best effort for writes after a failure (the disk may be what failed)."""
    try:
        fn(*args)
    except OSError:
        pass


def _safe(fn):
    try:
        return fn()
    except Exception as exc:  # versions/device are nice to have, never fatal
        return f"unknown ({exc})"
