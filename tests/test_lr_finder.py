"""The learning-rate range test: an exponential sweep of the rate over real training steps of the
config's model, stopped when the loss diverges, with two suggestions; no run is recorded."""

import json

import numpy as np
import pytest
from conftest import tiny_values
from support import write_config

from resnet_tui.cli import main
from resnet_tui.config import config_from_values, learning_rate_key
from resnet_tui.store.runs import RunStore
from resnet_tui.training.lr_finder import LrCurve, find_lr


def test_the_range_test_climbs_exponentially_and_suggests_rates_inside_its_range(tmp_path):
    config = config_from_values(tiny_values(tmp_path), "m1_tiny")
    seen = []
    curve = find_lr(config, start=1e-4, end=1.0, iterations=24, on_point=lambda *point: seen.append(point))
    assert len(curve.lrs) == len(seen) == 24 and curve.stopped == ""
    np.testing.assert_allclose(curve.lrs, 1e-4 * (1e4 ** (np.arange(24) / 23)), rtol=1e-6)
    assert all(np.isfinite(curve.losses)) and all(np.isfinite(curve.smoothed))
    assert 1e-4 <= curve.steepest <= 1.0 and 1e-5 <= curve.minimum_tenth <= 0.1
    assert RunStore.from_values(config.values).run_ids() == []  # not a run


def test_a_diverging_loss_ends_the_test_early_and_says_where(tmp_path):
    config = config_from_values(tiny_values(tmp_path, BATCH_SIZE=64), "m1_tiny")
    curve = find_lr(config, start=1.0, end=1e7, iterations=60)
    assert curve.stopped.startswith("diverged at lr ") and len(curve.lrs) < 60


def test_the_smoothing_is_a_bias_corrected_moving_average():
    curve = LrCurve("x")
    for i, loss in enumerate([2.0, 2.0, 2.0, 1.0]):
        curve.add(10.0 ** i, loss)
    assert curve.smoothed[:3] == pytest.approx([2.0, 2.0, 2.0])  # a constant is its own average from the start
    assert 1.0 < curve.smoothed[3] < 2.0


@pytest.mark.parametrize("changes, key", [
    ({}, "OPTIMIZER.learning_rate"),
    ({"STEP_SCHEDULE.enabled": False, "ONE_CYCLE_SCHEDULE.enabled": True}, "ONE_CYCLE_SCHEDULE.peak_learning_rate"),
    ({"STEP_SCHEDULE.enabled": False, "COSINE_SCHEDULE.enabled": True, "COSINE_SCHEDULE.warmup_steps": 10},
     "COSINE_SCHEDULE.warmup_target"),
])
def test_the_chosen_rate_goes_where_the_schedule_reads_it(tmp_path, changes, key):
    assert learning_rate_key(config_from_values(tiny_values(tmp_path, **changes), "m1_x").values) == key


def test_lr_find_from_the_cli_prints_the_curve_and_the_key_to_set(tmp_path, capsys):
    path = write_config(tmp_path, "m1_lr", tiny_values(tmp_path))
    assert main(["lr-find", str(path), "--iterations", "20", "--start", "1e-4", "--end", "1"]) == 0
    out = capsys.readouterr().out
    assert "smoothed loss against learning rate" in out and "steepest descent:" in out
    assert "try it: --set OPTIMIZER.learning_rate=" in out
    records = list((tmp_path / "artifact" / "lr_find").glob("*-m1_lr.json"))
    assert len(records) == 1 and len(json.loads(records[0].read_text())["lrs"]) == 20
    assert RunStore.under(tmp_path / "artifact").run_ids() == []


async def test_f9_on_configs_finds_the_rate_and_enter_puts_it_in_the_form_unsaved(tui_env):
    from tui_support import make_app, select_config, text_of, wait_for

    from resnet_tui.tui.screens.lr_find_screen import LrFindScreen
    from resnet_tui.tui.widgets.config_form import ConfigForm

    app = make_app(tui_env)
    async with app.run_test(size=(120, 40)) as pilot:
        await select_config(pilot, "tiny")
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(app.screen, LrFindScreen), 10, "the range test to open")
        finder = app.screen
        await wait_for(pilot, lambda: finder.ended, 180, "the range test to end")
        await pilot.pause()
        assert len(finder.curve.lrs) > 10 and "steepest" in text_of(finder.query_one("#lr-status"))
        await pilot.press("s", "right", "right")  # the steepest descent, then two points on
        chosen = float(f"{finder.curve.lrs[finder.cursor]:.3g}")
        assert finder.curve.lrs[finder.cursor] > finder.curve.steepest
        await pilot.press("enter")
        await pilot.pause()
        configs = app.get_screen("config")
        assert app.screen is configs
        assert configs.query_one(ConfigForm).row("OPTIMIZER.learning_rate").get_value() == chosen
        assert configs.is_dirty() and "(edited)" in text_of(configs.query_one("#config-status"))
        assert tui_env.store.run_ids() == []  # the range test is not a run
