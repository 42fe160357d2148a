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
from resnet_tui.runs import Run, RunStore
from resnet_tui.training.events import LogMessage, RunFinished, RunStarted, Sink, SinkFanout


@dataclass
class TrainingPlan:
    steps_per_epoch: int
    epochs: int
    total_iterations: int


def plan_training(config: Config, train_count: int) -> TrainingPlan:
    """How many iterations a run will do: epochs x steps, capped by MAX_ITERATIONS."""
    steps = math.ceil(train_count / config.BATCH_SIZE)
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
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU: {cpu} ({os.cpu_count()} cores)"


def library_versions() -> dict[str, str]:
    import keras
    import numpy
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": numpy.__version__}


class Trainer:
    """Runs one training run of ``config``, recording it in ``store``."""

    def __init__(self, config: Config, sink: Sink | None = None, store: RunStore | None = None,
                 capture_stderr: bool = True):
        from resnet_tui.training.callbacks import TrainingControl  # imports keras

        self.config = config
        self.store = store or RunStore.from_values(config.values)
        self.control = TrainingControl()
        self.capture_stderr = capture_stderr
        self.run_record: Run | None = None
        self._external_sink = sink

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

        Never raises for a failure inside the run: it is recorded as failed.
        """
        run = self.store.create_run(self.config.name)
        self.run_record = run
        run.write_meta(self.config.name)
        run.write_config(self.config.values)
        from resnet_tui.training.recorder import RunRecorder

        recorder = RunRecorder(run)
        sinks = [recorder] + ([self._external_sink] if self._external_sink is not None else [])
        self.sink = SinkFanout(sinks)
        started = time.time()
        self._streaming = None
        self._result = {"run_id": run.id, "config_name": self.config.name, "started": started}
        redirect = stderr_to_file(run.paths.log / "train.log") if self.capture_stderr else contextlib.nullcontext()
        try:
            for warning in self.config.warnings:
                self.sink(LogMessage("warning", warning))
            with redirect:
                status, reason = self._train()
            error = None
        except Exception as exc:  # recorded, not raised: the caller may be a UI thread
            status, reason = "failed", f"error: {exc.__class__.__name__}"
            error = f"{exc.__class__.__name__}: {exc}"
            run.write_error(traceback.format_exc())
            run.log(f"[error] {error}")
            self.sink(LogMessage("error", error))
        result = self._result
        streaming = self._streaming
        result.update(status=status, stop_reason=reason, error=error, finished=time.time(),
                      duration=time.time() - started,
                      iterations=streaming.iteration if streaming else 0,
                      epochs=streaming.completed_epochs if streaming else 0)
        result.setdefault("versions", _safe(library_versions))
        result.setdefault("device", _safe(describe_device))
        run.write_result(result)
        self.sink(RunFinished(run.id, status, reason, result.get("iterations", 0), result.get("epochs", 0),
                              result["duration"], result.get("test_loss"), result.get("test_accuracy"),
                              result.get("best_val_accuracy"), error))
        return result

    def _train(self) -> tuple[str, str]:
        import keras

        from resnet_tui.data import dispatch_load_dataset, make_eval_dataset, make_train_dataset
        from resnet_tui.models import compile_model, count_params, dispatch_build_model, model_summary_text
        from resnet_tui.training.callbacks import ControlCallback, StreamingCallback
        from resnet_tui.training.events import DatasetProgress
        from resnet_tui.training.schedules import IterationStepDecay

        config, run, result = self.config, self.run_record, self._result
        keras.utils.set_random_seed(config.SEED)
        result["versions"] = library_versions()
        result["device"] = describe_device()

        dataset = dispatch_load_dataset(config.model_number, config,
                                        progress=lambda done, total: self.sink(DatasetProgress(done, total)))
        result["dataset"] = {"source": dataset.source, "description": dataset.description, **dataset.stats()}
        self.sink(LogMessage("info", dataset.description))
        train_count = len(dataset.y_train)
        plan = plan_training(config, train_count)

        model = dispatch_build_model(config.model_number, config)
        step = config.STEP_SCHEDULE
        opt = config.OPTIMIZER
        schedule = None
        if step["enabled"]:
            schedule = IterationStepDecay(opt["learning_rate"], step["boundaries"], step["factor"])
        compile_model(model, config, schedule or opt["learning_rate"])
        summary = model_summary_text(model)
        result["param_count"] = count_params(model)

        train_ds = make_train_dataset(dataset, config.BATCH_SIZE, config.AUGMENT_MODE, config.SEED)
        val_ds = (make_eval_dataset(dataset.x_val, dataset.y_val, dataset, config.BATCH_SIZE)
                  if len(dataset.y_val) else None)
        test_ds = make_eval_dataset(dataset.x_test, dataset.y_test, dataset, config.BATCH_SIZE)

        self.sink(RunStarted(
            run_id=run.id, config_name=config.name, config=config.values, model_summary=summary,
            param_count=result["param_count"], steps_per_epoch=plan.steps_per_epoch,
            total_iterations=plan.total_iterations, epochs=plan.epochs, batch_size=config.BATCH_SIZE,
            train_count=train_count, val_count=len(dataset.y_val), test_count=len(dataset.y_test),
            time=result["started"]))

        streaming = StreamingCallback(self.sink, config.BATCH_SIZE, train_count,
                                      schedule.value_at if schedule else None, self.control)
        control = ControlCallback(self.control, config.MAX_ITERATIONS)
        self._streaming = streaming
        callbacks = [streaming, control]
        best_path = run.paths.checkpoint / "best.weights.h5"
        if val_ds is not None:
            run.paths.checkpoint.mkdir(parents=True, exist_ok=True)
            callbacks.append(keras.callbacks.ModelCheckpoint(
                str(best_path), monitor="val_accuracy", mode="max", save_best_only=True, save_weights_only=True))
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

        if not self.control.stop_requested:
            model.fit(train_ds, epochs=plan.epochs, validation_data=val_ds, callbacks=callbacks, verbose=0,
                      shuffle=False)  # the tf.data pipeline shuffles itself

        if control.stop_reason == "stopped by user" or self.control.stop_requested:
            status, reason = "stopped", "stopped by user"
        elif control.stop_reason:
            status, reason = "completed", control.stop_reason
        elif early is not None and early.stopped_epoch > 0:
            status, reason = "completed", f"early stopping on {config.EARLY_STOP_MODE['monitor']}"
        else:
            status, reason = "completed", f"epoch limit ({plan.epochs} epochs)"

        run.paths.model.mkdir(parents=True, exist_ok=True)
        model.save(run.paths.model / "final.keras")
        epochs = run.read_epochs()
        vals = [(r["val_accuracy"], int(r["epoch"])) for r in epochs if r["val_accuracy"] is not None]
        if vals:
            result["best_val_accuracy"], result["best_epoch"] = max(vals)
        if status == "completed" or self.control.evaluate_on_stop:
            self.sink(LogMessage("info", f"evaluating on {len(dataset.y_test)} test images"))
            test_loss, test_acc = model.evaluate(test_ds, verbose=0)
            result["test_loss"], result["test_accuracy"] = float(test_loss), float(test_acc)
        return status, reason


def _safe(fn):
    try:
        return fn()
    except Exception as exc:  # versions/device are nice to have, never fatal
        return f"unknown ({exc})"
