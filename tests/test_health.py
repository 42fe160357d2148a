"""A run that says when it is sick: the health rules over plain events, their record in result.json,
and alerts delivered to a webhook (a real HTTP receiver on 127.0.0.1) by apprise."""

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from conftest import tiny_values
from support import write_config
from test_resume import FaultAfter, poison_weights

from resnet_tui.alerts import AlertSettingsError, Notifier
from resnet_tui.cli import main
from resnet_tui.events import EpochEnd, IterationEnd, RunFinished, RunStarted, RunStatus
from resnet_tui.health import Alert, Diverging, HealthWatch, LearningRateOff, Overfitting, Stalled
from resnet_tui.store.runs import RunStore
from resnet_tui.training.trainer import Trainer


def it(i: int, loss: float) -> IterationEnd:
    return IterationEnd(i, 1, loss, 0.1, 0.1, 100.0, loss, 0.1, float(i))


def epoch(e: int, loss: float, val_loss: float | None = None) -> EpochEnd:
    return EpochEnd(e, 10 * e, loss, 0.5, val_loss, 0.5, 0.1, 1.0, float(e))


def started() -> RunStarted:
    return RunStarted("r1", "m1_x", {}, "", 1, 10, 100, 10, 32, 320, 64, 64)


def test_a_non_finite_loss_is_diverging_at_once_and_said_once():
    rule = Diverging()
    assert rule.see(it(1, 2.3)) is None
    alert = rule.see(it(2, math.nan))
    assert (alert.kind, alert.iteration, alert.severity) == ("diverging", 2, "error")
    assert rule.see(it(3, math.nan)) is None


def test_a_loss_far_above_its_lowest_for_a_while_is_diverging():
    rule = Diverging(factor=3.0, patience=20, warmup=10)
    said = [rule.see(it(i, 1.0)) for i in range(1, 61)] + [rule.see(it(i, 10.0)) for i in range(61, 120)]
    alerts = [a for a in said if a]
    assert len(alerts) == 1 and alerts[0].kind == "diverging" and 80 <= alerts[0].iteration < 100


def test_no_iteration_for_ten_step_times_is_a_stall_said_once_until_it_moves_again():
    now = [0.0]
    rule = Stalled(times=10, floor=1.0, clock=lambda: now[0])
    rule.see(started())
    for i in range(1, 6):
        now[0] = i * 0.2
        rule.see(it(i, 2.0))
    assert rule.tick(now[0] + 0.9) is None  # under the 1 s floor (10 x 0.2 s = 2 s is the limit)
    alert = rule.tick(now[0] + 2.5)
    assert alert.kind == "stalled" and "since iteration 5" in alert.message
    assert rule.tick(now[0] + 10) is None  # said once
    now[0] += 11
    rule.see(it(6, 2.0))
    assert rule.tick(now[0] + 0.1) is None  # moving again
    rule.see(RunFinished("r1", RunStatus.COMPLETED, "", 6, 1, 2.0))
    assert rule.tick(now[0] + 100) is None  # an ended run does not stall


@pytest.mark.parametrize("losses, flat", [([2.30, 2.29, 2.28], True), ([2.3, 1.9, 1.6], False)])
def test_a_flat_loss_over_the_first_epochs_points_at_the_learning_rate(losses, flat):
    rule = LearningRateOff(epochs=3)
    said = [rule.see(epoch(e, loss)) for e, loss in enumerate(losses, start=1)]
    assert (said[-1] is not None) == flat and not any(said[:-1])
    if flat:
        assert said[-1].kind == "learning_rate" and "range test" in said[-1].message


def test_a_loss_above_its_start_after_the_first_epochs_says_the_rate_is_too_high():
    """lr 10 on the demo config: the loss spikes to 60 in epoch 1, so epoch 3's mean (3.9) is well
    below epoch 1's, but it is still above an untrained model's 2.4."""
    rule = LearningRateOff(epochs=3)
    assert rule.see(it(1, 2.4)) is None
    said = [rule.see(epoch(e, loss)) for e, loss in enumerate([12.0, 4.6, 3.9], start=1)]
    assert said[:2] == [None, None] and said[2].kind == "learning_rate"
    assert "likely too high" in said[2].message and "2.400 -> 3.900" in said[2].message


def test_a_loss_a_little_above_its_first_batch_is_flat_not_too_high():
    """One batch's loss is noisy: lr 1e-6 on the tiny model ended 3 epochs at 2.412 after a first
    batch of 2.343. That is a flat loss, not a rate too high."""
    rule = LearningRateOff(epochs=3)
    rule.see(it(1, 2.343))
    said = [rule.see(epoch(e, loss)) for e, loss in enumerate([2.415, 2.414, 2.412], start=1)]
    assert "flat" in said[2].message


def test_validation_loss_rising_while_training_loss_falls_is_overfitting():
    rule = Overfitting(epochs=3)
    said = [rule.see(epoch(e, train, val)) for e, (train, val) in
            enumerate([(1.0, 1.1), (0.8, 0.9), (0.6, 0.95), (0.5, 1.0), (0.4, 1.1)], start=1)]
    assert [bool(a) for a in said] == [False, False, False, False, True]
    assert said[-1].kind == "overfitting"


def test_the_health_line_names_the_worst_and_ended_runs_say_their_figures():
    watch = HealthWatch()
    assert watch.line().startswith("health: no problem seen")
    watch.see(it(1, math.nan))
    assert watch.line().startswith("health: diverging: loss is nan at iteration 1")
    ended = watch.see(RunFinished("r1", RunStatus.FAILED, "diverged", 8, 1, 3.0, best_val_accuracy=0.25))
    assert ended == [Alert("failed", "failed: diverged (8 iterations, 1 epochs, best val acc 25.00%)", 8, "error")]


def test_the_health_line_puts_a_divergence_before_a_warning_said_earlier():
    """lr 10 with momentum 0.999 on the demo config: 'learning rate too high' at iteration 75, then
    diverging at 124; the line is cut at 160 columns, so the error leads."""
    watch = HealthWatch()
    watch.see(it(1, 2.7))
    for e, loss in enumerate([12.0, 30.0, 40.4], start=1):
        watch.see(epoch(e, loss))
    watch.see(it(80, math.inf))
    assert watch.line().startswith("health: diverging: loss is inf at iteration 80 · learning_rate: loss above")


def test_a_run_keeps_what_its_health_rules_said_in_its_result(tiny_config):
    config = tiny_config(EPOCHS_COUNT=3)
    result = Trainer(config, extra_callbacks=[FaultAfter(5, poison_weights)]).run()
    record = RunStore.from_values(config.values).open_run(result.run_id).read_result()
    assert result.status == "failed"
    assert record["health"][0]["kind"] == "diverging" and record["health"][0]["iteration"] == 6


def health_said(config) -> list[str]:
    """The kinds of what the health rules said about a real run of ``config``, from its result.json."""
    result = Trainer(config).run()
    return [alert["kind"] for alert in RunStore.from_values(config.values).open_run(result.run_id).read_result()["health"]]


def test_a_rate_too_low_to_move_the_tiny_model_is_said(tiny_config):
    """lr 1e-6: three epochs of a flat loss (seeds 1-3 measured: 2.41-2.42 each epoch)."""
    assert health_said(tiny_config(EPOCHS_COUNT=3, **{"OPTIMIZER.learning_rate": 1e-6})) == ["learning_rate"]


@pytest.mark.slow
def test_the_tiny_model_memorizing_96_images_is_overfitting(tiny_config):
    """No augmentation, 96 training images, 30 epochs: its validation loss rose from epoch 2 to
    about 13 while the training loss fell (seed 1; seed 3 too; seed 2 generalized instead)."""
    config = tiny_config("m1_over", SEED=1, EPOCHS_COUNT=30, AUGMENT_MODE=False,
                         **{"DATASET.synthetic_train_count": 96, "STEP_SCHEDULE.enabled": False})
    assert "overfitting" in health_said(config)


def test_a_training_step_that_hangs_is_a_stall(tiny_config):
    """The tiny model hangs 4 s at the end of its 3rd step, before the step is reported (a hung
    input pipeline): the watch says stalled, naming the last iteration reported."""
    watch = HealthWatch(rules=[Stalled(times=10, floor=1.5)])  # 60 s at the least, as shipped: too slow here
    trainer = Trainer(tiny_config(EPOCHS_COUNT=1), sink=watch, extra_callbacks=[FaultAfter(3, lambda model: time.sleep(4))])
    thread = threading.Thread(target=trainer.run)
    thread.start()
    said = []
    while thread.is_alive():
        said += watch.tick()
        time.sleep(0.1)
    # (any: a first compile slower than the 10 s allowed before a step time is known may be said too)
    assert any(a.kind == "stalled" and "since iteration 2" in a.message for a in said), said


class Receiver:
    """A webhook on 127.0.0.1: every POST body it gets, as JSON."""

    def __init__(self):
        bodies = self.bodies = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver():
    hook = Receiver()
    yield hook
    hook.server.shutdown()


def test_an_alert_reaches_a_webhook_and_a_dead_one_is_logged_not_raised(receiver, tmp_path):
    notifier = Notifier([receiver.url, "json://127.0.0.1:9/nobody"])
    notifier.send(Alert("diverging", "loss is nan at iteration 6", 6, "error"), "20260101-m1", "m1_x").join(30)
    assert len(receiver.bodies) == 1
    assert receiver.bodies[0]["title"] == "resnet-tui: m1_x diverging"
    assert receiver.bodies[0]["message"] == "run 20260101-m1 (m1_x): loss is nan at iteration 6"
    assert receiver.bodies[0]["type"] == "failure"
    assert notifier.failures  # the dead URL, in words; nothing raised
    quiet = Notifier([receiver.url], kinds=("failed",))
    assert quiet.send(Alert("completed", "done", 8, "information"), "r", "c") is None  # not a kind asked for


def test_a_headless_run_sends_its_end_to_the_users_webhook(receiver, tmp_path, monkeypatch, capsys):
    settings = tmp_path / "alerts.json"
    settings.write_text(json.dumps({"urls": [receiver.url]}))
    monkeypatch.setenv("RESNET_TUI_ALERTS", str(settings))
    assert main(["train", str(write_config(tmp_path, "m1_alert", tiny_values(tmp_path)))]) == 0
    assert [b["title"] for b in receiver.bodies] == ["resnet-tui: m1_alert completed"]
    run_id = RunStore.under(tmp_path / "artifact").run_ids()[0]
    assert receiver.bodies[0]["message"].startswith(f"run {run_id} (m1_alert): completed: epoch limit (2 epochs) (8 "
                                                   f"iterations, 2 epochs, best val acc ")


def test_a_broken_alert_settings_file_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    settings = tmp_path / "alerts.json"
    settings.write_text('{"urls": ["json://x"],\n "kinds": ["failed", "sick"]}')
    with pytest.raises(AlertSettingsError, match=r"kinds: unknown sick; allowed: "):
        Notifier.from_settings(settings)
    settings.write_text('{"urls": [,]}')
    monkeypatch.setenv("RESNET_TUI_ALERTS", str(settings))
    assert main(["train", str(write_config(tmp_path, "m1_alert", tiny_values(tmp_path)))]) == 2
    assert f"{settings}: invalid JSON at line 1, column 11" in capsys.readouterr().err
