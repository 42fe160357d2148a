"""DISTRIBUTE (MirroredStrategy on one machine) and SYNC_BATCH_NORM.

Two replicas on a CPU-only machine need two logical CPU devices, which must be
configured before TensorFlow initializes: those tests run their body in a child
Python (``_in_two_cpu_child``) whose TensorFlow sees two CPUs and no GPU. The
``_child_*`` functions below are that body; they return JSON-able dicts and the
tests assert on them here.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_values
from support import REPO

from resnet_tui.config import FIELDS, Config, ConfigError, config_from_values, load_config

TESTS = REPO / "tests"

# One SGD step of m8 (L2 on, momentum 0.9, lr 0.1) on the same global batch of 32,
# from the same initial weights: 2 replicas with synchronized batch norm vs one
# device, all in float64. Measured: max |difference| 2e-15 over every weight and
# moving statistic, while the step moves weights by up to 0.4; with unsynchronized
# batch norm (statistics over each replica's 16 images) the difference is 4e-2.
# float64 because float32 rounding is amplified by batch norm (it divides by
# small-batch standard deviations, and Keras' synchronized variance
# E[x^2] - E[x]^2 cancels): in float32 the same comparison gave 8e-7 here and
# 8e-5 with a batch of 64 from other initial weights, and on ONE device
# synchronized=True alone moved a float32 step by 3e-5. A scaling mistake, e.g.
# the L2 penalty counted once per replica, would show as about
# lr * 2 * lambda * |w| = 1e-5, far above this tolerance.
ONE_STEP_ATOL = 1e-10

CHILD = """
import json, os, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, {tests!r})
import test_distribute
print("CHILD-RESULT " + json.dumps(getattr(test_distribute, {name!r})(*sys.argv[1:])))
"""


def _in_two_cpu_child(name: str, *args: str, timeout: float = 240) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", CHILD.format(tests=str(TESTS), name=name), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("CHILD-RESULT ")]
    assert proc.returncode == 0 and lines, f"child {name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return json.loads(lines[-1][len("CHILD-RESULT "):])


# -- config ---------------------------------------------------------------------
def test_multi_worker_is_refused_with_the_reason(tmp_path):
    with pytest.raises(ConfigError) as err:
        config_from_values(tiny_values(tmp_path, DISTRIBUTE="multi_worker"), "m8_x")
    message = str(err.value)
    assert message.startswith('m8_x: DISTRIBUTE: got "multi_worker": multi-machine training is not supported')
    assert "MultiWorkerMirroredStrategy" in message and "keras-team/keras issue 20585" in message
    assert "expected one of" not in message


def test_other_distribute_values_list_the_choices(tmp_path):
    with pytest.raises(ConfigError, match='DISTRIBUTE: got "tpu", expected one of "none", "mirrored"'):
        config_from_values(tiny_values(tmp_path, DISTRIBUTE="tpu"))


def test_defaults_and_the_sync_batch_norm_warning(tmp_path):
    config = load_config(REPO / "configs" / "m8_base.json")
    assert (config.DISTRIBUTE, config.SYNC_BATCH_NORM) == ("none", False)
    assert "global batch" in FIELDS["BATCH_SIZE"].help
    assert FIELDS["DISTRIBUTE"].group == FIELDS["SYNC_BATCH_NORM"].group == "Distribution"
    alone = config_from_values(tiny_values(tmp_path, SYNC_BATCH_NORM=True))
    assert alone.warnings == ["SYNC_BATCH_NORM has an effect only with DISTRIBUTE=mirrored: it is ignored."]
    assert config_from_values(tiny_values(tmp_path, SYNC_BATCH_NORM=True, DISTRIBUTE="mirrored")).warnings == []


def test_sync_batch_norm_builds_synchronized_layers_only_when_mirrored(tmp_path):
    from resnet_tui.models.resnet import dispatch_build_model

    def synchronized(**changes):
        model = dispatch_build_model(8, config_from_values(tiny_values(tmp_path, **changes)))
        return {layer.synchronized for layer in model.layers if layer.name.endswith("_bn")}

    assert synchronized(DISTRIBUTE="mirrored", SYNC_BATCH_NORM=True) == {True}
    assert synchronized(DISTRIBUTE="mirrored") == {False}
    assert synchronized(SYNC_BATCH_NORM=True) == {False}  # no strategy: nothing to synchronize


# -- one visible device ------------------------------------------------------------
def test_mirrored_on_one_device_is_one_replica_and_says_so(tiny_config):
    """This process's TensorFlow sees one CPU (CUDA_VISIBLE_DEVICES or not, the test
    machine has no GPU). The trainer passes these messages to the sink and the
    record to result.json: checked on two replicas below."""
    from resnet_tui.training.distribute import Distribution

    config = tiny_config(DISTRIBUTE="mirrored", SYNC_BATCH_NORM=True)
    dist = Distribution.from_config(config)
    assert dist.record() == {"strategy": "mirrored", "replicas": 1, "devices": ["/device:CPU:0"],
                             "sync_batch_norm": True}
    assert dist.messages == ["DISTRIBUTE=mirrored: only one device is visible (/device:CPU:0), "
                             "so MirroredStrategy trains on one replica"]
    assert dist.check_batches(33, 77) == []  # any batch splits over one replica
    assert Distribution.from_config(config).strategy is dist.strategy  # one strategy per process
    none = Distribution.from_config(tiny_config())
    assert none.record() == {"strategy": "none", "replicas": 1, "devices": ["/device:CPU:0"],
                             "sync_batch_norm": False}
    assert none.messages == [] and none.callbacks(None) == []


def test_keras_build_pass_under_a_strategy_is_rewound():
    """Under a strategy fit starts an extra pass of the training data to build the
    model (one draw of the seeded generator); the rewind gives epoch 1 the draws of
    a run without a strategy, so DISTRIBUTE does not change the data order."""
    import keras
    import tensorflow as tf

    from resnet_tui.data.dataset import Dataset
    from resnet_tui.data.pipeline import make_train_dataset
    from resnet_tui.training.distribute import RewindInputPipeline, mirrored_strategy

    rng = np.random.default_rng(0)
    ds = Dataset(rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 16, dtype=np.int64),
                 *(np.zeros((0, 32, 32, 3), np.uint8), np.zeros(0, np.int64)) * 2,
                 np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32), "synthetic", "toy")

    def state_after_fit(strategy, rewind: bool):
        train = make_train_dataset(ds, 8, True, seed=3)
        with strategy.scope():
            model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(),
                                      keras.layers.Dense(10, activation="softmax")])
            model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
        callbacks = [RewindInputPipeline(train.seed_generator)] if rewind else []
        model.fit(train, epochs=2, verbose=0, callbacks=callbacks, shuffle=False)
        return train.seed_generator.state.numpy().tolist()

    plain = state_after_fit(tf.distribute.get_strategy(), rewind=False)
    mirrored = mirrored_strategy(None)  # one replica here, but fit takes the strategy path
    assert state_after_fit(mirrored, rewind=False) != plain  # Keras' extra pass drew once more
    assert state_after_fit(mirrored, rewind=True) == plain


def test_batch_rules_for_two_replicas():
    from resnet_tui.training.distribute import DistributeError, Distribution

    two = Distribution("mirrored", None, ["/device:GPU:0", "/device:GPU:1"])
    assert two.check_batches(128, 45000) == []  # the paper's split: last batch 72 = 36 + 36
    assert "last batch of each epoch (13 images)" in two.check_batches(32, 173)[0]
    with pytest.raises(DistributeError, match="BATCH_SIZE 33 does not split evenly across 2 replicas"):
        two.check_batches(33, 1000)
    with pytest.raises(DistributeError, match=r"training split \(31 images\) is smaller than BATCH_SIZE"):
        two.check_batches(32, 31)
    # A last batch of 1 would leave replica 2 with nothing: it sits out the epoch.
    assert "each epoch trains on 96 of the 97 images (a different 1 sit out each epoch)" in two.check_batches(32, 97)[0]
    with pytest.raises(DistributeError, match=r"training split \(1 images\) is smaller than BATCH_SIZE"):
        two.check_batches(32, 1)
    one = Distribution("mirrored", None, ["/device:CPU:0"])
    assert one.check_batches(33, 19) == []
    assert two.record() == {"strategy": "mirrored", "replicas": 2, "devices": ["/device:GPU:0", "/device:GPU:1"],
                            "sync_batch_norm": False}


# -- two replicas (child processes) -------------------------------------------------
def _child_one_step(tmp: str, dtype: str = "float64") -> dict:
    """One SGD step of m8 on one global batch: 2 replicas (sync BN) vs one device."""
    import keras
    import numpy as np
    import tensorflow as tf

    from resnet_tui.models.resnet import dispatch_build_model
    from resnet_tui.training.compile import compile_model
    from resnet_tui.training.distribute import Distribution

    keras.config.set_floatx(dtype)  # the loss, metrics and their sum
    config = config_from_values(tiny_values(Path(tmp), DISTRIBUTE="mirrored", SYNC_BATCH_NORM=True))
    single = config.with_values({"DISTRIBUTE": "none", "SYNC_BATCH_NORM": False})

    def build(c: Config):
        """m8 as the trainer builds it, every layer recast to ``dtype`` (float64 makes the
        comparison sharp: float32 rounding is amplified by batch norm, see ONE_STEP_ATOL)."""
        model = keras.models.clone_model(
            dispatch_build_model(8, c),
            clone_function=lambda layer: layer.__class__.from_config({**layer.get_config(), "dtype": dtype}))
        compile_model(model, c, 0.1)
        return model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 32, 32, 3)).astype(dtype)  # like standardized images; no augmentation
    y = rng.integers(0, 10, size=32)
    batch = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)  # one global batch: 16 per replica

    def weights(model):
        return {w.path: np.asarray(w.numpy()) for w in model.weights}

    dist = Distribution.from_config(config)
    keras.utils.set_random_seed(0)
    with dist.scope():
        mirrored = build(config)
    reference = build(single)
    reference.set_weights(mirrored.get_weights())
    before = weights(mirrored)

    loss = mirrored.fit(batch, epochs=1, verbose=0, shuffle=False).history["loss"][0]
    got = weights(mirrored)
    # One device, written out eagerly (no second trace of m8, which costs more than
    # the step): the compiled loss is the batch mean of the cross-entropy plus the
    # L2 terms; Keras' SGD with momentum m starts from m = 0, so its first update
    # is w -= lr * g; batch norm updates its moving statistics in the training call.
    with tf.GradientTape() as tape:
        probs = reference(x, training=True)
        want_loss = keras.losses.SparseCategoricalCrossentropy()(y, probs) + tf.add_n(reference.losses)
    grads = tape.gradient(want_loss, reference.trainable_weights)
    for w, g in zip(reference.trainable_weights, grads):
        w.assign_sub(0.1 * g)
    want = weights(reference)
    assert got.keys() == want.keys() == before.keys()
    return {
        "replicas": dist.replicas, "devices": dist.devices,
        "max_diff": max(float(np.abs(got[k] - want[k]).max()) for k in want),
        "worst": max(want, key=lambda k: float(np.abs(got[k] - want[k]).max())),
        "max_update": max(float(np.abs(want[k] - before[k]).max()) for k in want),
        "loss": loss, "single_loss": float(want_loss),
        "optimizer_iterations": int(mirrored.optimizer.iterations.numpy()),
        "dtypes": sorted({str(w.dtype) for w in mirrored.weights}),
    }


def _child_all(tmp: str) -> dict:
    """All two-replica checks in one child: TensorFlow starts once."""
    return {"slices": _child_replica_slices(), "runs": _child_tiny_runs(str(Path(tmp) / "runs")),
            "one_step": _child_one_step(str(Path(tmp) / "one-step"))}  # last: it sets floatx


def _child_replica_slices() -> dict:
    """The images each replica gets from the pipelines as MirroredStrategy splits them:
    {"train 97/32": [[16, 16], [16, 16], [16, 16]], "eval 19/8": ...}."""
    import tensorflow as tf

    from resnet_tui.data.dataset import Dataset
    from resnet_tui.data.pipeline import make_eval_dataset, make_train_dataset
    from resnet_tui.training.distribute import mirrored_devices, mirrored_strategy

    strategy = mirrored_strategy(mirrored_devices())
    rng = np.random.default_rng(0)

    def split(dataset) -> list[list[int]]:
        return [[int(tf.shape(x)[0]) for x in strategy.experimental_local_results(batch[0])]
                for batch in strategy.experimental_distribute_dataset(dataset)]

    slices = {}
    for count, batch in [(97, 32), (65, 32), (33, 32), (5, 4), (64, 32)]:
        x = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
        ds = Dataset(x, np.zeros(count, np.int64), x[:0], np.zeros(0, np.int64), x[:0], np.zeros(0, np.int64),
                     np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32), "synthetic", "toy")
        slices[f"train {count}/{batch}"] = split(make_train_dataset(ds, batch, True, 0, replicas=2))
    for count in (19, 17, 3, 2, 1):
        for batch in (32, 8):
            x = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
            slices[f"eval {count}/{batch}"] = split(make_eval_dataset(x, np.zeros(count), (0.5, 0.25), batch, 2))
    return slices


@pytest.mark.slow
def test_no_replica_ever_gets_an_empty_batch(two_cpu_results):
    """The test of the cause, whatever this CPU does with an empty batch (oneDNN on
    AVX-512 fails on one; AVX2 runs it): every slice holds images, and each first
    batch splits evenly (Keras builds the model from it)."""
    slices = two_cpu_results["slices"]
    assert slices["train 97/32"] == [[16, 16]] * 3  # the 97th image sits out the epoch
    assert slices["train 65/32"] == [[16, 16]] * 2 and slices["train 33/32"] == [[16, 16]]
    assert slices["train 5/4"] == [[2, 2]] and slices["train 64/32"] == [[16, 16]] * 2
    assert slices["eval 19/32"] == [[10, 10]] and slices["eval 19/8"] == [[4, 4], [4, 4], [2, 2]]
    assert slices["eval 3/32"] == [[2, 2]] and slices["eval 1/8"] == [[1, 1]]
    for name, batches in slices.items():
        assert all(n > 0 for batch in batches for n in batch), name
        assert batches[0][0] == batches[0][1], name


@pytest.fixture(scope="module")
def two_cpu_results(tmp_path_factory):
    return _in_two_cpu_child("_child_all", str(tmp_path_factory.mktemp("two-cpus")), timeout=420)


@pytest.mark.slow
def test_one_step_on_two_replicas_matches_one_device(two_cpu_results):
    out = two_cpu_results["one_step"]
    assert out["replicas"] == 2 and out["devices"] == ["/device:CPU:0", "/device:CPU:1"]
    assert out["optimizer_iterations"] == 1 and out["dtypes"] == ["float64"]
    assert out["max_update"] > 0.1  # the step really moved the weights
    assert out["max_diff"] < ONE_STEP_ATOL, out
    # The loss Keras reports is the global batch's (the loss scaling by 1/replicas is undone).
    assert out["loss"] == pytest.approx(out["single_loss"], rel=1e-12)


def _child_tiny_runs(tmp: str) -> dict:
    """A tiny mirrored run, a restore of its state as resume does it, and a refused batch size."""
    from dataclasses import asdict

    from resnet_tui.events import IterationEnd, LogMessage, RunStarted
    from resnet_tui.models.resnet import dispatch_build_model
    from resnet_tui.store.runs import RunStore
    from resnet_tui.training.checkpoint import TrainingState, restore
    from resnet_tui.training.compile import compile_model
    from resnet_tui.training.distribute import Distribution
    from resnet_tui.training.schedules import IterationStepDecay
    from resnet_tui.training.trainer import Trainer

    def run(folder, **changes):
        events = []
        config = config_from_values(tiny_values(Path(tmp) / folder, **{"MODEL_NUMBER": 8, **changes}), "m8_tiny")
        result = Trainer(config, sink=events.append, capture_stderr=False).run()
        started = [e for e in events if isinstance(e, RunStarted)]
        return config, result, {
            "steps_per_epoch": started[0].steps_per_epoch if started else None,
            "train_count": started[0].train_count if started else None,
            "iterations": [e.iteration for e in events if isinstance(e, IterationEnd)],
            "losses": [e.loss for e in events if isinstance(e, IterationEnd)],
            "logs": [f"{e.level}: {e.text}" for e in events if isinstance(e, LogMessage)],
        }

    # 115 synthetic images: 96 for training (3 global batches of 32), 19 for
    # validation (fewer than a batch and odd: padded to 20, 10 per replica); 17 test
    # images. Batch shapes are kept few: every new one is another trace of m8 per replica.
    config, result, seen = run("mirrored", DISTRIBUTE="mirrored", SYNC_BATCH_NORM=True,
                               **{"DATASET.synthetic_train_count": 115, "DATASET.validation_count": 19,
                                  "DATASET.synthetic_test_count": 17})
    store = RunStore.from_values(config.values)
    run_record = store.open_run(result.run_id)
    saved = json.loads((run_record.paths.result / "result.json").read_text())
    rows = run_record.read_iterations()
    state = TrainingState.read(run_record.paths.checkpoint)

    # Resume's restore under the strategy: weights and optimizer state come back.
    dist = Distribution.from_config(config)
    step = config.STEP_SCHEDULE
    with dist.scope():  # as Trainer.resuming does it
        fresh = dispatch_build_model(8, config)
        compile_model(fresh, config, IterationStepDecay(0.1, step["boundaries"], step["factor"]))
        restore(fresh, run_record.paths.checkpoint, state)
    final = dispatch_build_model(8, config)
    final.load_weights(run_record.paths.checkpoint / state.weights)
    restored_ok = all(bool((a == b).all()) for a, b in zip(fresh.get_weights(), final.get_weights()))

    # Validation 3 and test 2 images (the replica count); 97 training images, whose
    # last batch of 1 sits out each epoch: every count with a remainder under 2.
    small_config, small, small_seen = run("small", DISTRIBUTE="mirrored", EPOCHS_COUNT=1, **{
        "DATASET.synthetic_train_count": 100, "DATASET.validation_count": 3, "DATASET.synthetic_test_count": 2})
    _, odd, _ = run("odd", DISTRIBUTE="mirrored", BATCH_SIZE=33)  # refused before the model is built
    return {
        "one_device": {"mirrored": _one_device_evaluation(config, result), "small": _one_device_evaluation(
            small_config, small)},
        "small": asdict(small), "small_seen": small_seen,
        "result": saved, "seen": seen, "rows": [r.iteration for r in rows],
        "epochs": [r.epoch for r in run_record.read_epochs()],
        "status": run_record.info().status, "state_iteration": state.iteration,
        "restored_ok": restored_ok, "restored_iterations": int(fresh.optimizer.iterations.numpy()),
        "odd": asdict(odd),
    }


def _one_device_evaluation(config: Config, result) -> dict:
    """The run's own figures next to a plain single-device ``evaluate`` of its final model."""
    import keras

    from resnet_tui.data.load import dispatch_load_dataset
    from resnet_tui.data.pipeline import make_eval_dataset
    from resnet_tui.store.runs import RunStore
    from resnet_tui.training.confusion import confusion_matrix

    run = RunStore.from_values(config.values).open_run(result.run_id)
    model = keras.models.load_model(run.paths.model / "final.keras")  # no strategy scope: one device
    data = dispatch_load_dataset(8, config)
    test = model.evaluate(make_eval_dataset(data.x_test, data.y_test, data, 32), verbose=0, return_dict=True)
    predicted = model.predict(make_eval_dataset(data.x_test, data.y_test, data, 32), verbose=0).argmax(axis=1)
    val = model.evaluate(make_eval_dataset(data.x_val, data.y_val, data, 32), verbose=0, return_dict=True)
    last = run.read_epochs()[-1]
    return {"counts": [len(data.y_train), len(data.y_val), len(data.y_test)], "status": result.status,
            "error": result.error, "run_test": [result.test_loss, result.test_accuracy],
            "one_device_test": [test["loss"], test["accuracy"]],
            "run_val": [last.val_loss, last.val_accuracy], "one_device_val": [val["loss"], val["accuracy"]],
            "run_matrix": (result.confusion or {}).get("matrix"),
            "one_device_matrix": confusion_matrix(data.y_test, predicted).tolist()}


@pytest.mark.slow
@pytest.mark.parametrize("name, counts", [("mirrored", [96, 19, 17]), ("small", [97, 3, 2])])
def test_mirrored_evaluation_equals_one_device_for_any_count(two_cpu_results, name, counts):
    """Validation and test counts 19, 17, 3 and 2 (= the replicas) on 2 replicas: the run
    completes, and its figures, confusion matrix included, are a single-device evaluation's
    of the same weights."""
    out = two_cpu_results["runs"]["one_device"][name]
    assert out["status"] == "completed", out["error"]
    assert out["counts"] == counts
    assert out["run_test"] == pytest.approx(out["one_device_test"], rel=1e-5, abs=1e-6)
    assert out["run_val"] == pytest.approx(out["one_device_val"], rel=1e-5, abs=1e-6)
    # The confusion matrix counts the real test images only, never the zero-weight pads (17 -> 18, 2 -> 2).
    assert np.asarray(out["run_matrix"]).sum() == counts[2]
    assert out["run_matrix"] == out["one_device_matrix"]


@pytest.mark.slow
def test_a_last_batch_under_the_replica_count_sits_out(two_cpu_results):
    small, seen = two_cpu_results["runs"]["small"], two_cpu_results["runs"]["small_seen"]
    assert (seen["train_count"], seen["steps_per_epoch"]) == (97, 3)
    assert seen["iterations"] == [1, 2, 3] and small["iterations"] == 3
    assert any("each epoch trains on 96 of the 97 images" in t for t in seen["logs"] if t.startswith("warning"))


@pytest.mark.slow
def test_tiny_mirrored_run_on_two_cpus_keeps_a_full_record(two_cpu_results):
    out = two_cpu_results["runs"]
    result, seen = out["result"], out["seen"]
    assert result["status"] == "completed", result.get("error")
    assert result["stop_reason"] == "epoch limit (2 epochs)"
    assert result["distribute"] == {"strategy": "mirrored", "replicas": 2,
                                    "devices": ["/device:CPU:0", "/device:CPU:1"], "sync_batch_norm": True}
    for key in ("test_accuracy", "test_loss", "best_val_accuracy", "param_count", "duration", "dataset"):
        assert result[key] is not None, key
    steps = seen["steps_per_epoch"]
    # One event and one iterations.csv row per global iteration, not per replica.
    assert (seen["train_count"], steps) == (96, 3)  # global batches of 32
    assert seen["iterations"] == list(range(1, 2 * steps + 1)) == out["rows"]
    assert result["iterations"] == 2 * steps == out["state_iteration"]
    assert out["epochs"] == [1, 2] and out["status"] == "completed"
    assert any("2 replicas on /device:CPU:0, /device:CPU:1" in t and "(16 per replica)" in t for t in seen["logs"])
    assert out["restored_ok"] and out["restored_iterations"] == 2 * steps
    assert not [t for t in seen["logs"] if t.startswith("warning")], seen["logs"]

    odd = out["odd"]
    assert odd["status"] == "failed"
    assert "BATCH_SIZE 33 does not split evenly across 2 replicas" in odd["error"]
