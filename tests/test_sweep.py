"""Sweeps: a sweep file checked like a config, Optuna trials that are ordinary runs, pruning at an
epoch's end, and workers that share one study (real SQLite files, real worker processes)."""

import json
import signal
import subprocess
import sys
import time

import optuna
import pytest
from conftest import tiny_values
from support import CLI_ENV, REPO, postgres_server, wait_until, write_config

from resnet_tui.cli import main
from resnet_tui.store.runs import RunStore
from resnet_tui.sweep.spec import SweepError, load_sweep
from resnet_tui.sweep.study import create_study, default_storage

LR = {"OPTIMIZER.learning_rate": {"low": 0.001, "high": 0.5, "log": True}}


def write_sweep(tmp_path, name="lr", epochs=2, **sweep):
    write_config(tmp_path, "m1_base", tiny_values(tmp_path, EPOCHS_COUNT=epochs))
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"base": "m1_base.json", "params": LR, "trials": 3, "seed": 1, **sweep}, indent=1))
    return path


def runs_by_trial(tmp_path, study="lr"):
    store = RunStore.under(tmp_path / "artifact")
    runs = {}
    for run_id in store.run_ids():
        meta = store.open_run(run_id).read_meta() or {}  # a trial's run is listed before its run.json is written
        if meta.get("sweep", {}).get("study") == study:
            runs.setdefault(meta["sweep"]["trial"], []).append(store.open_run(run_id))
    return runs


@pytest.mark.parametrize("change, message", [
    ({"trails": 3}, 'trails: unknown key; did you mean \'trials\'?'),
    ({"params": {"LEARNING_RATE": {"low": 0.1, "high": 0.2}}},
     "params.LEARNING_RATE: not a config key; did you mean 'OPTIMIZER.learning_rate'?"),
    ({"params": {"OPTIMIZER.learning_rate": {"low": 0.1, "high": 20}}},
     "params.OPTIMIZER.learning_rate.high: got 20, expected a number > 0 and <= 10"),
    ({"params": {"OPTIMIZER.learning_rate": {"low": 0.5, "high": 0.1}}},
     "params.OPTIMIZER.learning_rate: low (0.5) must be below high (0.1)"),
    ({"params": {"BATCH_SIZE": {"choices": [64, 0]}}}, "params.BATCH_SIZE: choice got 0, expected an integer >= 1"),
    ({"params": {"OPTIMIZER.type": {"low": 1, "high": 2}}},
     'params.OPTIMIZER.type: OPTIMIZER.type takes one of "sgd", "adam", "adamw": search it with "choices"'),
    ({"pruner": "hyperband"}, 'pruner: got "hyperband", expected one of "median", "successive_halving", "none"'),
    ({"trials": None}, "trials: give a budget"),
    ({"base": "m1_missing.json"}, "base: "),
])
def test_a_wrong_sweep_file_names_the_key_and_what_is_allowed(tmp_path, change, message):
    path = write_sweep(tmp_path)
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(SweepError) as caught:
        load_sweep(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_malformed_sweep_json_names_the_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "base": "m1_base.json",\n  "params": {,}\n}')
    with pytest.raises(SweepError, match=r"invalid JSON at line 3, column 14"):
        load_sweep(path)


# slow lane: 17 s of trials; the fast lane runs a sweep from the dashboard (test_tui_sweeps.py)
@pytest.mark.slow
def test_a_sweep_runs_its_trials_as_runs_and_saves_the_best_config(tmp_path, capsys):
    path = write_sweep(tmp_path, trials=3, pruner="none")
    best_file = tmp_path / "m1_best.json"
    assert main(["sweep", str(path), "--save-best", str(best_file)]) == 0
    out = capsys.readouterr().out
    spec = load_sweep(path)
    study = optuna.load_study(study_name="lr", storage=default_storage(RunStore.under(tmp_path / "artifact"), "lr"))
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    runs = runs_by_trial(tmp_path)
    assert sorted(runs) == [0, 1, 2] and all(len(r) == 1 for r in runs.values())  # each trial once, one run each
    for trial in trials:
        run = runs[trial.number][0]
        assert run.info().status == "completed" and trial.user_attrs["run_id"] == run.id
        assert run.read_config()["OPTIMIZER"]["learning_rate"] == pytest.approx(trial.params["OPTIMIZER.learning_rate"])
        assert trial.value == max(e.val_accuracy for e in run.read_epochs())  # the trial's value is its run's best
    assert study.best_value == max(t.value for t in trials)
    best = json.loads(best_file.read_text())
    assert best["OPTIMIZER"]["learning_rate"] == pytest.approx(study.best_params["OPTIMIZER.learning_rate"])
    assert best["EPOCHS_COUNT"] == spec.base_values["EPOCHS_COUNT"]
    assert "sweep lr: 3 of 3 trials counted" in out and f"best: trial {study.best_trial.number}" in out
    assert "resnet-tui sweep-worker lr --storage sqlite:///" in out


def test_a_trial_below_the_others_is_pruned_at_an_epoch_end_and_its_run_says_why(tmp_path, capsys):
    path = write_sweep(tmp_path, epochs=4, trials=3, warmup_epochs=1)
    spec = load_sweep(path)
    study = create_study(spec, default_storage(RunStore.under(tmp_path / "artifact"), "lr"))
    lr = {"OPTIMIZER.learning_rate": optuna.distributions.FloatDistribution(0.001, 0.5, log=True)}
    for value in (0.1, 0.2):  # two earlier trials that reached 100% at every epoch: a real run is below them
        study.add_trial(optuna.trial.create_trial(params={"OPTIMIZER.learning_rate": value}, value=1.0, distributions=lr,
                                                  intermediate_values={e: 1.0 for e in range(1, 5)}))
    assert main(["sweep", str(path)]) == 0
    pruned = study.get_trials(states=(optuna.trial.TrialState.PRUNED,))
    assert len(pruned) == 1
    run = runs_by_trial(tmp_path)[pruned[0].number][0]
    info = run.info()
    # Warm-up of one epoch: the first epoch the median pruner may judge is epoch 2, and it stops there, whole.
    assert [e.epoch for e in run.read_epochs()] == [1, 2]
    assert info.status == "stopped" and run.resume_problem() is None
    assert info.result["stop_reason"].startswith("pruned at epoch 2 by the MedianPruner: val acc ")
    assert f"trial {pruned[0].number} pruned:" in capsys.readouterr().out


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    """The default SQLite file in the artifact folder, and a real PostgreSQL server of the test's own."""
    if request.param == "sqlite":
        yield default_storage(RunStore.under(tmp_path / "artifact"), "lr")
    else:
        with postgres_server() as url:
            yield url


@pytest.mark.slow
def test_two_workers_share_one_study_and_run_each_trial_once(tmp_path, storage_url):
    path = write_sweep(tmp_path, trials=4)
    url = storage_url
    cli = [sys.executable, "-m", "resnet_tui.cli"]
    first = subprocess.Popen([*cli, "sweep", str(path), "--storage", url], cwd=REPO, env=CLI_ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    wait_until(lambda: runs_by_trial(tmp_path), proc=first)  # the study exists and its first trial runs
    second = subprocess.Popen([*cli, "sweep-worker", "lr", "--storage", url], cwd=REPO, env=CLI_ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    study = optuna.load_study(study_name="lr", storage=url)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    counted = study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    assert 4 <= len(counted) <= 5  # the budget, plus at most the one the other worker had under way
    runs = runs_by_trial(tmp_path)
    assert sorted(runs) == sorted(t.number for t in study.get_trials()) and all(len(r) == 1 for r in runs.values())
    writers = {run.read_meta()["pid"] for (run,) in runs.values()}
    assert writers == {first.pid, second.pid}  # both workers trained trials
    assert study.best_value == max(t.value for t in done)


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_it_failed_not_running_and_the_sweep_goes_on(tmp_path):
    path = write_sweep(tmp_path, epochs=40, trials=1, heartbeat_seconds=1)
    url = default_storage(RunStore.under(tmp_path / "artifact"), "lr")
    cli = [sys.executable, "-m", "resnet_tui.cli"]
    doomed = subprocess.Popen([*cli, "sweep", str(path)], cwd=REPO, env=CLI_ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_until(lambda: any(r[0].read_epochs() for r in runs_by_trial(tmp_path).values()), proc=doomed)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    time.sleep(4)  # past the grace period of three heartbeats
    follow = subprocess.run([*cli, "sweep-worker", "lr", "--storage", url], cwd=REPO, env=CLI_ENV,
                            capture_output=True, text=True, timeout=600)
    assert follow.returncode == 0, follow.stdout + follow.stderr
    study = optuna.load_study(study_name="lr", storage=url)
    states = [t.state for t in study.get_trials()]
    # The killed trial is failed, never left RUNNING; the budget's one trial is redone, not counted twice.
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    killed = runs_by_trial(tmp_path)[0][0]
    assert killed.info().status == "interrupted" and killed.resume_problem() is None  # its run files intact


def test_the_shipped_sweep_files_are_valid():
    from support import REPO

    specs = [load_sweep(path) for path in sorted((REPO / "sweeps").glob("*.json"))]
    assert specs and all(spec.trials and spec.params for spec in specs)


def test_a_worker_joining_later_does_not_draw_the_first_workers_values_again(tmp_path):
    from resnet_tui.sweep.study import join_study

    spec = load_sweep(write_sweep(tmp_path, trials=4))
    url = default_storage(RunStore.under(tmp_path / "artifact"), "lr")
    first = create_study(spec, url)
    drawn = [first.ask().suggest_float("OPTIMIZER.learning_rate", 0.001, 0.5, log=True) for _ in range(2)]
    _, second = join_study("lr", url)
    again = [second.ask().suggest_float("OPTIMIZER.learning_rate", 0.001, 0.5, log=True) for _ in range(2)]
    assert not set(drawn) & set(again)
