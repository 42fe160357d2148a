"""The trainer: compile and fit in the calling thread, controllable from others.

The dashboard calls :meth:`Trainer.run` from a worker thread and
:meth:`Trainer.stop` / :meth:`pause` / :meth:`resume` from the UI thread; the
CLI calls it from the main thread. Everything a watcher needs arrives as plain
events through the sink; everything worth keeping lands in the run store.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Iterator

from resnet_tui.config import Config
from resnet_tui.machine import cpu_line
from resnet_tui.runs import ResumeError, Run, RunStore  # noqa: F401 (ResumeError re-exported)
from resnet_tui.training.events import LogMessage, RunFinished, RunStarted, Sink, SinkFanout


@dataclass
class TrainingPlan:
    steps_per_epoch: int
    epochs: int
    total_iterations: int


def plan_training(config: Config, train_count: int, replicas: int = 1) -> TrainingPlan:
    """How many iterations a run will do: epochs x steps, capped by MAX_ITERATIONS."""
    from resnet_tui.data import images_per_epoch

    steps = math.ceil(images_per_epoch(train_count, config.BATCH_SIZE, replicas) / config.BATCH_SIZE)
    total = steps * config.EPOCHS_COUNT
    if config.MAX_ITERATIONS:
        total = min(total, config.MAX_ITERATIONS)
    return TrainingPlan(steps, config.EPOCHS_COUNT, total)


@contextlib.contextmanager
def stderr_to_file(path) -> Iterator[None]:
    """Point file descriptor 2 at ``path`` while training.

    TensorFlow's C++ code writes warnings straight to fd 2, past Python and past
    TF_CPP_MIN_LOG_LEVEL; on a dashboard they would scribble over the screen.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (e.g. under some test runners)
        yield
        return
    try:
        with open(path, "a", encoding="utf-8") as fh:
            os.dup2(fh.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


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
                 capture_stderr: bool = True, resume_run: Run | None = None, extra_callbacks: list | None = None):
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

    @classmethod
    def resuming(cls, store: RunStore, run_id: str, sink: Sink | None = None,
                 capture_stderr: bool = True) -> "Trainer":
        """A trainer that continues run ``run_id`` from its last saved epoch."""
        from resnet_tui.config import config_from_values
        from resnet_tui.training.checkpoint import TrainingState

        run = store.open_run(run_id)
        problem = run.resume_problem()
        if problem:
            raise ResumeError(problem)
        state = TrainingState.read(run.paths.checkpoint)
        values = run.read_config()
        name = (run.read_meta() or {}).get("config_name") or run.info().config_name
        trainer = cls(config_from_values(values, name), sink, store, capture_stderr, resume_run=run)
        trainer.resume_state = state
        return trainer

    # Thread-safe controls ------------------------------------------------
    def stop(self, evaluate: bool = True) -> None:
        """Finish the current step, save, and record the run as stopped."""
        self.control.stop(evaluate)

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

        Raises only before the run exists (storage not writable, run busy);
        any failure inside the run is recorded as failed and returned.
        """
        self.store.probe_writable()
        resumed = self.run_record is not None
        run = self.run_record or self.store.create_run(self.config.name)
        self.run_record = run
        run.acquire_lock()
        try:
            return self._run_locked(run, resumed)
        finally:
            run.release_lock()

    def _run_locked(self, run: Run, resumed: bool) -> dict:
        from resnet_tui.training.recorder import RunRecorder

        run.write_meta(self.config.name, resumed=resumed)
        if resumed:
            run.begin_resume(self.resume_state.epoch, self.resume_state.iteration)
        else:
            run.write_config(self.config.values)
        sinks = [RunRecorder(run)] + ([self._external_sink] if self._external_sink is not None else [])
        self.sink = SinkFanout(sinks)
        started = time.time()
        self._streaming = None
        self._result = {"run_id": run.id, "config_name": self.config.name, "started": started}
        if resumed:
            self._result["started"] = (run.read_meta() or {}).get("started", started)
            self._result["resumed_at"] = [started]
        redirect = stderr_to_file(run.paths.log / "train.log") if self.capture_stderr else contextlib.nullcontext()
        try:
            for warning in self.config.warnings:
                self.sink(LogMessage("warning", warning))
            if resumed:
                self.sink(LogMessage("info", f"resuming {run.id} after epoch {self.resume_state.epoch}, "
                                             f"iteration {self.resume_state.iteration}"))
            with redirect:
                status, reason = self._train()
            error = None if status != "failed" else reason
        except Exception as exc:  # recorded, not raised: the caller may be a UI thread
            status, reason = "failed", f"error: {exc.__class__.__name__}"
            error = f"{exc.__class__.__name__}: {exc}"
            _try(run.write_error, traceback.format_exc())
            _try(run.log, f"[error] {error}")
            self.sink(LogMessage("error", error))
        result = self._result
        streaming = self._streaming
        state = self.resume_state
        result.update(status=status, stop_reason=reason, error=error, finished=time.time(),
                      duration=streaming.elapsed_now() if streaming and hasattr(streaming, "_t0")
                      else (state.elapsed if state else time.time() - started),
                      iterations=streaming.iteration if streaming else (state.iteration if state else 0),
                      epochs=streaming.completed_epochs if streaming else (state.epoch if state else 0))
        result.setdefault("versions", _safe(library_versions))
        result.setdefault("device", _safe(describe_device))
        if status == "failed" and not run.paths.error.joinpath("error.log").exists():
            _try(run.write_error, error + "\n")
        _try(run.write_result, result)
        try:
            self.sink(RunFinished(run.id, status, reason, result["iterations"], result["epochs"],
                                  result["duration"], result.get("test_loss"), result.get("test_accuracy"),
                                  result.get("best_val_accuracy"), error))
        except OSError:  # the disk may be full; the result above is what could be saved
            pass
        return result

    def _train(self) -> tuple[str, str]:
        import keras

        from resnet_tui.data import dispatch_load_dataset, make_eval_dataset, make_train_dataset
        from resnet_tui.models import (compile_model, count_params, dispatch_build_model, mixed_precision_warning,
                                       model_summary_text)
        from resnet_tui.training.callbacks import ControlCallback, StreamingCallback
        from resnet_tui.training.checkpoint import StateCheckpoint, restore
        from resnet_tui.training.distribute import DistributeError, Distribution
        from resnet_tui.training.events import DatasetProgress
        from resnet_tui.training.schedules import IterationStepDecay

        config, run, result, state = self.config, self.run_record, self._result, self.resume_state
        keras.utils.set_random_seed(config.SEED)
        result["versions"] = library_versions()
        result["device"] = describe_device()

        dataset = dispatch_load_dataset(config.model_number, config,
                                        progress=lambda done, total: self.sink(DatasetProgress(done, total)))
        result["dataset"] = {"source": dataset.source, "description": dataset.description, **dataset.stats()}
        self.sink(LogMessage("info", dataset.description))
        train_count = len(dataset.y_train)
        distribution = Distribution.from_config(config)  # DISTRIBUTE: none or MirroredStrategy
        replicas = distribution.replicas
        plan = plan_training(config, train_count, replicas)
        result["distribute"] = distribution.record()
        for text in distribution.messages:
            self.sink(LogMessage("info", text))
        for text in distribution.check_batches(config.BATCH_SIZE, train_count):
            self.sink(LogMessage("warning", text))
        steps_per_execution = config.get("STEPS_PER_EXECUTION") or 1
        if replicas > 1 and steps_per_execution > 1:
            # Keras' multi-step loop fails inside MirroredStrategy ("You must feed a value for
            # placeholder tensor", keras-team/keras issue 19246); one replica is fine.
            raise DistributeError(f"STEPS_PER_EXECUTION {steps_per_execution} does not work with "
                                  f"{replicas} replicas in Keras {keras.__version__} "
                                  f"(keras-team/keras issue 19246): set it to 1 with DISTRIBUTE=mirrored")
        slow = mixed_precision_warning(config.get("MIXED_PRECISION") or "float32")
        if slow:
            self.sink(LogMessage("warning", slow))

        with distribution.scope():  # model and optimizer variables are created mirrored
            model = dispatch_build_model(config.model_number, config)
            self.model = model
            step = config.STEP_SCHEDULE
            opt = config.OPTIMIZER
            schedule = None
            if step["enabled"]:
                schedule = IterationStepDecay(opt["learning_rate"], step["boundaries"], step["factor"])
            compile_model(model, config, schedule or opt["learning_rate"])
            if state:
                restore(model, run.paths.checkpoint, state)
        summary = model_summary_text(model)
        result["param_count"] = count_params(model)

        start_epoch = state.epoch if state else 0
        start_iteration = state.iteration if state else 0
        train_ds = make_train_dataset(dataset, config.BATCH_SIZE, config.AUGMENT_MODE, config.SEED,
                                      start_epoch=start_epoch, replicas=replicas)
        val_ds = (make_eval_dataset(dataset.x_val, dataset.y_val, dataset, config.BATCH_SIZE, replicas)
                  if len(dataset.y_val) else None)
        test_ds = make_eval_dataset(dataset.x_test, dataset.y_test, dataset, config.BATCH_SIZE, replicas)

        self.sink(RunStarted(
            run_id=run.id, config_name=config.name, config=config.values, model_summary=summary,
            param_count=result["param_count"], steps_per_epoch=plan.steps_per_epoch,
            total_iterations=plan.total_iterations, epochs=plan.epochs, batch_size=config.BATCH_SIZE,
            train_count=train_count, val_count=len(dataset.y_val), test_count=len(dataset.y_test),
            start_iteration=start_iteration, time=result["started"]))

        streaming = StreamingCallback(self.sink, config.BATCH_SIZE, train_count,
                                      schedule.value_at if schedule else None, self.control,
                                      start_iteration=start_iteration, start_epoch=start_epoch)
        streaming.elapsed_before = state.elapsed if state else 0.0
        self._streaming = streaming
        control = ControlCallback(self.control, config.MAX_ITERATIONS, start_iteration=start_iteration,
                                  streaming=streaming)  # exact counts with STEPS_PER_EXECUTION > 1
        best = state.best_val_accuracy if state else None
        callbacks = [*distribution.callbacks(train_ds), *self.extra_callbacks, streaming, control]
        if val_ds is not None:
            run.paths.checkpoint.mkdir(parents=True, exist_ok=True)
            # initial_value_threshold: a resumed run must not forget its best so far.
            callbacks.append(keras.callbacks.ModelCheckpoint(
                str(run.paths.checkpoint / "best.weights.h5"), monitor="val_accuracy", mode="max",
                save_best_only=True, save_weights_only=True, initial_value_threshold=best))
        callbacks.append(StateCheckpoint(run.paths.checkpoint, streaming, control, best))
        early = None
        if config.EARLY_STOP_MODE["enabled"]:
            es = config.EARLY_STOP_MODE
            early = keras.callbacks.EarlyStopping(monitor=es["monitor"], patience=es["patience"],
                                                  min_delta=es["min_delta"], verbose=es["verbose"],
                                                  restore_best_weights=es["restore_best_weights"])
            callbacks.append(early)
        if config.SCHEDULE_MODE["enabled"]:
            sm = config.SCHEDULE_MODE
            callbacks.append(keras.callbacks.ReduceLROnPlateau(
                monitor=sm["monitor"], factor=sm["factor"], patience=sm["patience"], min_delta=sm["min_delta"],
                min_lr=sm["min_lr"]))

        capped = bool(config.MAX_ITERATIONS) and start_iteration >= config.MAX_ITERATIONS
        if not self.control.stop_requested and not capped and start_epoch < plan.epochs:
            model.fit(train_ds, epochs=plan.epochs, initial_epoch=start_epoch, validation_data=val_ds,
                      callbacks=callbacks, verbose=0, shuffle=False)  # the tf.data pipeline shuffles itself

        vals = [(r["val_accuracy"], int(r["epoch"])) for r in run.read_epochs() if r["val_accuracy"] is not None]
        if vals:
            result["best_val_accuracy"], result["best_epoch"] = max(vals)
        if control.non_finite_at is not None:
            return "failed", f"training diverged: {control.stop_reason}; {kept_state_note(run)}"
        if control.stop_reason == "stopped by user" or self.control.stop_requested:
            status, reason = "stopped", "stopped by user"
        elif control.stop_reason or capped:
            status, reason = "completed", control.stop_reason or f"iteration cap ({config.MAX_ITERATIONS} iterations)"
        elif early is not None and early.stopped_epoch > 0:
            status, reason = "completed", f"early stopping on {config.EARLY_STOP_MODE['monitor']}"
        else:
            status, reason = "completed", f"epoch limit ({plan.epochs} epochs)"

        run.paths.model.mkdir(parents=True, exist_ok=True)
        model.save(run.paths.model / "final.keras")
        if status == "completed" or self.control.evaluate_on_stop:
            self.sink(LogMessage("info", f"evaluating on {len(dataset.y_test)} test images"))
            test_loss, test_acc = model.evaluate(test_ds, verbose=0)
            result["test_loss"], result["test_accuracy"] = float(test_loss), float(test_acc)
        return status, reason


def kept_state_note(run: Run) -> str:
    """Which saved state a failed run keeps, in words."""
    from resnet_tui.training.checkpoint import TrainingState

    state = TrainingState.read(run.paths.checkpoint)
    return (f"the last good state (epoch {state.epoch}, iteration {state.iteration}) is kept"
            if state else "no epoch had completed, so there is no saved state")


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
