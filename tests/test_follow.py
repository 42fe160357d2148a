"""Following a run that another process writes, from its files alone."""

import json
import os
import subprocess
import sys
import time

from conftest import tiny_values
from support import cli_train_process, write_config

from resnet_tui.events import EpochEnd, IterationEnd, RunFinished, RunStarted
from resnet_tui.store.follow import RunFollower
from resnet_tui.store.runs import RunStore


def test_follower_sees_a_headless_run_live_and_to_the_end(tmp_path):
    values = tiny_values(tmp_path, EPOCHS_COUNT=3)
    proc = cli_train_process(write_config(tmp_path, "m1_remote", values))
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
    run = store.create_run("m8_x")  # its lock held by a live writer (this process), as a running run's is
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


def dead_pid() -> int:
    """The pid of a process of this host that has ended."""
    out = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(out.stdout)


def live_run(tmp_path, epochs: int = 3, steps: int = 4):
    """A run 'another process' is writing: its files, and a lock held by a live process (this one)."""
    from test_run_files import make_run

    from resnet_tui.store.records import columns, to_row

    run = make_run(RunStore.under(tmp_path / "artifact"), result=None)
    rows = [IterationEnd(i, (i - 1) // steps + 1, 2.0, 0.1, 0.1, 100.0, 2.0, 0.1, 0.5 * i)
            for i in range(1, epochs * steps + 1)]
    ends = [EpochEnd(e, e * steps, 2.0, 0.1, 2.1, 0.5, 0.1, 2.0, 2.0 * e) for e in range(1, epochs + 1)]
    for cls, records in ((IterationEnd, rows), (EpochEnd, ends)):
        lines = [",".join(columns(cls))] + [",".join(to_row(r)) for r in records]
        (run.paths.log / f"{'iterations' if cls is IterationEnd else 'epochs'}.csv").write_text("\n".join(lines) + "\n")
    (run.paths.log / "plan.json").write_text(json.dumps({"steps_per_epoch": steps, "total_iterations": 5 * steps}))
    run.acquire_lock()
    return run


def test_follower_ends_with_interrupted_when_the_writer_died(tmp_path):
    from resnet_tui.events import RunStatus

    run = live_run(tmp_path)
    follower = RunFollower(run)
    assert len([e for e in follower.poll() if isinstance(e, IterationEnd)]) == 12
    assert not follower.finished and follower.poll() == []
    (run.paths.log / "lock").write_text(json.dumps({"pid": dead_pid(), "host": os.uname().nodename}))
    with open(run.paths.log / "iterations.csv", "a") as fh:  # its last rows, flushed as it died
        fh.write("13,4,2.0,0.1,0.1,100,2.0,0.1,6.5\n")
    events = follower.poll()
    assert [e.iteration for e in events if isinstance(e, IterationEnd)] == [13]
    assert isinstance(events[-1], RunFinished) and follower.finished
    assert events[-1].status == RunStatus.INTERRUPTED
    assert events[-1].stop_reason == "its process ended without writing a result"
    assert (events[-1].iterations, events[-1].epochs) == (12, 3)


def test_follower_starts_over_when_a_resume_elsewhere_cuts_the_metrics_back(tmp_path):
    run = live_run(tmp_path)
    follower = RunFollower(run)
    first = follower.poll()
    assert [e.iteration for e in first if isinstance(e, IterationEnd)] == list(range(1, 13))
    run.begin_resume(epoch=1, iteration=4)  # what a resume does: the metrics cut back to the saved epoch...
    with open(run.paths.log / "iterations.csv", "a") as fh:  # ... then appended from there
        fh.write("5,2,1.9,0.2,0.1,100,1.9,0.2,2.5\n6,2,1.8,0.3,0.1,100,1.8,0.2,3.0\n")
    events = follower.poll()
    assert isinstance(events[0], RunStarted)
    assert [e.iteration for e in events if isinstance(e, IterationEnd)] == [1, 2, 3, 4, 5, 6]
    assert [e.epoch for e in events if isinstance(e, EpochEnd)] == [1]


def test_follower_starts_over_when_a_file_is_truncated_in_place(tmp_path):
    run = live_run(tmp_path, epochs=1)
    follower = RunFollower(run)
    follower.poll()
    path = run.paths.log / "iterations.csv"
    header = path.read_text().splitlines()[0]
    with open(path, "r+") as fh:  # same inode, shorter
        fh.truncate(0)
        fh.write(f"{header}\n1,1,1.5,0.2,0.1,100,1.5,0.2,0.5\n")
    events = follower.poll()
    assert isinstance(events[0], RunStarted)
    assert [(e.iteration, e.loss) for e in events if isinstance(e, IterationEnd)] == [(1, 1.5)]


def test_a_watching_dashboard_session_resets_its_curves_and_sees_the_end(tmp_path):
    from resnet_tui.tui.session import TrainingSession

    run = live_run(tmp_path)
    session = TrainingSession.follow(run, run.store)
    session.ingest()
    assert len(session.history.iterations) == 0  # the UI thread's drain reads no file
    assert session.poll_follower()  # the dashboard's follow worker reads the files; ingest reads none
    session.ingest()
    assert len(session.history.iterations) == 12 and session.active
    run.begin_resume(epoch=2, iteration=8)
    session.poll_follower()
    session.ingest()
    assert list(session.history.iterations["iteration"]) == list(range(1, 9))  # no duplicate, no gap
    assert list(session.history.epochs["epoch"]) == [1, 2] and session.last.iteration == 8
    (run.paths.log / "lock").write_text(json.dumps({"pid": dead_pid(), "host": os.uname().nodename}))
    assert not session.poll_follower()  # the run has ended: the worker stops
    changes = session.ingest()
    assert session.state == "interrupted" and not session.active
    assert ("warning", f"Run {run.id} interrupted: its process ended without writing a result") in changes.notices


def test_follower_reads_the_machine_rows_and_samples_a_writer_on_this_host(tmp_path):
    from test_monitor import sample

    from resnet_tui.events import MachineEpoch, MachineSample
    from resnet_tui.machine.sampler import epoch_record

    run = live_run(tmp_path)  # its lock: this process, on this host
    run.append_machine(epoch_record(1, [sample()]))
    run.close()
    follower = RunFollower(run)
    first = follower.poll()
    assert [e.epoch for e in first if isinstance(e, MachineEpoch)] == [1]
    assert not [e for e in first if isinstance(e, MachineSample)]  # CPU % needs a second reading
    time.sleep(1.05)
    live = [e for e in follower.poll() if isinstance(e, MachineSample)]
    assert len(live) == 1 and live[0].rss > 0 and live[0].ram_total > 0
    assert not [e for e in follower.poll() if isinstance(e, MachineSample)]  # about once a second
