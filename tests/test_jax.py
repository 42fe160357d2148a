"""Keras on JAX: the same runs, records, stops and exports as on TensorFlow, never importing it.

The JAX lane (`make test-jax`) runs these in an environment without TensorFlow,
with tests of the other files that hold on any backend (resume, dashboard,
follow, export); on TensorFlow they skip.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import tiny_values
from support import CLI_ENV, REPO, wait_until, write_config

from resnet_tui import backend
from resnet_tui.cli import main
from resnet_tui.config import config_from_values
from resnet_tui.store.runs import RunStore
from resnet_tui.training.trainer import Trainer

pytestmark = pytest.mark.skipif(backend.current() != "jax",
                                reason="the JAX lane runs these (make test-jax: KERAS_BACKEND=jax, no TensorFlow)")


def test_a_run_on_jax_records_every_iteration_exactly_and_never_imports_tensorflow(tiny_config):
    config = tiny_config(EPOCHS_COUNT=2)
    result = Trainer(config).run()
    assert result.status == "completed", result.error
    run = RunStore.from_values(config.values).open_run(result.run_id)
    assert run.read_meta()["backend"] == "jax" and run.read_result()["versions"]["backend"] == "jax"
    rows, epochs = run.read_iterations(), run.read_epochs()
    assert [r.iteration for r in rows] == list(range(1, 9))
    for epoch in epochs:  # each batch's own loss, averaged, is Keras' running mean (equal batches of 32)
        own = [r.loss for r in rows if r.epoch == epoch.epoch]
        np.testing.assert_allclose(np.cumsum(own) / np.arange(1, len(own) + 1),
                                   [r.epoch_loss for r in rows if r.epoch == epoch.epoch], rtol=1e-5)
        np.testing.assert_allclose(own[-1:], [rows[epoch.iteration - 1].loss])
        np.testing.assert_allclose(epoch.loss, rows[epoch.iteration - 1].epoch_loss, rtol=1e-5)
    assert "tensorflow" not in sys.modules


def test_m8_trains_evaluates_and_exports_on_jax_from_the_cli(tmp_path, capsys):
    path = write_config(tmp_path, "m8_jax", tiny_values(tmp_path, MODEL_NUMBER=8, EPOCHS_COUNT=1))
    assert main(["--backend", "jax", "train", str(path)]) == 0
    out = capsys.readouterr().out
    assert "274,042" in out and "backend jax" in out
    artifact = str(tmp_path / "artifact")
    run_id = RunStore.under(artifact).run_ids()[0]
    assert main(["evaluate", run_id, "--artifact", artifact]) == 0
    assert "Test split, 64 images, accuracy" in capsys.readouterr().out
    assert main(["export", run_id, "--artifact", artifact, "--tensorboard", str(tmp_path / "tb")]) == 0
    assert list((tmp_path / "tb" / run_id).glob("events.out.tfevents.*"))
    assert "tensorflow" not in sys.modules


def test_several_steps_per_execution_are_refused_on_jax_with_the_reason(tiny_config):
    result = Trainer(tiny_config(STEPS_PER_EXECUTION=2)).run()
    assert result.status == "failed"
    assert "STEPS_PER_EXECUTION 2 is not supported on the JAX backend" in result.error


DATA_PARALLEL = """
import json, sys
import numpy as np
from resnet_tui.config import config_from_values
from resnet_tui.store.runs import RunStore
from resnet_tui.training.trainer import Trainer
values = json.loads(sys.argv[1])
losses = {}
for mode in ("none", "data_parallel"):
    config = config_from_values(dict(values, DISTRIBUTE=mode), "m1_dp")
    result = Trainer(config).run()
    assert result.status == "completed", result.error
    run = RunStore.from_values(config.values).open_run(result.run_id)
    losses[mode] = [r.loss for r in run.read_iterations()] + [e.val_loss for e in run.read_epochs()]
    devices = run.read_result()["distribute"]["devices"]
print(json.dumps({"losses": losses, "devices": devices}))
"""


def test_data_parallel_on_two_cpu_devices_equals_one_device(tmp_path):
    values = tiny_values(tmp_path, EPOCHS_COUNT=2)
    env = dict(CLI_ENV, KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    done = subprocess.run([sys.executable, "-c", DATA_PARALLEL, json.dumps(values)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["devices"] == ["cpu:0", "cpu:1"]
    np.testing.assert_allclose(answer["losses"]["data_parallel"], answer["losses"]["none"], rtol=1e-5)


def test_the_machine_line_names_the_backend():
    done = subprocess.run([sys.executable, "-m", "resnet_tui.machine.info"], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, KERAS_BACKEND="jax"), timeout=120)
    assert "; JAX " in done.stdout and "Keras 3." in done.stdout


@pytest.mark.skipif(backend.installed("tensorflow"), reason="needs an environment without TensorFlow (.venv-jax)")
def test_asking_for_tensorflow_where_it_is_not_installed_says_how_to_install_it():
    done = subprocess.run([sys.executable, "-m", "resnet_tui.cli", "--backend", "tensorflow", "validate",
                           "configs/m8_demo.json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "the tensorflow backend is not installed: pip install -e '.[tensorflow]'" in done.stderr


# -- several processes (docs/multi-gpu.md): two over localhost, as two machines would run ---------

def start_processes(tmp_path, config, count: int = 2) -> list[subprocess.Popen]:
    """``resnet-tui train CONFIG --coordinator 127.0.0.1:PORT --processes N --process-id I`` for each I,
    their output in tmp_path/process-I.txt; TMPDIR is tmp_path/private (for the others' private runs)."""
    with socket.socket() as probe:  # a free port for the coordinator
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    private = tmp_path / "private"
    private.mkdir(exist_ok=True)
    env = dict(CLI_ENV, KERAS_BACKEND="jax", TMPDIR=str(private), COLUMNS="120")

    def start(index: int) -> subprocess.Popen:
        with open(tmp_path / f"process-{index}.txt", "w") as log:  # the child keeps its own copy
            return subprocess.Popen([sys.executable, "-m", "resnet_tui.cli", "train", str(config), "--coordinator",
                                     f"127.0.0.1:{port}", "--processes", str(count), "--process-id", str(index)],
                                    cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)

    return [start(index) for index in range(count)]


def output(tmp_path, index: int) -> str:
    return (tmp_path / f"process-{index}.txt").read_text()


def ended(processes: list[subprocess.Popen], timeout: float) -> list[int]:
    try:
        return [p.wait(timeout=timeout) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()


def test_several_processes_are_refused_without_data_parallel_before_joining(tmp_path, capsys):
    path = write_config(tmp_path, "m1_none", tiny_values(tmp_path))
    assert main(["train", str(path), "--processes", "2", "--process-id", "0", "--coordinator", "127.0.0.1:1"]) == 2
    assert "several processes train one run with DISTRIBUTE=data_parallel only" in capsys.readouterr().err
    assert RunStore.from_values(tiny_values(tmp_path)).run_ids() == []


def test_two_processes_train_one_run_with_the_one_process_losses(tmp_path):
    values = tiny_values(tmp_path, DISTRIBUTE="data_parallel")  # 2 epochs of 4 batches of 32
    processes = start_processes(tmp_path, write_config(tmp_path, "m1_two", values))
    codes = ended(processes, timeout=300)
    assert codes == [0, 0], output(tmp_path, 0)[-3000:] + output(tmp_path, 1)[-3000:]
    store = RunStore.from_values(values)
    assert len(store.run_ids()) == 1, "only process 0 writes a run"
    assert list((tmp_path / "private").iterdir()) == [], "process 1 deletes its private run"
    assert "process 1 of 2: completed" in output(tmp_path, 1)
    run = store.open_run(store.run_ids()[0])
    result = run.read_result()
    assert result["status"] == "completed"
    assert result["distribute"]["processes"] == 2 and result["distribute"]["replicas"] == 2
    two = [r.loss for r in run.read_iterations()] + [e.val_loss for e in run.read_epochs()]

    alone = Trainer(config_from_values(tiny_values(tmp_path / "alone"), "m1_alone")).run()
    assert alone.status == "completed", alone.error
    one_run = RunStore.from_values(tiny_values(tmp_path / "alone")).open_run(alone.run_id)
    one = [r.loss for r in one_run.read_iterations()] + [e.val_loss for e in one_run.read_epochs()]
    assert len(two) == len(one) == 8 + 2
    np.testing.assert_allclose(two, one, rtol=1e-5)
    np.testing.assert_allclose(result["test_loss"], alone.test_loss, rtol=1e-5)
    assert result["confusion"]["matrix"] == alone.confusion["matrix"]  # every process's predictions, gathered


def test_a_stop_on_process_0_stops_both_processes_at_the_same_step(tmp_path):
    values = tiny_values(tmp_path, DISTRIBUTE="data_parallel", EPOCHS_COUNT=200)
    processes = start_processes(tmp_path, write_config(tmp_path, "m1_stop", values))
    store = RunStore.from_values(values)
    wait_until(lambda: store.run_ids() and len(store.open_run(store.run_ids()[0]).read_iterations()) >= 6,
               timeout=240, proc=processes[0], what="a few iterations")
    processes[0].send_signal(signal.SIGINT)
    assert ended(processes, timeout=120) == [130, 0], output(tmp_path, 0)[-3000:] + output(tmp_path, 1)[-3000:]
    result = store.open_run(store.run_ids()[0]).read_result()
    assert result["status"] == "stopped"
    at = result["stop_reason"].split(";")[0]  # "stopped by user at iteration N"
    assert f"process 1 of 2: stopped: {at}" in output(tmp_path, 1)


def test_a_process_killed_mid_run_fails_the_run_on_the_other_naming_it(tmp_path):
    values = tiny_values(tmp_path, DISTRIBUTE="data_parallel", EPOCHS_COUNT=200)
    processes = start_processes(tmp_path, write_config(tmp_path, "m1_kill", values))
    store = RunStore.from_values(values)
    wait_until(lambda: store.run_ids() and len(store.open_run(store.run_ids()[0]).read_iterations()) >= 6,
               timeout=240, proc=processes[0], what="a few iterations")
    processes[1].kill()
    killed = time.monotonic()
    assert processes[0].wait(timeout=60) == 1, output(tmp_path, 0)[-3000:]
    took = time.monotonic() - killed
    result = store.open_run(store.run_ids()[0]).read_result()
    assert result["status"] == "failed"
    assert result["error"].startswith("process 1 of 2 stopped answering"), result["error"]
    assert "process 1 of 2 stopped answering" in output(tmp_path, 0)
    assert took < 30, f"process 0 took {took:.0f} s to end"


def test_a_stop_asked_for_while_a_step_runs_keeps_the_model_whole(tiny_config, monkeypatch):
    """The dashboard's F7 comes from another thread at any moment. Asked for while a step runs
    (here: as the pipeline hands the 3rd step of epoch 2 its batch, inside Keras' step function),
    the run ends stopped with its final model saved. It failed with "Array has been deleted" when
    working out where the stop lands read the callback's ``model``, which on JAX writes fit's state
    back from whichever thread asks, and so marked the step's consumed arrays as the model's."""
    from resnet_tui.data.host_pipeline import TrainBatches

    trainer = Trainer(tiny_config(EPOCHS_COUNT=50))
    hand_over = TrainBatches.__getitem__
    asked = []

    def batch_and_stop(batches, index):
        if batches.epoch == 1 and index == 2 and not asked:  # epoch 2 (0-based)
            asked.append(trainer.stop())
        return hand_over(batches, index)

    monkeypatch.setattr(TrainBatches, "__getitem__", batch_and_stop)
    result = trainer.run()
    assert asked and result.status == "stopped", result.error
    run = RunStore.from_values(trainer.config.values).open_run(result.run_id)
    assert run.paths.final_model.exists() and run.read_result()["iterations"] == result.iterations
