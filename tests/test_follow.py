"""Following a run that another process writes, from its files alone."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import tiny_values

from resnet_tui.follow import RunFollower
from resnet_tui.runs import RunStore
from resnet_tui.training.events import EpochEnd, IterationEnd, RunFinished, RunStarted

REPO = Path(__file__).resolve().parents[1]


def test_follower_sees_a_headless_run_live_and_to_the_end(tmp_path):
    values = tiny_values(tmp_path, EPOCHS_COUNT=3)
    path = tmp_path / "m8_remote.json"
    path.write_text(json.dumps(values))
    proc = subprocess.Popen([sys.executable, "-m", "resnet_tui.cli", "train", str(path)], cwd=REPO,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = RunStore.from_values(values)
    events, follower = [], None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if follower is None and store.run_ids():
            follower = RunFollower(store.open_run(store.run_ids()[0]))
        if follower is not None:
            events.extend(follower.poll())
            if follower.finished:
                break
        time.sleep(0.2)
    proc.wait(60)
    assert follower is not None and follower.finished
    started = [e for e in events if isinstance(e, RunStarted)]
    assert len(started) == 1 and started[0].param_count > 0 and started[0].steps_per_epoch > 0
    iterations = [e.iteration for e in events if isinstance(e, IterationEnd)]
    total = 3 * started[0].steps_per_epoch
    assert iterations == list(range(1, total + 1))  # every point once, in order
    assert [e.epoch for e in events if isinstance(e, EpochEnd)] == [1, 2, 3]
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert finished[0].status == "completed" and finished[0].iterations == total
    assert isinstance(events[-1], RunFinished)


def test_follower_waits_for_a_torn_line(tmp_path):
    store = RunStore.under(tmp_path / "artifact")
    run = store.create_run("m8_x")
    run.write_meta("m8_x")
    run.write_config({"BATCH_SIZE": 32, "EPOCHS_COUNT": 1, "MAX_ITERATIONS": 0})
    (run.paths.log / "plan.json").write_text(json.dumps({"steps_per_epoch": 2, "total_iterations": 2}))
    log = run.paths.log / "iterations.csv"
    log.write_text("iteration,epoch,loss,accuracy,lr,images_per_sec,epoch_loss,epoch_accuracy,elapsed\n"
                   "1,1,2.3,0.1,0.1,100,2.3,0.1,0.5\n2,1,2.2,0.")
    follower = RunFollower(run)
    first = follower.poll()
    assert [e.iteration for e in first if isinstance(e, IterationEnd)] == [1]
    with open(log, "a") as fh:
        fh.write("2,0.1,100,2.25,0.15,1.0\n")
    second = follower.poll()
    assert [(e.iteration, e.accuracy) for e in second if isinstance(e, IterationEnd)] == [(2, 0.2)]
    assert not follower.finished
