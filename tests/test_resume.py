"""Runs survive kill -9, divergence, full disks and each other."""

import json
import os
import random
import re
import shutil
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
from support import Collect, cli_train, cli_train_process, small_disk, wait_until, write_config

from resnet_tui.config import config_from_values
from resnet_tui.events import EpochEnd, IterationEnd, RunFinished, RunStarted, RunStatus
from resnet_tui.models.resnet import dispatch_build_model
from resnet_tui.store.runs import ResumeError, RunBusyError, RunStore, StorageError
from resnet_tui.training.checkpoint import TrainingState
from resnet_tui.training.compile import compile_model
from resnet_tui.training.schedules import IterationStepDecay
from resnet_tui.training.trainer import Trainer


def start_cli_run(tmp_path: Path, stdout=subprocess.DEVNULL, **changes) -> tuple[subprocess.Popen, RunStore, Path]:
    values = tiny_values(tmp_path, **changes)
    path = write_config(tmp_path, "m1_killme", values)
    return cli_train_process(path, stdout=stdout), RunStore.from_values(values), path


def saved_state(store: RunStore):
    ids = store.run_ids()
    if not ids:
        return None
    run = store.open_run(ids[0])
    state = TrainingState.read(run.paths.checkpoint)
    return (run, state) if state else None


def optimizer_values_in(config, folder: Path, state: TrainingState) -> list[np.ndarray]:
    """The optimizer state as saved, read into a fresh model independently of the trainer."""
    model = dispatch_build_model(config.model_number, config)
    compile_model(model, config, IterationStepDecay(0.1, config.STEP_SCHEDULE["boundaries"], 0.1))
    model.optimizer.build(model.trainable_variables)
    model.load_weights(folder / state.weights)
    return [v.numpy() for v in model.optimizer.variables]


@pytest.mark.slow
@pytest.mark.parametrize("extra_delay", [0.0, 0.7, 1.6])
def test_kill_9_then_resume_continues_the_same_run(tmp_path, extra_delay):
    epochs = 30  # m1's epoch of 4 steps is short: long enough to be killed mid-run
    proc, store, _ = start_cli_run(tmp_path, EPOCHS_COUNT=epochs)
    try:
        run, _state = wait_until(lambda: saved_state(store), proc=proc)
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

    def capture(event):
        events(event)
        if isinstance(event, RunStarted):  # the model is built and restored by now
            restored["optimizer"] = [v.numpy() for v in trainer.model.optimizer.variables]

    trainer = Trainer.resuming(store, run.id, sink=capture)
    result = trainer.run()

    assert result.status == "completed", result.error
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
    assert result.iterations == total and result.epochs == epochs
    rows = run.read_iterations()
    assert [r.iteration for r in rows] == list(range(1, total + 1))  # no duplicate, no gap
    assert [r.epoch for r in run.read_epochs()] == list(range(1, epochs + 1))
    assert run.info().status == "completed"


def test_stopped_run_resumes_and_still_ends_at_the_iteration_cap(tiny_config):
    config = tiny_config(EPOCHS_COUNT=50, MAX_ITERATIONS=12)
    first = Collect()
    trainer = Trainer(config, sink=lambda e: (first(e), isinstance(e, IterationEnd) and e.iteration == 6
                                              and trainer.stop()))
    result = trainer.run()
    assert result.status == "stopped" and result.iterations == 6
    store = RunStore.from_values(config.values)
    assert store.open_run(result.run_id).info().status == "stopped"

    resumed = Trainer.resuming(store, result.run_id).run()
    assert resumed.run_id == result.run_id
    assert resumed.status == "completed" and resumed.iterations == 12
    assert resumed.stop_reason == "iteration cap (12 iterations)"
    run = store.open_run(result.run_id)
    assert [r.iteration for r in run.read_iterations()] == list(range(1, 13))
    # machine.csv is cut back with epochs.csv: a row per epoch, no duplicate.
    assert [m.epoch for m in run.read_machine()] == [e.epoch for e in run.read_epochs()] == [1, 2, 3]
    with pytest.raises(ResumeError, match="already completed"):
        Trainer.resuming(store, result.run_id)


class FaultAfter(keras.callbacks.Callback):
    """Fault injection: ``fault(model)`` once, after the given iteration."""

    def __init__(self, after: int, fault):
        super().__init__()
        self.after, self.fault, self.seen = after, fault, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.after:
            self.fault(self.model)


def poison_weights(model) -> None:
    """One kernel turned into NaN: the loss diverges from the next step on."""
    kernel = model.get_layer("classifier").kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def full_disk(model) -> None:
    """A write in training finds the disk full. (Not a raising sink: a sink only watches,
    and a watcher's failure never fails a run.)"""
    raise OSError(28, "No space left on device")


def test_nan_loss_stops_at_once_and_keeps_the_last_good_state(tiny_config):
    config = tiny_config(EPOCHS_COUNT=4)
    steps = None
    events = Collect()
    trainer = Trainer(config, sink=events, extra_callbacks=[FaultAfter(7, poison_weights)])
    result = trainer.run()
    steps = events.of(RunStarted)[0].steps_per_epoch
    assert result.status == "failed"
    assert "non-finite loss (nan) at iteration 8" in result.error
    assert result.iterations == 8  # stopped at once, not at the end of the run
    run = RunStore.from_values(config.values).open_run(result.run_id)
    state = TrainingState.read(run.paths.checkpoint)
    assert state.epoch == 7 // steps and state.iteration == steps * (7 // steps)
    assert "last good state" in result.error
    assert "non-finite" in run.read_error()
    assert not (run.paths.model / "final.keras").exists()


def test_unwritable_artifact_folder_fails_before_training(tiny_config, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    config = tiny_config(LOG_PATH=str(blocker / "log"))
    with pytest.raises(StorageError, match=r"cannot write to .*not-a-folder/log \(LOG_PATH\)"):
        Trainer(config).run()


def test_disk_full_during_training_fails_the_run_with_what_was_saved(tiny_config):
    config = tiny_config(EPOCHS_COUNT=3)
    result = Trainer(config, extra_callbacks=[FaultAfter(5, full_disk)]).run()
    assert result.status == "failed" and "No space left on device" in result.error
    run = RunStore.from_values(config.values).open_run(result.run_id)
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


def test_a_run_being_created_is_never_seen_without_its_writer(tmp_path):
    """A reader listing runs while one is created sees it running, never corrupt ("no run.json"):
    a follower that met it so would end at once (the cause of a red CI run)."""
    store = RunStore.under(tmp_path / "artifact")
    seen, done = set(), threading.Event()

    def watch():
        while not done.is_set():
            seen.update(info.status for info in store.list_runs())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        runs = [store.create_run(f"m8_{n}") for n in range(200)]
    finally:
        done.set()
        watcher.join()
    assert seen <= {RunStatus.RUNNING} and all(run.lock_owner() == os.getpid() for run in runs)
    assert not any(p.name.startswith(".") for p in store.roots["log"].iterdir())  # no staging folder left


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


def final_weights(run) -> list[np.ndarray]:
    return keras.models.load_model(run.paths.model / "final.keras", compile=False).get_weights()


def test_a_mid_epoch_stop_then_resume_is_the_uninterrupted_run(tiny_config):
    """A stop half-way through an epoch keeps no half epoch: resume redoes that epoch from its
    start, with the same data order, so the run ends exactly as an uninterrupted one."""
    config = tiny_config(EPOCHS_COUNT=3)
    store = RunStore.from_values(config.values)
    straight = Trainer(config).run()
    steps = straight.iterations // 3
    stop_at = steps + 2  # two steps into epoch 2

    stopped_events, stop_answers = Collect(), []

    def stop_mid_epoch(event):
        stopped_events(event)
        if isinstance(event, IterationEnd) and event.iteration == stop_at:  # asked before its step's check
            stop_answers.append(trainer.stop())

    trainer = Trainer(config, sink=stop_mid_epoch)
    stopped = trainer.run()
    assert stopped.status == "stopped", stopped.error
    assert stop_answers == [stop_at]  # the stop named the iteration it ended at
    assert stopped.iterations == stop_at and stopped.epochs == 1
    assert stopped.stop_reason == (f"stopped by user at iteration {stop_at}; epoch 2 was not finished, "
                                      f"so a resume starts it again from iteration {steps}")
    assert [e.epoch for e in stopped_events.of(EpochEnd)] == [1]  # no validation of a half epoch
    run = store.open_run(stopped.run_id)
    state = TrainingState.read(run.paths.checkpoint)
    assert (state.epoch, state.iteration) == (1, steps)

    resumed = Trainer.resuming(store, run.id).run()
    assert resumed.status == "completed" and resumed.iterations == 3 * steps
    want, got = store.open_run(straight.run_id), store.open_run(run.id)
    assert [r.iteration for r in got.read_iterations()] == list(range(1, 3 * steps + 1))
    np.testing.assert_allclose([r.loss for r in got.read_iterations()], [r.loss for r in want.read_iterations()],
                               rtol=1e-5)
    np.testing.assert_allclose([e.val_loss for e in got.read_epochs()], [e.val_loss for e in want.read_epochs()],
                               rtol=1e-5)
    for a, b in zip(final_weights(got), final_weights(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_resume_keeps_the_plateau_cut_and_the_early_stopping_count(tiny_config):
    """Stopped at an epoch's end (right after a plateau cut), a resumed run carries on with the
    cut rate, the plateau and early-stopping counts and the early-stopping best weights."""
    config = tiny_config(**{"EPOCHS_COUNT": 6, "STEP_SCHEDULE.enabled": False,
                            "SCHEDULE_MODE.enabled": True, "SCHEDULE_MODE.monitor": "loss",
                            "SCHEDULE_MODE.patience": 1, "SCHEDULE_MODE.min_delta": 100.0,
                            "EARLY_STOP_MODE.enabled": True, "EARLY_STOP_MODE.monitor": "loss",
                            "EARLY_STOP_MODE.patience": 3, "EARLY_STOP_MODE.min_delta": 100.0,
                            "EARLY_STOP_MODE.verbose": 0, "EARLY_STOP_MODE.restore_best_weights": True})
    store = RunStore.from_values(config.values)
    straight_events = Collect()
    straight = Trainer(config, sink=straight_events).run()
    # Nothing improves by 100: cuts after epochs 2, 3 and 4; early stopping ends epoch 4.
    assert straight.stop_reason == "early stopping on loss" and straight.epochs == 4
    lrs = [e.lr for e in straight_events.of(EpochEnd)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.001], rel=1e-6)

    def stop_after_epoch_3(event):
        if isinstance(event, EpochEnd) and event.epoch == 3:
            trainer.stop()

    trainer = Trainer(config, sink=stop_after_epoch_3)
    stopped = trainer.run()
    assert stopped.status == "stopped" and stopped.epochs == 3, stopped.error
    resumed_events = Collect()
    resumed = Trainer.resuming(store, stopped.run_id, sink=resumed_events).run()
    assert resumed.stop_reason == "early stopping on loss" and resumed.epochs == 4
    assert [e.lr for e in resumed_events.of(EpochEnd)] == pytest.approx([0.001], rel=1e-6)
    assert [e.lr for e in resumed_events.of(IterationEnd)] == pytest.approx([0.001] * (straight.iterations // 4))
    # Early stopping restored the same best weights (epoch 1's) in both.
    want, got = store.open_run(straight.run_id), store.open_run(stopped.run_id)
    for a, b in zip(final_weights(got), final_weights(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def train_in_a_process(tmp_path: Path, **changes) -> tuple[subprocess.CompletedProcess, RunStore]:
    values = tiny_values(tmp_path, **changes)
    return cli_train(write_config(tmp_path, f"m{values['MODEL_NUMBER']}_full", values)), RunStore.from_values(values)


@pytest.mark.slow
@pytest.mark.parametrize("key, size_kb, leave_kb", [("CHECKPOINT_PATH", 3 * 1024, None), ("LOG_PATH", 256, 12)])
def test_a_full_disk_fails_the_run_with_the_folder_named_and_no_partial_file(tmp_path, key, size_kb, leave_kb):
    with small_disk(tmp_path / "small", size_kb, leave_kb) as disk:
        # m8: the disk sizes are set by its weight files (m1's are too small to fill 3 MB)
        done, store = train_in_a_process(tmp_path, EPOCHS_COUNT=3, MODEL_NUMBER=8, **{key: str(disk / "runs")})
        assert done.returncode == 1, done.stderr[-2000:]  # not 139 (h5py's crash on the way out)
        run_id = store.run_ids()[0]
        assert re.search(rf"error: StorageError: cannot write to {disk}/runs/{run_id} \({key}\): "
                         r"No space left on device", done.stderr), done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        assert (done.stdout + done.stderr).count("No space left on device") == 1  # the error, printed once
        assert not list(disk.rglob("*.h5")) and not list(disk.rglob("*.keras"))  # nothing half-written
        run = store.open_run(run_id)
        assert run.info().status == "failed"
        assert TrainingState.read(run.paths.checkpoint) is None  # no state a resume could mistake for whole


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_a_cli_run_where_it_says(tmp_path, signum):
    proc, store, _ = start_cli_run(tmp_path, EPOCHS_COUNT=50, stdout=subprocess.PIPE)
    try:
        wait_until(lambda: store.run_ids() and len(store.open_run(store.run_ids()[0]).read_iterations()) >= 3, proc=proc)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    said = re.search(r"stopping at iteration (\d+) \(the step under way finishes\), then saving; no test evaluation",
                     out)
    assert said, out[-2000:]
    info = store.open_run(store.run_ids()[0]).info()
    # 128 + the signal, as shells expect (issue 22, item 10: it was 0), and the reason names it
    assert proc.returncode == 128 + signum and info.status == "stopped"
    assert info.iterations == int(said.group(1))  # it stopped where it said
    by = "" if signum == signal.SIGINT else f" ({signal.Signals(signum).name})"
    assert info.test_accuracy is None and info.result["stop_reason"].startswith(
        f"stopped by user{by} at iteration {info.iterations}")
    assert re.search(rf"resume\s+resnet-tui resume {info.run_id}", out)  # the result says how to go on


def test_a_result_folder_that_fills_during_the_run_fails_it_naming_the_folder(tiny_config, tmp_path):
    """RESULT_PATH full at the end (issue 22, item 13): the run said completed while result.json was
    never written and a 0-byte temporary file stayed. It fails, naming the folder; nothing is half-written."""
    with small_disk(tmp_path / "results", 512) as disk:
        config = tiny_config(EPOCHS_COUNT=2, RESULT_PATH=str(disk / "result"))

        def fill(model):
            (disk / "filler").write_bytes(b"x" * shutil.disk_usage(disk).free)

        events = Collect()
        result = Trainer(config, sink=events, extra_callbacks=[FaultAfter(3, fill)]).run()
        run = RunStore.from_values(config.values).open_run(result.run_id)
        assert result.status == "failed"
        assert result.error == f"cannot write to {run.paths.result} (RESULT_PATH): No space left on device"
        assert events.of(RunFinished)[-1].status == "failed"
        assert "No space left on device" in run.read_error()
        assert [p.name for p in disk.rglob("*") if p.is_file()] == ["filler"]  # no partial result


def test_a_run_stopped_in_its_first_epoch_resumes_from_the_start(tiny_config):
    """The stop note promised "a resume starts it again from iteration 0" and resume answered "has
    no saved state" (issue 22, item 9): it resumes from the start under its own id, as uninterrupted."""
    config = tiny_config(EPOCHS_COUNT=2)
    store = RunStore.from_values(config.values)
    straight = Trainer(config).run()

    def stop_at_2(event):
        if isinstance(event, IterationEnd) and event.iteration == 2:
            trainer.stop()

    trainer = Trainer(config, sink=stop_at_2)
    stopped = trainer.run()
    assert stopped.status == "stopped" and stopped.stop_reason.endswith("a resume starts it again from iteration 0")
    run = store.open_run(stopped.run_id)
    assert run.resume_problem() is None
    resumed = Trainer.resuming(store, run.id).run()
    assert resumed.status == "completed" and resumed.run_id == run.id
    want = store.open_run(straight.run_id)
    assert [r.iteration for r in run.read_iterations()] == list(range(1, straight.iterations + 1))
    np.testing.assert_allclose([r.loss for r in run.read_iterations()], [r.loss for r in want.read_iterations()],
                               rtol=1e-5)


def test_a_resume_that_waited_while_another_finished_the_run_touches_nothing(tiny_config):
    """Two resumes of one run, the first held up after reading its state (Ctrl-Z) while the second
    finishes it (issue 22, item 14): the first used to cut iterations.csv back to its stale state
    and set the result aside. It now re-checks under the lock and refuses, losing nothing."""
    config = tiny_config(EPOCHS_COUNT=3)
    store = RunStore.from_values(config.values)

    def stop_in_epoch_2(event):
        if isinstance(event, IterationEnd) and event.iteration == 7:
            trainer.stop()

    trainer = Trainer(config, sink=stop_in_epoch_2)
    run = store.open_run(trainer.run().run_id)
    waiting = Trainer.resuming(store, run.id)  # has read the state, not yet claimed the run
    finished = Trainer.resuming(store, run.id).run()
    assert finished.status == "completed"
    rows, result = run.read_iterations(), run.read_result()
    with pytest.raises(ResumeError, match="was completed by another process while this resume waited"):
        waiting.run()
    assert run.read_iterations() == rows and run.read_result() == result and run.info().status == "completed"


@pytest.mark.slow
def test_a_second_ctrl_c_aborts_at_once_even_50_ms_after_the_first(tmp_path):
    """Two Ctrl-C 50 ms apart counted as one while the main thread was inside TensorFlow (issue 22,
    item 10): the run then stopped cleanly instead of aborting. The second one aborts now, the run
    left as a kill leaves it."""
    # m8 at batch 128: a step (and the save after it) takes far longer than 50 ms, so the first
    # Ctrl-C's clean stop cannot be over before the second arrives.
    proc, store, _ = start_cli_run(tmp_path, EPOCHS_COUNT=200, MODEL_NUMBER=8, BATCH_SIZE=128, stdout=subprocess.PIPE)
    try:
        wait_until(lambda: store.run_ids() and len(store.open_run(store.run_ids()[0]).read_iterations()) >= 3, proc=proc)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    run = store.open_run(store.run_ids()[0])
    assert run.info().status == "interrupted" and run.read_result() is None
