"""A run's JSON files are read through one validating reader: a damaged file makes the
run `corrupt` with the file and what is wrong, never an exception in a listing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from resnet_tui.events import EpochEnd, IterationEnd
from resnet_tui.store.layout import CSV_FILES
from resnet_tui.store.runs import RunBusyError, RunStore
from resnet_tui.store.state import TrainingState

RESULT = {"run_id": "x", "config_name": "m8_x", "started": 1735732800.0, "status": "completed",
          "stop_reason": "epoch limit (1 epochs)", "error": None, "duration": 12.5, "iterations": 4, "epochs": 1,
          "test_accuracy": 0.5, "versions": {"python": "3.x"}, "device": "CPU: test"}
STATE = {"epoch": 1, "iteration": 4, "best_val_accuracy": 0.5, "elapsed": 12.0, "weights": "state-epoch1.weights.h5"}


def make_run(store: RunStore, name: str = "m8_x", result: dict | None = RESULT):
    """A run's files as the trainer leaves them after one epoch of 4 iterations, its process gone."""
    run = store.create_run(name)
    run.write_meta(name)
    run.write_config({"BATCH_SIZE": 32, "EPOCHS_COUNT": 2})
    for i in range(1, 5):
        run.append_iteration(IterationEnd(i, 1, 2.0, 0.1, 0.1, 100.0, 2.0, 0.1, 0.5 * i))
    run.append_epoch(EpochEnd(1, 4, 2.0, 0.1, 2.1, 0.5, 0.1, 2.0, 2.0))
    run.close()
    run.paths.checkpoint.mkdir(parents=True)
    (run.paths.checkpoint / "state.json").write_text(json.dumps(STATE))
    (run.paths.checkpoint / STATE["weights"]).write_bytes(b"weights")
    (run.paths.log / "plan.json").write_text(json.dumps({"steps_per_epoch": 4, "total_iterations": 8}))
    if result is not None:
        run.write_result(dict(result, run_id=run.id))
    run.release_lock()
    return run


def file_of(run, name: str):
    return {"result.json": run.paths.result, "state.json": run.paths.checkpoint,
            "config.json": run.paths.config}.get(name, run.paths.log) / name


DAMAGE = [
    ("result.json", '{"status": "completed", "started": "yesterday"}',
     'result.json: "started" should be a number, got "yesterday"'),
    ("result.json", '{"status": "failed", "error": 5}', 'result.json: "error" should be a string or null, got 5'),
    ("result.json", "[1, 2]", "result.json: should be a JSON object, got [1, 2]"),
    ("result.json", '{"status": "done"}',
     'result.json: "status" should be one of "completed", "stopped", "failed", got "done"'),
    ("result.json", '{"started": 1}', 'result.json: "status" is missing'),
    ("result.json", '{"status": "compl', "result.json: invalid JSON at line 1, column 12: Unterminated string"),
    ("result.json", b'{"status": "caf\xe9"}', "result.json: not UTF-8 text (byte 15 is 0xe9)"),
    ("state.json", "null", "state.json: should be a JSON object, got null"),
    ("state.json", "[]", "state.json: should be a JSON object, got []"),
    ("state.json", '{"epoch": "2"}', 'state.json: "epoch" should be an integer, got "2"; "iteration" is missing'),
    ("run.json", '{"config_name": 8, "started": 1}', 'run.json: "config_name" should be a string, got 8'),
    ("lock", '{"pid": "1234", "host": "otherbox"}', 'lock: "pid" should be an integer, got "1234"'),
    ("plan.json", '{"steps_per_epoch": 4.5}', 'plan.json: "steps_per_epoch" should be an integer, got 4.5'),
    ("config.json", '"m8"', 'config.json: should be a JSON object, got "m8"'),
]


@pytest.mark.parametrize("name,content,problem", DAMAGE, ids=[f"{d[0]}:{d[1]!s:.30}" for d in DAMAGE])
def test_a_damaged_file_lists_the_run_as_corrupt_with_what_is_wrong(tmp_path, name, content, problem):
    store = RunStore.under(tmp_path / "artifact")
    good, run = make_run(store, "m8_good"), make_run(store, "m8_bad")
    path = file_of(run, name)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    infos = {i.run_id: i for i in store.list_runs()}
    assert infos[good.id].status == "completed"
    assert infos[run.id].status == "corrupt"
    assert infos[run.id].problem.startswith(problem), infos[run.id].problem
    assert run.resume_problem() == f"run {run.id} is corrupt: {infos[run.id].problem} ({path})"


def test_a_whitespace_only_error_is_a_failed_run_with_no_problem_line(tmp_path):
    store = RunStore.under(tmp_path / "artifact")
    run = make_run(store, result=dict(RESULT, status="failed", error="  \n \n"))
    info = run.info()
    assert info.status == "failed" and info.problem == ""


def test_the_training_state_is_checked_against_its_dataclass(tmp_path):
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "state.json").write_text(json.dumps(dict(STATE, added_later="kept out")))
    state = TrainingState.read(folder)  # an optional field absent, an unknown one ignored
    assert state == TrainingState(**STATE)
    (folder / "state.json").write_text(json.dumps(dict(STATE, elapsed=None)))
    with pytest.raises(ValueError, match='state.json: "elapsed" should be a number, got null'):
        TrainingState.read(folder)


def test_a_lock_from_another_host_names_it_and_how_to_clear_it(tmp_path):
    store = RunStore.under(tmp_path / "artifact")
    run = make_run(store, result=None)
    lock = run.paths.log / "lock"
    lock.write_text(json.dumps({"host": "otherbox", "pid": 1234}))
    info = run.info()
    assert info.status == "running"
    assert info.problem == (f"written by process 1234 on host otherbox; if nothing runs it there any more, "
                            f"remove {lock}")
    assert run.resume_problem() == (f"run {run.id} is being written by process 1234 on host otherbox and cannot be "
                                    f"resumed twice; if nothing runs it there any more, remove {lock}")
    with pytest.raises(RunBusyError) as busy:
        run.acquire_lock()
    assert str(busy.value) == run.resume_problem()
    assert lock.exists()


def test_a_lock_whose_local_process_died_is_stale(tmp_path):
    store = RunStore.under(tmp_path / "artifact")
    run = make_run(store, result=None)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run.paths.log / "lock").write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout)}))
    info = run.info()
    assert info.status == "interrupted" and run.resume_problem() is None
    (run.paths.log / "lock").write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    assert run.info().status == "running"
    assert run.resume_problem() == f"run {run.id} is still running (process {os.getpid()}); it cannot be resumed twice"


def test_metrics_files_are_not_json(tmp_path):
    """The CSVs keep their own reader (a torn last line is skipped): a damaged row never makes a run corrupt."""
    store = RunStore.under(tmp_path / "artifact")
    run = make_run(store)
    with open(run.paths.log / CSV_FILES[IterationEnd], "a") as fh:
        fh.write("5,2,oops\n")
    assert run.info().status == "completed" and len(run.read_iterations()) == 4


DAMAGED_ROWS = {  # what a crash, a bad disk or a stray edit leaves in a metrics file (issue 22, item 17)
    "inf count": "inf,2,2.0,0.1,0.1,100.0,2.0,0.1,1.0\n",
    "overflowing count": "1e400,2,2.0,0.1,0.1,100.0,2.0,0.1,1.0\n",
    "fractional count": "2.5,1,2.0,0.1,0.1,100.0,2.0,0.1,1.0\n",
    "non-UTF-8 byte": "3,1,2.0,0.1,0.1,100.0,2.0,0.1,\xff1.0\n",
    "line longer than csv's field limit": "4," + "9" * 200_000 + "\n",
    "duplicate of a saved row": "2,1,2.0,0.1,0.1,100.0,2.0,0.1,1.0\n",
}


@pytest.mark.parametrize("what", DAMAGED_ROWS)
def test_a_damaged_metrics_row_is_skipped_by_every_reader_and_dropped_by_resume(tmp_path, what):
    from resnet_tui.report.export import export_csv
    from resnet_tui.store.follow import RunFollower

    store = RunStore.under(tmp_path / "artifact")
    run = make_run(store, result=None)
    iterations = run.paths.log / CSV_FILES[IterationEnd]
    with open(iterations, "ab") as fh:  # after row 4, as a torn or scribbled tail would be
        fh.write(DAMAGED_ROWS[what].encode("latin-1"))
    with open(run.paths.log / CSV_FILES[EpochEnd], "ab") as fh:
        fh.write(DAMAGED_ROWS[what].encode("latin-1").replace(b"2,1,", b"1,4,", 1))

    assert [r.iteration for r in run.read_iterations()] == [1, 2, 3, 4] + ([2] if what.startswith("dup") else [])
    assert [e.epoch for e in run.read_epochs()] == [1] + ([1] if what.startswith("dup") else [])
    assert export_csv(run, tmp_path / "out.csv") >= 4
    follower = RunFollower(run)
    seen = [e for e in follower.poll() if isinstance(e, IterationEnd)]
    assert [e.iteration for e in seen][:4] == [1, 2, 3, 4]

    run.begin_resume(epoch=1, iteration=4)  # a resume leaves exactly rows 1..N, once each
    assert [r.iteration for r in run.read_iterations()] == [1, 2, 3, 4]
    assert [e.epoch for e in run.read_epochs()] == [1]
    assert iterations.read_bytes().count(b"\n") == 5  # header + 4 rows, nothing else kept


def test_a_damaged_metrics_header_is_one_line_naming_the_file(tmp_path, capsys):
    from resnet_tui.cli import main

    store = RunStore.under(tmp_path / "artifact")
    run = make_run(store)
    epochs = run.paths.log / CSV_FILES[EpochEnd]
    epochs.write_text("ep\x00och,iter\n" + epochs.read_text().split("\n", 1)[1])
    code = main(["show", run.id, "--artifact", str(tmp_path / "artifact")])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    assert f"error: {CSV_FILES[EpochEnd]}: its header is damaged" in " ".join(err.split())


def test_a_lock_whose_pid_now_belongs_to_another_process_is_stale(tmp_path):
    """pids wrap and start over after a reboot: a live pid that started after the lock was written
    is not the writer (issue 22, item 16). The lock records its process's start time."""
    import psutil

    store = RunStore.under(tmp_path / "artifact")
    run = make_run(store, result=None)
    lock = run.paths.log / "lock"
    this_process = psutil.Process().create_time()
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "process_started": this_process}))
    assert run.info().status == "running"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                "process_started": this_process - 3600}))  # the writer of an hour ago
    assert run.info().status == "interrupted" and run.resume_problem() is None
    run.acquire_lock()  # claimed over the stale lock, with this process's start time
    assert json.loads(lock.read_text())["process_started"] == pytest.approx(this_process, abs=1.0)
    run.release_lock()


def test_files_half_written_by_a_killed_process_are_removed_on_the_next_start(tmp_path):
    """A kill -9 mid-write leaves a partial file and a write probe (issue 22, item 22); the next
    process to claim the run (or to probe the folders) removes them, and nothing else."""
    from resnet_tui.store.atomic import partial_path

    store = RunStore.under(tmp_path / "artifact")
    run = make_run(store, result=None)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftovers = [partial_path(run.paths.checkpoint / "state.json"), partial_path(run.paths.result / "result.json"),
                 store.roots["log"] / f".write-probe-{int(dead.stdout)}"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half")
    live_probe = store.roots["log"] / f".write-probe-{os.getpid()}-not-ours"
    live_probe.write_text("another's")
    store.probe_writable()
    run.acquire_lock()
    run.release_lock()
    assert [p for p in leftovers if p.exists()] == [] and live_probe.exists()
    assert (run.paths.checkpoint / "state.json").exists()


def test_what_names_no_run_or_a_file_elsewhere_is_refused(tmp_path, capsys):
    """`show ''` and `show /` are no prefix of every id; `runs --artifact` on a folder that does not
    exist says so; a state.json naming a path outside its folder is damaged (issue 22, item 22)."""
    from resnet_tui.cli import main
    from resnet_tui.store.runs import RunNotFoundError

    store = RunStore.under(tmp_path / "artifact")
    run = make_run(store, result=None)
    for wrong in ("", "/", " "):
        with pytest.raises(RunNotFoundError, match="is not a run id"):
            store.open_run(wrong)
    assert main(["runs", "--artifact", str(tmp_path / "nowhere")]) == 2
    assert "nowhere/log does not exist" in " ".join(capsys.readouterr().err.split())
    state = json.loads((run.paths.checkpoint / "state.json").read_text())
    (run.paths.checkpoint / "state.json").write_text(json.dumps(dict(state, weights="/etc/passwd")))
    assert "should be a file name beside it" in run.resume_problem()


@pytest.mark.parametrize("stale_lock", [False, True])
def test_a_run_folder_that_cannot_be_written_is_one_line_naming_it(tmp_path, stale_lock):
    """Its root writable, the run's own log folder not (issue 22, item 19): claiming the run for a
    resume says which folder and why (StorageError: the CLI prints it, exit 2), never a traceback
    of PermissionError over FileExistsError. A read-only bind mount stands in for chattr +i."""
    from resnet_tui.store.runs import StorageError

    store = RunStore.under(tmp_path / "artifact")
    run = make_run(store, result=None)
    if stale_lock:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        (run.paths.log / "lock").write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout)}))
    mounted = subprocess.run(["mount", "--bind", str(run.paths.log), str(run.paths.log)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount here ({mounted.stderr.strip() or mounted.returncode})")
    try:
        remounted = subprocess.run(["mount", "-o", "remount,ro,bind", str(run.paths.log)], capture_output=True, text=True)
        if remounted.returncode != 0:
            pytest.skip(f"cannot remount read-only here ({remounted.stderr.strip()})")
        with pytest.raises(StorageError) as err:
            run.acquire_lock()
    finally:
        subprocess.run(["umount", "-l", str(run.paths.log)], check=False)
    assert str(err.value) == f"cannot write to {run.paths.log} (LOG_PATH): Read-only file system"


@pytest.mark.parametrize("trained_on, here", [("tensorflow", "jax"), ("jax", "tensorflow")])
def test_a_run_is_resumed_only_on_the_backend_it_trained_on(tmp_path, monkeypatch, trained_on, here):
    run = make_run(RunStore.under(tmp_path / "artifact"), result=None)
    meta = json.loads(run.file_path("meta").read_text())
    run.file_path("meta").write_text(json.dumps(dict(meta, backend=trained_on)))
    monkeypatch.setenv("KERAS_BACKEND", trained_on)
    assert run.resume_problem() is None
    monkeypatch.setenv("KERAS_BACKEND", here)
    assert run.resume_problem() == (f"run {run.id} was trained on the {trained_on} backend and this process runs "
                                    f"on {here}: resume it with --backend {trained_on}")


def test_a_run_from_before_the_backend_was_recorded_trained_on_tensorflow(tmp_path, monkeypatch):
    run = make_run(RunStore.under(tmp_path / "artifact"), result=None)
    meta = json.loads(run.file_path("meta").read_text())
    run.file_path("meta").write_text(json.dumps({k: v for k, v in meta.items() if k != "backend"}))
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert "was trained on the tensorflow backend" in run.resume_problem()
