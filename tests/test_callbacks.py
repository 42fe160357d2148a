"""One rule per callback: each one's hooks called by hand, with fake logs, on a tiny model."""

from __future__ import annotations

import json
import threading

import keras
import numpy as np
import pytest

from resnet_tui.training.callbacks import (
    IterationCap,
    IterationCounter,
    StopRequested,
    StreamingCallback,
    TerminateOnNonFinite,
    TrainingControl,
    UserControl,
    stop_rules,
)
from resnet_tui.training.checkpoint import StateCheckpoint

NAN, INF = float("nan"), float("inf")


def tiny_model(steps_per_execution: int = 1) -> keras.Model:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"],
                  steps_per_execution=steps_per_execution)
    model.stop_training = False
    return model


def attached(callback: keras.callbacks.Callback, model: keras.Model | None = None) -> keras.callbacks.Callback:
    callback.set_model(model or tiny_model())
    return callback


# -- TerminateOnNonFinite ----------------------------------------------------------
def test_a_finite_loss_goes_on():
    rule = attached(TerminateOnNonFinite(IterationCounter(5)))
    rule.on_train_batch_end(0, {"loss": 2.3})
    assert not rule.model.stop_training and not rule.diverged()
    assert rule.non_finite_at is None and rule.stop_reason is None


@pytest.mark.parametrize("loss, shown", [(NAN, "nan"), (INF, "inf"), (-INF, "-inf")])
def test_a_non_finite_loss_stops_at_its_iteration(loss, shown):
    counter = IterationCounter(5)
    rule = attached(TerminateOnNonFinite(counter))
    rule.on_train_batch_end(0, {"loss": loss})
    assert rule.model.stop_training and rule.diverged()
    assert rule.non_finite_at == 5
    assert rule.stop_reason == f"non-finite loss ({shown}) at iteration 5"


def test_the_first_non_finite_iteration_of_an_execution_is_the_one_named():
    counter = IterationCounter(8)
    counter.first_non_finite = 6  # the streaming callback saw it in the step log's rows
    rule = attached(TerminateOnNonFinite(counter))
    rule.on_train_batch_end(0, {"loss": NAN})
    assert rule.non_finite_at == 6 and rule.stop_reason == "non-finite loss (nan) at iteration 6"


# -- IterationCap -------------------------------------------------------------------
def test_the_cap_stops_at_max_iterations():
    counter = IterationCounter(6)
    rule = attached(IterationCap(7, counter))
    rule.on_train_batch_end(0, {"loss": 1.0})
    assert not rule.model.stop_training and rule.stop_reason is None
    counter.iteration = 7
    rule.on_train_batch_end(1, {"loss": 1.0})
    assert rule.model.stop_training and rule.stop_reason == "iteration cap (7 iterations)"


def test_the_cap_says_when_an_execution_overshot_it():
    rule = attached(IterationCap(6, IterationCounter(9)), tiny_model(steps_per_execution=4))
    rule.on_train_batch_end(0, {"loss": 1.0})
    assert rule.model.stop_training
    assert rule.stop_reason == ("iteration cap (6 iterations); reached at 9: "
                                "STEPS_PER_EXECUTION 4 checks once per execution")


def test_no_cap_when_max_iterations_is_zero():
    rule = attached(IterationCap(0, IterationCounter(10**6)))
    rule.on_train_batch_end(0, {"loss": 1.0})
    assert not rule.model.stop_training and rule.stop_reason is None


# -- UserControl ----------------------------------------------------------------------
def user_control(steps_per_epoch: int = 3, iteration: int = 0, steps_per_execution: int = 1,
                 diverged=lambda: False) -> tuple[UserControl, TrainingControl, IterationCounter]:
    control, counter = TrainingControl(), IterationCounter(iteration)
    rule = attached(UserControl(control, steps_per_epoch, counter, diverged=diverged),
                    tiny_model(steps_per_execution))
    rule.on_train_begin()
    return rule, control, counter


def test_a_stop_before_training_ends_it_before_its_first_step():
    control, counter = TrainingControl(), IterationCounter(4)
    rule = attached(UserControl(control, 3, counter))
    assert control.stop() is None  # fit has not begun
    rule.on_train_begin()
    with pytest.raises(StopRequested):
        rule.on_epoch_begin(1)
    assert rule.stop_reason == "stopped by user at iteration 4" and not rule.stopped_mid_epoch


def test_a_stop_mid_epoch_leaves_fit_at_the_end_of_the_step():
    rule, control, counter = user_control()
    rule.on_epoch_begin(0)
    assert control.stop() == 1  # the step under way is the one training ends at
    counter.iteration = 1
    with pytest.raises(StopRequested):
        rule.on_train_batch_end(0, {"loss": 1.0})
    assert rule.stop_reason == "stopped by user at iteration 1" and rule.stopped_mid_epoch


def test_a_stop_at_an_epochs_last_step_lets_the_epoch_end_whole():
    rule, control, counter = user_control(steps_per_epoch=3, iteration=3)
    rule.on_epoch_begin(1)
    counter.iteration = 5
    rule.on_train_batch_end(1, {"loss": 1.0})
    assert control.stop() == 6
    counter.iteration = 6
    rule.on_train_batch_end(2, {"loss": 1.0})
    assert rule.model.stop_training and not rule.stopped_mid_epoch
    assert rule.stop_reason == "stopped by user at iteration 6"


def test_a_stop_counts_from_the_execution_under_way():
    rule, control, _ = user_control(steps_per_epoch=10, steps_per_execution=4)
    rule.on_epoch_begin(0)
    assert control.stop() == 4


def test_a_stop_during_validation_takes_effect_at_the_epoch_end():
    rule, control, counter = user_control()
    rule.on_epoch_begin(0)
    for step in range(3):
        counter.iteration = step + 1
        rule.on_train_batch_end(step, {"loss": 1.0})
    assert control.stop() == 3  # no step under way: it ends where it is
    rule.on_epoch_end(0, {"loss": 1.0})
    assert rule.model.stop_training and rule.stop_reason == "stopped by user at iteration 3"


def test_a_stop_after_another_rule_ended_the_fit_names_that_iteration():
    rule, control, counter = user_control(steps_per_epoch=10)
    rule.on_epoch_begin(0)
    counter.iteration = 2
    rule.model.stop_training = True  # e.g. the iteration cap, placed before this rule
    rule.on_train_batch_end(1, {"loss": 1.0})
    assert control.stop() == 2 and rule.stop_reason is None


def test_a_diverged_fit_ignores_stop_and_pause():
    diverged = [False]
    rule, control, counter = user_control(diverged=lambda: diverged[0])
    rule.on_epoch_begin(0)
    control.stop()
    diverged[0] = True
    counter.iteration = 1
    rule.on_train_batch_end(0, {"loss": NAN})  # no StopRequested: the non-finite loss ends it
    rule.on_epoch_end(0, {"loss": NAN})
    assert rule.stop_reason is None and not rule.stopped_mid_epoch


def test_a_paused_fit_waits_between_steps_until_resumed():
    rule, control, counter = user_control()
    rule.on_epoch_begin(0)
    control.pause()
    counter.iteration = 1
    done = threading.Event()
    worker = threading.Thread(target=lambda: (rule.on_train_batch_end(0, {"loss": 1.0}), done.set()))
    worker.start()
    assert not done.wait(0.2)  # held at the step's end
    control.resume()
    worker.join(5)
    assert done.is_set() and control.paused_total >= 0.15 and rule.stop_reason is None


# -- the rules in a real fit ------------------------------------------------------------
def test_the_rules_share_the_streaming_callbacks_exact_count():
    """Executions of 4 steps; the 6th batch holds a NaN: the logs say so at iteration 8, the rule names 6."""
    x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
    x[22] = np.nan  # batch 6 of 4 images
    y = np.zeros(40, dtype="int64")
    model = tiny_model(steps_per_execution=4)
    control, counter = TrainingControl(), IterationCounter()
    rules = stop_rules(control, counter, max_iterations=0, steps_per_epoch=10)
    streaming = StreamingCallback(lambda event: None, None, control, counter)
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[streaming, *rules])
    non_finite, cap, user = rules
    assert counter.first_non_finite == 6 and counter.iteration == 8
    assert non_finite.non_finite_at == 6 and non_finite.stop_reason == "non-finite loss (nan) at iteration 6"
    assert cap.stop_reason is None and user.stop_reason is None
    assert counter.completed_epochs == 1  # the epoch ended (stop_training), not left


# -- StateCheckpoint --------------------------------------------------------------------
def test_the_state_checkpoint_saves_the_counters_iteration_unless_told_to_skip(tmp_path):
    counter, skip = IterationCounter(12), [True]
    checkpoint = attached(StateCheckpoint(tmp_path, counter, elapsed=lambda: 7.5, skip_save=lambda: skip[0]))
    checkpoint.on_epoch_end(3, {"val_accuracy": 0.5})
    assert not any(tmp_path.iterdir()) and checkpoint.saved is None and checkpoint.best_val_accuracy is None
    skip[0] = False
    checkpoint.on_epoch_end(3, {"val_accuracy": 0.5})
    state = json.loads((tmp_path / "state.json").read_text())
    assert (state["epoch"], state["iteration"], state["elapsed"]) == (4, 12, 7.5)
    assert (state["best_val_accuracy"], state["best_epoch"]) == (0.5, 4)
    assert (tmp_path / state["weights"]).is_file() and checkpoint.saved.iteration == 12



# -- BestWeights ---------------------------------------------------------------------
def test_best_weights_are_replaced_whole_and_only_by_a_better_epoch(tmp_path):
    """Keras' ModelCheckpoint rewrote best.weights.h5 in place: a kill during the write left a torn
    file and no best at all (issue 22, item 18). A save that dies half-way leaves the previous best."""
    from resnet_tui.training.checkpoint import BestWeights

    path = tmp_path / "best.weights.h5"
    best = attached(BestWeights(path, best=0.40))
    best.on_epoch_end(0, {"val_accuracy": 0.30})  # under the resumed run's best: nothing written
    assert not path.exists()
    best.on_epoch_end(1, {"val_accuracy": 0.50})
    saved = path.read_bytes()
    best.on_epoch_end(2, {"val_accuracy": NAN})
    best.on_epoch_end(3, {"val_accuracy": 0.50})  # not better
    assert path.read_bytes() == saved and best.best == 0.50

    real_save = best.model.save_weights

    def dies_half_way(filepath, **kwargs):
        real_save(filepath, **kwargs)
        with open(filepath, "r+b") as fh:
            fh.truncate(96)  # what a kill mid-write leaves
        raise KeyboardInterrupt  # the process goes down here

    best.model.save_weights = dies_half_way
    with pytest.raises(KeyboardInterrupt):
        best.on_epoch_end(4, {"val_accuracy": 0.90})
    assert path.read_bytes() == saved and [p.name for p in tmp_path.iterdir()] == [path.name]
