"""The Performance keys (JIT_COMPILE, MIXED_PRECISION, STEPS_PER_EXECUTION) and the
step log that keeps every iteration's exact values when Keras runs several steps
per call."""

import keras
import numpy as np
import pytest
from conftest import tiny_values
from support import Collect

from resnet_tui.config import FIELDS, ConfigError, config_from_values
from resnet_tui.events import EpochEnd, IterationEnd, RunFinished
from resnet_tui.models.resnet import dispatch_build_model
from resnet_tui.store.runs import RunStore
from resnet_tui.training.callbacks import StreamingCallback, TrainingControl
from resnet_tui.training.compile import compile_model
from resnet_tui.training.steplog import StepLog
from resnet_tui.training.trainer import Trainer


# -- config -----------------------------------------------------------------------
def test_performance_keys_have_safe_defaults_and_are_checked(tmp_path):
    config = config_from_values(tiny_values(tmp_path), "m8_x")
    assert (config.JIT_COMPILE, config.MIXED_PRECISION, config.STEPS_PER_EXECUTION) == (False, "float32", 1)
    for key in ("JIT_COMPILE", "MIXED_PRECISION", "STEPS_PER_EXECUTION"):
        assert FIELDS[key].group == "Performance" and FIELDS[key].help
    with pytest.raises(ConfigError, match="STEPS_PER_EXECUTION: got 0, expected an integer >= 1"):
        config_from_values(tiny_values(tmp_path, STEPS_PER_EXECUTION=0), "m8_x")
    with pytest.raises(ConfigError, match='MIXED_PRECISION: got "float16", expected one of "float32"'):
        config_from_values(tiny_values(tmp_path, MIXED_PRECISION="float16"), "m8_x")


def test_keys_reach_the_model(tmp_path):
    config = config_from_values(tiny_values(tmp_path, JIT_COMPILE=True, STEPS_PER_EXECUTION=4,
                                            MIXED_PRECISION="mixed_bfloat16"), "m8_x")
    model = dispatch_build_model(8, config)
    assert keras.config.dtype_policy().name == "float32"  # the build's policy did not leak
    conv, classifier = model.get_layer("stem_conv"), model.get_layer("classifier")
    assert (conv.compute_dtype, conv.variable_dtype) == ("bfloat16", "float32")
    assert classifier.compute_dtype == "float32" and model.outputs[0].dtype == "float32"  # softmax in float32
    compile_model(model, config, 0.1)
    assert model.jit_compile is True and model.steps_per_execution == 4
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)  # bfloat16 needs no scaling

    fp16 = config.with_values({"MIXED_PRECISION": "mixed_float16", "JIT_COMPILE": False})
    model = dispatch_build_model(8, fp16)
    compile_model(model, fp16, 0.1)
    assert model.get_layer("stem_conv").compute_dtype == "float16"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)  # Keras wraps it for mixed_float16
    assert model.jit_compile is False


# -- steps_per_execution: every iteration, exact ------------------------------------
def _hand_checked_fit(steps_per_execution: int):
    """lr 0 keeps the weights fixed, so each batch's loss can be computed by hand."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 8)).astype("float32")
    y = rng.integers(0, 3, size=70)
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.0), keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"],
                  steps_per_execution=steps_per_execution)
    events = Collect()
    calls = []

    class CountCalls(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            calls.append(batch)

    callback = StreamingCallback(events, lr_at=lambda i: 0.5 ** i, control=TrainingControl())
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, callbacks=[callback, CountCalls()], verbose=0)
    probs = model.predict(x, verbose=0).astype("float64")
    return events, calls, -np.log(probs[np.arange(70), y]), (probs.argmax(axis=1) == y).astype("float64")


def test_steps_per_execution_still_streams_every_iteration_exactly():
    # 70 images in batches of 8: 9 steps per epoch, run as executions of 4, 4 and 1.
    events, calls, sample_loss, sample_hit = _hand_checked_fit(4)
    assert len(calls) == 6  # Keras called back 3 times per epoch...
    iterations = events.of(IterationEnd)
    assert [e.iteration for e in iterations] == list(range(1, 19))  # ...and every iteration has its event
    assert [e.epoch for e in iterations] == [1] * 9 + [2] * 9
    bounds = [(lo, min(lo + 8, 70)) for lo in range(0, 70, 8)] * 2
    for event, (lo, hi) in zip(iterations, bounds):
        assert event.loss == pytest.approx(sample_loss[lo:hi].mean(), abs=1e-5)
        assert event.accuracy == pytest.approx(sample_hit[lo:hi].mean(), abs=1e-6)
        assert event.epoch_loss == pytest.approx(sample_loss[:hi].mean(), abs=1e-5)
        assert event.epoch_accuracy == pytest.approx(sample_hit[:hi].mean(), abs=1e-6)
        assert event.lr == 0.5 ** (event.iteration - 1)  # the schedule's value for each update
    assert [e.elapsed for e in iterations] == sorted(e.elapsed for e in iterations)
    assert all(e.images_per_sec > 0 for e in iterations)
    assert events.of(EpochEnd)[0].loss == pytest.approx(sample_loss.mean(), abs=1e-5)

    one, calls_one, _, _ = _hand_checked_fit(1)
    assert len(calls_one) == 18
    for a, b in zip(one.of(IterationEnd), iterations):
        assert (a.iteration, a.epoch, a.lr) == (b.iteration, b.epoch, b.lr)
        assert (a.loss, a.accuracy, a.epoch_loss, a.epoch_accuracy) == pytest.approx(
            (b.loss, b.accuracy, b.epoch_loss, b.epoch_accuracy), abs=1e-6)


def test_step_log_installs_once_and_grows_with_steps_per_execution():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"], steps_per_execution=2)
    log = StepLog.attach(model)
    assert StepLog.attach(model) is log and log.capacity == 2
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"], steps_per_execution=3)
    bigger = StepLog.attach(model)
    assert bigger is not log and bigger.capacity == 3
    assert not any("steplog" in w.path for w in model.weights)  # not saved with the model


# -- the trainer with STEPS_PER_EXECUTION -------------------------------------------
def _run(tiny_config, **changes):
    events = Collect()
    config = tiny_config(**changes)
    result = Trainer(config, sink=events).run()
    assert result.status == "completed", result.error
    return config, result, events


def test_trainer_records_the_same_iterations_with_steps_per_execution(tiny_config):
    # 200 synthetic images: 160 train (+40 val), batch 32: 5 steps per epoch, executions of 4 and 1.
    same = {"DATASET.synthetic_train_count": 200, "EPOCHS_COUNT": 2}
    _, _, base = _run(tiny_config, **same)
    config, result, grouped = _run(tiny_config, STEPS_PER_EXECUTION=4, **same)
    a, b = base.of(IterationEnd), grouped.of(IterationEnd)
    assert [e.iteration for e in b] == list(range(1, 11)) == [e.iteration for e in a]
    assert [e.epoch for e in b] == [1] * 5 + [2] * 5
    assert [e.lr for e in b] == [e.lr for e in a]  # boundaries [4, 8] fall inside executions
    # Same seed, same steps: the same training, iteration by iteration.
    assert [e.loss for e in b] == pytest.approx([e.loss for e in a], rel=1e-4, abs=1e-5)
    assert [e.accuracy for e in b] == pytest.approx([e.accuracy for e in a], abs=1e-6)
    assert [e.val_accuracy for e in grouped.of(EpochEnd)] == pytest.approx(
        [e.val_accuracy for e in base.of(EpochEnd)], abs=1e-6)

    run = RunStore.from_values(config.values).open_run(result.run_id)
    rows = run.read_iterations()
    assert [r.iteration for r in rows] == list(range(1, 11)) and result.iterations == 10
    assert [float(r.loss) for r in rows] == pytest.approx([e.loss for e in b], rel=1e-6)


def test_iteration_cap_with_steps_per_execution(tiny_config):
    # Executions end at iterations 4, 5 | 9, 10: a cap of 9 is exact, a cap of 6 is checked at 9.
    same = {"DATASET.synthetic_train_count": 200, "EPOCHS_COUNT": 5, "STEPS_PER_EXECUTION": 4}
    _, result, events = _run(tiny_config, MAX_ITERATIONS=9, **same)
    assert result.iterations == 9 and result.stop_reason == "iteration cap (9 iterations)"
    assert [e.iteration for e in events.of(IterationEnd)] == list(range(1, 10))

    config, result, events = _run(tiny_config, MAX_ITERATIONS=6, **same)
    assert result.iterations == 9
    assert result.stop_reason == ("iteration cap (6 iterations); reached at 9: "
                                     "STEPS_PER_EXECUTION 4 checks once per execution")
    assert [e.iteration for e in events.of(IterationEnd)] == list(range(1, 10))  # all recorded
    rows = RunStore.from_values(config.values).open_run(result.run_id).read_iterations()
    assert [r.iteration for r in rows] == list(range(1, 10))
    assert events.of(RunFinished)[0].iterations == 9
