"""The trainer: compile and fit in the calling thread, controllable from others.

The dashboard calls :meth:`Trainer.run` from a worker thread and
:meth:`Trainer.stop` / :meth:`pause` / :meth:`resume` from the UI thread; the
CLI calls it from the main thread. Everything a watcher needs arrives as plain
events through the sink; everything worth keeping lands in the run store.
"""

from __future__ import annotations

import contextlib
import math
import platform
import time
import traceback
from dataclasses import dataclass

from resnet_tui.config import Config
from resnet_tui.events import LogMessage, RunFinished, RunStarted, RunStatus, Sink, SinkFanout, StopReason
from resnet_tui.machine.info import cpu_line
from resnet_tui.machine.sampler import INTERVAL, MachineMonitor
from resnet_tui.machine.stderr import fd2_to
from resnet_tui.store.runs import ResumeError, Run, RunStore


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


def describe_device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
        return ", ".join(names)
    return f"CPU: {cpu_line()}"  # with the flags that change TensorFlow's kernels


def library_versions() -> dict[str, str]:
    import keras
    import numpy
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": numpy.__version__}


class Trainer:
    """Runs one training run of ``config``, recording it in ``store``.

    ``Trainer(config).run()`` starts a new run; ``Trainer.resuming(store, id)``
    continues a stopped or interrupted one under the same id.
    """

    def __init__(self, config: Config, sink: Sink | None = None, store: RunStore | None = None,
                 capture_stderr: bool = True, resume_run: Run | None = None, extra_callbacks: list | None = None,
                 machine_interval: float | None = INTERVAL):
        from resnet_tui.training.callbacks import TrainingControl  # imports keras

        self.config = config
        self.store = store or RunStore.from_values(config.values)
        self.control = TrainingControl()
        self.capture_stderr = capture_stderr
        self.run_record: Run | None = resume_run
        self.resume_state = None
        self.model = None
        self.extra_callbacks = extra_callbacks or []  # e.g. fault injection in tests
        self._external_sink = sink
        self.machine_interval = machine_interval  # seconds between machine samples; None: none (benchmarks)
        self._monitor: MachineMonitor | None = None

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
    def stop(self) -> int | None:
        """Finish the step under way, save, and record the run as stopped; returns the
        iteration training ends at (None before training starts: it ends before its first step)."""
        return self.control.stop()

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    @property
    def paused(self) -> bool:
        return self.control.paused

    # The run ---------------------------------------------------------------
    def run(self) -> dict:
        """Train to the end; returns the result dict (also written to result.json).

        Raises only before the run exists (storage not writable, dataset missing or
        malformed, run busy); any failure inside the run is recorded as failed and returned.
        """
        import keras

        self.store.probe_writable()
        self.sink = _ignore if self._external_sink is None else self._external_sink
        keras.utils.set_random_seed(self.config.SEED)
        # Loaded before the run exists, so a typo in DATA_PATH leaves no failed run behind.
        self._dataset = self._load_data()
        resumed = self.run_record is not None
        run = self.run_record or self.store.create_run(self.config.name)
        self.run_record = run
        run.acquire_lock()
        try:
            self._begin(run, resumed)
            status, reason, error = self._train_recording_failures(run)
            return self._finish(run, status, reason, error)
        finally:
            self._stop_monitor()
            run.release_lock()

    def _begin(self, run: Run, resumed: bool) -> None:
        """Claim the run's files, start recording, say what is about to happen."""
        from resnet_tui.store.recorder import RunRecorder

        run.write_meta(self.config.name, resumed=resumed)
        if resumed:
            run.begin_resume(self.resume_state.epoch, self.resume_state.iteration)
        else:
            run.write_config(self.config.values)
        self.sink = SinkFanout([RunRecorder(run)], watchers=[] if self._external_sink is None else [self._external_sink])
        if self.machine_interval is not None:  # samples from now; each epoch's means follow its EpochEnd
            self.sink = self._monitor = MachineMonitor(self.sink, self.machine_interval).start()
        now = time.time()
        self._t_begin = now
        self._streaming = None
        self._state_checkpoint = None
        self._result = {"run_id": run.id, "config_name": self.config.name, "started": now}
        if resumed:
            self._result["started"] = (run.read_meta() or {}).get("started", now)
            self._result["resumed_at"] = [now]
        for warning in self.config.warnings:
            self.sink(LogMessage("warning", warning))
        self.sink(LogMessage("info", self._dataset.description))
        if resumed:
            self.sink(LogMessage("info", f"resuming {run.id} after epoch {self.resume_state.epoch}, "
                                         f"iteration {self.resume_state.iteration}"))

    def _train_recording_failures(self, run: Run) -> tuple[RunStatus, str, str | None]:
        """(status, stop reason, error): any exception becomes a failed run, not a raise
        (the caller may be a UI thread)."""
        try:
            with fd2_to(run.paths.train_log) if self.capture_stderr else contextlib.nullcontext():
                status, reason = self._train()
            return status, reason, (reason if status == RunStatus.FAILED else None)
        except Exception as exc:
            error = f"{exc.__class__.__name__}: {exc}"
            _try(run.write_error, traceback.format_exc())
            _try(run.log, f"[error] {error}")
            self.sink(LogMessage("error", error))
            return RunStatus.FAILED, f"{StopReason.ERROR}: {exc.__class__.__name__}", error

    def _finish(self, run: Run, status: RunStatus, reason: str, error: str | None) -> dict:
        """Write result.json (and error.log for a failure) and tell the watchers."""
        self._stop_monitor()  # no sample after RunFinished
        result, streaming, state = self._result, self._streaming, self.resume_state
        if streaming is not None:
            duration, iterations, epochs = streaming.elapsed_now(), streaming.iteration, streaming.completed_epochs
        elif state is not None:
            duration, iterations, epochs = state.elapsed, state.iteration, state.epoch
        else:
            duration, iterations, epochs = time.time() - self._t_begin, 0, 0
        result.update(status=status, stop_reason=reason, error=error, finished=time.time(), duration=duration,
                      iterations=iterations, epochs=epochs)
        result.setdefault("versions", _safe(library_versions))
        result.setdefault("device", _safe(describe_device))
        if status == RunStatus.FAILED and not run.paths.error_log.exists():
            _try(run.write_error, error + "\n")
        _try(run.write_result, result)
        try:
            self.sink(RunFinished(run.id, status, reason, iterations, epochs, duration, result.get("test_loss"),
                                  result.get("test_accuracy"), result.get("best_val_accuracy"), error))
        except OSError:  # the disk may be full; the result above is what could be saved
            pass
        return result

    def _stop_monitor(self) -> None:
        if self._monitor is not None:
            self._monitor.stop()

    def _train(self) -> tuple[RunStatus, str]:
        """The steps of a run: data, placement, model, pipelines, callbacks, fit, outcome."""
        dataset = self._dataset
        self._result["versions"] = library_versions()
        self._result["device"] = describe_device()
        self._result["dataset"] = {"source": dataset.source, "description": dataset.description, **dataset.stats()}
        distribution, plan = self._place(len(dataset.y_train))
        model, schedule = self._build_model(distribution, plan)
        train_ds, val_ds, test_ds = self._pipelines(dataset, distribution.replicas)
        self._announce(model, dataset, plan)
        callbacks = self._callbacks(train_ds, val_ds is not None, distribution, schedule, plan)
        self._fit(model, train_ds, val_ds, callbacks, plan)
        status, reason = self._outcome(plan)
        if status != RunStatus.FAILED:
            self._save_and_test(model, test_ds, status)
        return status, reason

    def _load_data(self):
        from resnet_tui.data.load import dispatch_load_dataset
        from resnet_tui.events import DatasetProgress

        return dispatch_load_dataset(self.config.model_number, self.config,
                                     progress=lambda done, total: self.sink(DatasetProgress(done, total)))

    def _place(self, train_count: int):
        """The devices (DISTRIBUTE: none or MirroredStrategy) and the plan they allow."""
        import keras

        from resnet_tui.training.compile import mixed_precision_warning
        from resnet_tui.training.distribute import DistributeError, Distribution

        config = self.config
        distribution = Distribution.from_config(config)
        self._result["distribute"] = distribution.record()
        for text in distribution.messages:
            self.sink(LogMessage("info", text))
        for text in distribution.check_batches(config.BATCH_SIZE, train_count):
            self.sink(LogMessage("warning", text))
        steps_per_execution = config.get("STEPS_PER_EXECUTION") or 1
        if distribution.replicas > 1 and steps_per_execution > 1:
            # Keras' multi-step loop fails inside MirroredStrategy ("You must feed a value for
            # placeholder tensor", keras-team/keras issue 19246); one replica is fine.
            raise DistributeError(f"STEPS_PER_EXECUTION {steps_per_execution} does not work with "
                                  f"{distribution.replicas} replicas in Keras {keras.__version__} "
                                  f"(keras-team/keras issue 19246): set it to 1 with DISTRIBUTE=mirrored")
        slow = mixed_precision_warning(config.get("MIXED_PRECISION") or "float32")
        if slow:
            self.sink(LogMessage("warning", slow))
        return distribution, plan_training(config, train_count, distribution.replicas)

    def _build_model(self, distribution, plan: TrainingPlan):
        """m8 compiled with its schedule, its variables created where the strategy wants them;
        a resumed run's weights and optimizer state restored."""
        from resnet_tui.models.resnet import dispatch_build_model
        from resnet_tui.models.summary import count_params
        from resnet_tui.training.checkpoint import restore
        from resnet_tui.training.compile import compile_model
        from resnet_tui.training.schedules import make_schedule

        config = self.config
        schedule = make_schedule(config, plan.total_iterations)
        with distribution.scope():
            model = self.model = dispatch_build_model(config.model_number, config)
            compile_model(model, config, schedule or config.OPTIMIZER["learning_rate"])
            if self.resume_state:
                restore(model, self.run_record.paths.checkpoint, self.resume_state)
        self._result["param_count"] = count_params(model)
        return model, schedule

    def _pipelines(self, dataset, replicas: int):
        """tf.data pipelines: training (shuffled, augmented per epoch), validation, test."""
        from resnet_tui.data.pipeline import make_eval_dataset, make_train_dataset

        config, start_epoch = self.config, self.resume_state.epoch if self.resume_state else 0
        train_ds = make_train_dataset(dataset, config.BATCH_SIZE, config.AUGMENT_MODE, config.SEED,
                                      start_epoch=start_epoch, replicas=replicas)
        val_ds = (make_eval_dataset(dataset.x_val, dataset.y_val, dataset, config.BATCH_SIZE, replicas)
                  if len(dataset.y_val) else None)
        test_ds = make_eval_dataset(dataset.x_test, dataset.y_test, dataset, config.BATCH_SIZE, replicas)
        return train_ds, val_ds, test_ds

    def _announce(self, model, dataset, plan: TrainingPlan) -> None:
        from resnet_tui.models.summary import model_summary_text

        config, run = self.config, self.run_record
        self.sink(RunStarted(
            run_id=run.id, config_name=config.name, config=config.values, model_summary=model_summary_text(model),
            param_count=self._result["param_count"], steps_per_epoch=plan.steps_per_epoch,
            total_iterations=plan.total_iterations, epochs=plan.epochs, batch_size=config.BATCH_SIZE,
            train_count=len(dataset.y_train), val_count=len(dataset.y_val), test_count=len(dataset.y_test),
            start_iteration=self.resume_state.iteration if self.resume_state else 0, time=self._result["started"]))

    def _callbacks(self, train_ds, validates: bool, distribution, schedule, plan: TrainingPlan) -> list:
        """In order: the strategy's, tests' extras, streaming, control, best checkpoint, early stop,
        plateau, and last the state checkpoint (so it saves what the others decided at the epoch's end)."""
        import keras

        from resnet_tui.training.callbacks import ControlCallback, StreamingCallback
        from resnet_tui.training.checkpoint import EnoughSpace, StateCheckpoint

        config, run, state = self.config, self.run_record, self.resume_state
        start_iteration, start_epoch = (state.iteration, state.epoch) if state else (0, 0)
        streaming = self._streaming = StreamingCallback(
            self.sink, schedule.value_at if schedule else None, self.control,
            start_iteration=start_iteration, start_epoch=start_epoch, elapsed_before=state.elapsed if state else 0.0)
        control = self._control_callback = ControlCallback(
            self.control, config.MAX_ITERATIONS, plan.steps_per_epoch, start_iteration=start_iteration,
            streaming=streaming)
        self._distribution_callbacks = distribution.callbacks(train_ds)
        callbacks = [*self._distribution_callbacks, *self.extra_callbacks, streaming, control]
        best = state.best_val_accuracy if state else None
        # Room for a best-weights file and the next state's, next to the state kept until then.
        callbacks.append(EnoughSpace(run.paths.checkpoint, "CHECKPOINT_PATH", files=2 if validates else 1))
        if validates:
            run.paths.checkpoint.mkdir(parents=True, exist_ok=True)
            # initial_value_threshold: a resumed run must not forget its best so far.
            callbacks.append(keras.callbacks.ModelCheckpoint(
                str(run.paths.best_weights), monitor="val_accuracy", mode="max",
                save_best_only=True, save_weights_only=True, initial_value_threshold=best))
        self._early_stopping = None
        if config.EARLY_STOP_MODE["enabled"]:
            es = config.EARLY_STOP_MODE
            self._early_stopping = keras.callbacks.EarlyStopping(
                monitor=es["monitor"], patience=es["patience"], min_delta=es["min_delta"], verbose=es["verbose"],
                restore_best_weights=es["restore_best_weights"])
            callbacks.append(self._early_stopping)
        plateau = None
        if config.SCHEDULE_MODE["enabled"]:
            sm = config.SCHEDULE_MODE
            plateau = keras.callbacks.ReduceLROnPlateau(
                monitor=sm["monitor"], factor=sm["factor"], patience=sm["patience"], min_delta=sm["min_delta"],
                min_lr=sm["min_lr"])
            callbacks.append(plateau)
        self._state_checkpoint = StateCheckpoint(
            run.paths.checkpoint, streaming, control, best, state.best_epoch if state else None,
            counting={"early_stopping": self._early_stopping, "reduce_lr_on_plateau": plateau}, resumed=state)
        callbacks.append(self._state_checkpoint)
        return callbacks

    def _fit(self, model, train_ds, val_ds, callbacks: list, plan: TrainingPlan) -> None:
        """Keras' fit, unless a resumed run has nothing left to do. A stop in the middle of an
        epoch leaves fit at once; the strategy's callbacks still get their end of training."""
        from resnet_tui.training.callbacks import StopRequested

        state = self.resume_state
        start_iteration, start_epoch = (state.iteration, state.epoch) if state else (0, 0)
        self._capped = bool(self.config.MAX_ITERATIONS) and start_iteration >= self.config.MAX_ITERATIONS
        if self._capped or start_epoch >= plan.epochs:
            return
        try:
            model.fit(train_ds, epochs=plan.epochs, initial_epoch=start_epoch, validation_data=val_ds,
                      callbacks=callbacks, verbose=0, shuffle=False)  # the tf.data pipeline shuffles itself
        except StopRequested:
            for callback in self._distribution_callbacks:
                callback.on_train_end()  # replicas' statistics averaged before the final save

    def _outcome(self, plan: TrainingPlan) -> tuple[RunStatus, str]:
        """The run's status and, in words, what ended it."""
        control, config, best = self._control_callback, self.config, self._state_checkpoint
        self._result["best_val_accuracy"], self._result["best_epoch"] = best.best_val_accuracy, best.best_epoch
        if control.non_finite_at is not None:
            return RunStatus.FAILED, f"{StopReason.DIVERGED}: {control.stop_reason}; {kept_state_note(self.run_record)}"
        if control.stop_reason and control.stop_reason.startswith(StopReason.USER):
            return RunStatus.STOPPED, self._stop_note(control)
        if control.stop_reason or self._capped:
            return RunStatus.COMPLETED, control.stop_reason or f"{StopReason.ITERATION_CAP} ({config.MAX_ITERATIONS} iterations)"
        if self._early_stopping is not None and self._early_stopping.stopped_epoch > 0:
            return RunStatus.COMPLETED, f"{StopReason.EARLY_STOPPING} on {config.EARLY_STOP_MODE['monitor']}"
        return RunStatus.COMPLETED, f"{StopReason.EPOCH_LIMIT} ({plan.epochs} epochs)"

    def _stop_note(self, control) -> str:
        """What a stop kept, in words: where it stopped and where a resume starts."""
        note = control.stop_reason
        if control.stopped_mid_epoch:
            saved = self._state_checkpoint.saved
            note += (f"; epoch {self._streaming.completed_epochs + 1} was not finished, "
                     f"so a resume starts it again from iteration {saved.iteration if saved else 0}")
        return note

    def _save_and_test(self, model, test_ds, status: RunStatus) -> None:
        """Save the final model; evaluate it on the test set if the run completed: loss, accuracy,
        per-class accuracy and confusion matrix (a stopped run is unfinished: its test figures would
        mean little and cost a wait; `resnet-tui evaluate` gives them on demand)."""
        from resnet_tui.store.atomic import write_atomic
        from resnet_tui.training.checkpoint import ensure_space, weights_file_size

        run = self.run_record
        ensure_space(run.paths.model, "MODEL_PATH", weights_file_size(model))
        write_atomic(run.paths.final_model, model.save)
        if status == RunStatus.COMPLETED:
            from resnet_tui.training.evaluate import evaluate_on_test

            dataset = self._dataset
            self.sink(LogMessage("info", f"evaluating on {len(dataset.y_test)} test images"))
            self._result.update(evaluate_on_test(model, test_ds, dataset.y_test, dataset.class_names,
                                                 source="end of training"))


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
