"""Runs survive kill -9, divergence, full disks and each other."""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import tiny_values

from resnet_tui.config import config_from_values
from resnet_tui.models import compile_model, dispatch_build_model
from resnet_tui.runs import ResumeError, RunBusyError, RunStore, StorageError
from resnet_tui.training.checkpoint import TrainingState
from resnet_tui.training.events import IterationEnd, RunStarted
from resnet_tui.training.schedules import IterationStepDecay
from resnet_tui.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


class Collect(list):
    def __call__(self, event):
        self.append(event)

    def of(self, cls):
        return [e for e in self if isinstance(e, cls)]


def start_cli_run(tmp_path: Path, **changes) -> tuple[subprocess.Popen, RunStore, Path]:
    values = tiny_values(tmp_path, **changes)
    path = tmp_path / "m8_killme.json"
    path.write_text(json.dumps(values))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, "-m", "resnet_tui.cli", "train", str(path)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, RunStore.from_values(values), path


def wait_for(predicate, timeout=180.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the training process ended early with code {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError("timed out")


def saved_state(store: RunStore):
    ids = store.run_ids()
    if not ids:
        return None
    run = store.open_run(ids[0])
    state = TrainingState.read(run.paths.checkpoint)
    return (run, state) if state else None


def optimizer_values_in(config, folder: Path, state: TrainingState) -> list[np.ndarray]:
    """The optimizer state as saved, read into a fresh model independently of the trainer."""
    model = dispatch_build_model(8, config)
    compile_model(model, config, IterationStepDecay(0.1, config.STEP_SCHEDULE["boundaries"], 0.1))
    model.optimizer.build(model.trainable_variables)
    model.load_weights(folder / state.weights)
    return [v.numpy() for v in model.optimizer.variables]


@pytest.mark.parametrize("extra_delay", [0.0, 0.7, 1.6])
def test_kill_9_then_resume_continues_the_same_run(tmp_path, extra_delay):
    epochs = 6
    proc, store, _ = start_cli_run(tmp_path, EPOCHS_COUNT=epochs)
    try:
        run, _state = wait_for(lambda: saved_state(store), proc=proc)
        # A run with a live owner is not resumable twice.
        with pytest.raises(ResumeError, match="still running"):
            Trainer.resuming(store, run.id)
        time.sleep(extra_delay + random.uniform(0, 0.3))
        assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    assert run.info().status == "interrupted"
    state = TrainingState.read(run.paths.checkpoint)
    config = config_from_values(run.read_config(), "m8_killme")
    saved_optimizer = optimizer_values_in(config, run.paths.checkpoint, state)

    events = Collect()
    restored = {}
    trainer = Trainer.resuming(store, run.id, sink=events)

    def capture(event):
        events(event)
        if isinstance(event, RunStarted):
            restored["optimizer"] = [v.numpy() for v in trainer.model.optimizer.variables]

    trainer._external_sink = capture
    result = trainer.run()

    assert result["status"] == "completed", result.get("error")
    started = events.of(RunStarted)[0]
    assert started.start_iteration == state.iteration
    # Momentum buffers and the iteration count come back exactly as saved.
    assert len(restored["optimizer"]) == len(saved_optimizer)
    for got, want in zip(restored["optimizer"], saved_optimizer):
        np.testing.assert_array_equal(got, want)
    assert int(restored["optimizer"][0]) == state.iteration  # optimizer.iterations
    # The schedule continues where it was: the resumed first update uses the lr for its step.
    first = events.of(IterationEnd)[0]
    assert first.iteration == state.iteration + 1
    assert first.lr == pytest.approx(IterationStepDecay(0.1, [4, 8], 0.1).value_at(state.iteration))

    total = started.steps_per_epoch * epochs
    assert result["iterations"] == total and result["epochs"] == epochs
    rows = run.read_iterations()
    assert [r.iteration for r in rows] == list(range(1, total + 1))  # no duplicate, no gap
    assert [r.epoch for r in run.read_epochs()] == list(range(1, epochs + 1))
    assert run.info().status == "completed"


def test_stopped_run_resumes_and_still_ends_at_the_iteration_cap(tiny_config):
    config = tiny_config(EPOCHS_COUNT=50, MAX_ITERATIONS=12)
    first = Collect()
    trainer = Trainer(config, sink=lambda e: (first(e), isinstance(e, IterationEnd) and e.iteration == 6
                                              and trainer.stop(evaluate=False)))
    result = trainer.run()
    assert result["status"] == "stopped" and result["iterations"] == 6
    store = RunStore.from_values(config.values)
    assert store.open_run(result["run_id"]).info().status == "stopped"

    resumed = Trainer.resuming(store, result["run_id"]).run()
    assert resumed["run_id"] == result["run_id"]
    assert resumed["status"] == "completed" and resumed["iterations"] == 12
    assert resumed["stop_reason"] == "iteration cap (12 iterations)"
    run = store.open_run(result["run_id"])
    assert [r.iteration for r in run.read_iterations()] == list(range(1, 13))
    with pytest.raises(ResumeError, match="already completed"):
        Trainer.resuming(store, result["run_id"])


class PoisonWeights(keras.callbacks.Callback):
    """Fault injection: turn one kernel into NaN after a given iteration."""

    def __init__(self, after: int):
        super().__init__()
        self.after, self.seen = after, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.after:
            kernel = self.model.get_layer("classifier").kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def test_nan_loss_stops_at_once_and_keeps_the_last_good_state(tiny_config):
    config = tiny_config(EPOCHS_COUNT=4)
    steps = None
    events = Collect()
    trainer = Trainer(config, sink=events, extra_callbacks=[PoisonWeights(after=7)])
    result = trainer.run()
    steps = events.of(RunStarted)[0].steps_per_epoch
    assert result["status"] == "failed"
    assert "non-finite loss (nan) at iteration 8" in result["error"]
    assert result["iterations"] == 8  # stopped at once, not at the end of the run
    run = RunStore.from_values(config.values).open_run(result["run_id"])
    state = TrainingState.read(run.paths.checkpoint)
    assert state.epoch == 7 // steps and state.iteration == steps * (7 // steps)
    assert "last good state" in result["error"]
    assert "non-finite" in run.read_error()
    assert not (run.paths.model / "final.keras").exists()


def test_unwritable_artifact_folder_fails_before_training(tiny_config, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    config = tiny_config(LOG_PATH=str(blocker / "log"))
    with pytest.raises(StorageError, match=r"cannot write to .*not-a-folder/log \(LOG_PATH\)"):
        Trainer(config).run()


class FullDisk(keras.callbacks.Callback):
    """Fault injection: a write in training finds the disk full after a given iteration.

    (Not a raising sink: a sink only watches, and a watcher's failure never fails a run.)
    """

    def __init__(self, after: int):
        super().__init__()
        self.after, self.seen = after, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.after:
            raise OSError(28, "No space left on device")


def test_disk_full_during_training_fails_the_run_with_what_was_saved(tiny_config):
    config = tiny_config(EPOCHS_COUNT=3)
    result = Trainer(config, extra_callbacks=[FullDisk(after=5)]).run()
    assert result["status"] == "failed" and "No space left on device" in result["error"]
    run = RunStore.from_values(config.values).open_run(result["run_id"])
    assert run.info().status == "failed"
    assert len(run.read_iterations()) >= 4


def test_concurrent_runs_get_distinct_ids(tmp_path):
    store = RunStore.under(tmp_path / "artifact")
    ids = []
    threads = [threading.Thread(target=lambda: ids.append(store.create_run("m8_same").id)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 8


def test_a_live_owner_blocks_a_second_writer(tmp_path):
    store = RunStore.under(tmp_path / "artifact")
    run = store.create_run("m8_x")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (run.paths.log / "lock").write_text(json.dumps({"pid": sleeper.pid, "host": os.uname().nodename}))
        with pytest.raises(RunBusyError, match=str(sleeper.pid)):
            run.acquire_lock()
    finally:
        sleeper.kill()
        sleeper.wait()
    run.acquire_lock()  # the owner died: its lock is stale and is taken over
    assert run.lock_owner() == os.getpid()
    run.release_lock()
