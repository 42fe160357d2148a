"""Snapshots of the main screens with deterministic content (no clocks, no timings).

Update after an intended change with: pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

import time

import pytest
from textual.widgets import TabbedContent
from tui_support import make_app, open_runs, select_config, wait_for

from resnet_tui.tui.widgets.config_form import ConfigForm


@pytest.fixture
def utc(monkeypatch):
    """Run dates are shown in local time: pin it."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def settled(pilot) -> None:
    """Wait for the first config's validation (it runs after the first refresh)."""
    screen = pilot.app.get_screen("config")
    await wait_for(pilot, lambda: "valid" in str(screen.query_one("#config-status").content), 20, "validation")
    await pilot.pause()
    await pilot.pause()


SIZES = pytest.mark.parametrize("size", [(160, 50), (80, 24)], ids=["160x50", "80x24"])


@SIZES
def test_config_screen(tui_env, snap_compare, size):
    assert snap_compare(make_app(tui_env), terminal_size=size, run_before=settled)


def test_config_screen_with_an_invalid_value_small_terminal(tui_env, snap_compare):
    async def edit(pilot):
        await settled(pilot)
        await select_config(pilot, "m8_demo")
        form = pilot.app.get_screen("config").query_one(ConfigForm)
        editor = form.row("DATASET.source").editor
        editor.focus()
        await pilot.pause()
        form.row("BATCH_SIZE").editor.value = "0"
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(make_app(tui_env), terminal_size=(80, 24), run_before=edit)


@SIZES
def test_runs_screen(tui_fake_runs, snap_compare, utc, size):
    async def runs(pilot):
        await settled(pilot)
        await open_runs(pilot)

    assert snap_compare(make_app(tui_fake_runs), terminal_size=size, run_before=runs)


def test_runs_screen_confusion_matrix_at_80_columns(tui_fake_runs, snap_compare, utc):
    """A finished run's Classes tab: the test confusion matrix as a heatmap (fixed fake data)."""
    async def classes(pilot):
        await settled(pilot)
        screen, _ = await open_runs(pilot)
        screen.query_one(TabbedContent).active = "tab-classes"
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(make_app(tui_fake_runs), terminal_size=(80, 40), run_before=classes)


def pressing(key: str, first=settled):
    """A ``run_before``: ``first(pilot)``, then ``key``, then the repaint it causes."""
    async def run_before(pilot):
        await first(pilot)
        await pilot.press(key)
        await pilot.pause()
        await pilot.pause()

    return run_before


@SIZES
def test_help_overlay(tui_env, snap_compare, size):
    assert snap_compare(make_app(tui_env), terminal_size=size, run_before=pressing("f1"))


async def edit_batch_size(pilot) -> None:
    await settled(pilot)
    form = pilot.app.get_screen("config").query_one(ConfigForm)
    form.row("BATCH_SIZE").editor.value = "64"
    await pilot.pause()
    await pilot.pause()


@SIZES
def test_unsaved_edits_dialog(tui_env, snap_compare, size):
    """Ctrl+Q with an edited config: save as / discard / cancel."""
    assert snap_compare(make_app(tui_env), terminal_size=size, run_before=pressing("ctrl+q", edit_batch_size))


@SIZES
def test_save_as_dialog(tui_env, snap_compare, size, monkeypatch):
    """The dialog names the configs folder: a relative one, the same on every machine."""
    from resnet_tui.tui.app import ResnetTuiApp

    monkeypatch.chdir(tui_env.root)
    app = ResnetTuiApp(tui_env.configs.relative_to(tui_env.root), store=tui_env.store)
    assert snap_compare(app, terminal_size=size, run_before=pressing("ctrl+s", edit_batch_size))


@SIZES
def test_quit_while_training_dialog(tui_env, snap_compare, size):
    """Ctrl+Q while this dashboard trains: stop and quit, or keep training."""
    async def mid_run(pilot):
        await training_mid_run(pilot, tui_env)

    assert snap_compare(make_app(tui_env), terminal_size=size, run_before=pressing("ctrl+q", mid_run))


# -- charts (issue 12, section 2): the demo's val-loss outlier clipped, round ticks, legends ----

def demo_events():
    """The demo config two thirds through: 6 epochs of 15 steps, train loss near 2.3, the
    val loss 93.6 after epoch 1 (fixed numbers: no randomness, no clock)."""
    from resnet_tui.events import EpochEnd, GpuSample, IterationEnd, LogMessage, MachineSample, RunStarted

    steps, epochs, done = 15, 6, 60
    yield RunStarted("20250101-120000-m8_demo", "tiny", {}, "Model: \"resnet20\"\n(summary)", 274_042, steps,
                     steps * epochs, epochs, 128, 2000, 500, 500, time=1735732800.0)
    for i in range(1, done + 1):
        wiggle = 0.04 * (((i * 7919) % 13) / 13 - 0.5)
        loss = 2.36 - 0.004 * i + wiggle
        accuracy = 0.1 + 0.004 * i + wiggle / 4
        lr = 0.1 if i <= 45 else 0.01
        yield IterationEnd(i, (i - 1) // steps + 1, loss, accuracy, lr, 500.0, loss, accuracy, 0.8 * i)
        if i % steps == 0:
            k = i // steps
            yield EpochEnd(k, i, loss, accuracy, 93.6 if k == 1 else loss + 0.05, accuracy - 0.02, lr, 12.0, 0.8 * i)
    yield LogMessage("warning", "epoch 1: val loss 93.6 (the demo's synthetic data)")
    # The machine line, with a GPU (none here to sample): its fixed figures.
    yield MachineSample(1735732848.0, 187.0, 1_210_000_000, 9_100_000_000, 23_500_000_000,
                        (GpuSample(0, 97.0, 10_200_000_000, 80_000_000_000, 64.0),))


async def training_mid_run(pilot, env) -> None:
    from resnet_tui.config import config_from_values
    from resnet_tui.tui.session import TrainingSession

    await settled(pilot)
    app = pilot.app
    session = TrainingSession(config_from_values(env.values, "tiny"), env.store)
    session.state = "running"
    app.session = session  # as action_start does, without a training thread
    for event in demo_events():
        session.buffer(event)
    await pilot.press("f3")
    app.drain()
    await pilot.pause()
    # Once more now it is laid out: the progress bar rounds its percentage to its width
    # (to half cells) when it has one, and keeps it exact before.
    bar = app.screen.query_one("Bar")  # the ProgressBar's bar, by CSS type name: textual.widgets does not export it
    bar.percentage = bar.percentage
    app.screen.redraw_charts(force=True)
    await pilot.pause()
    await pilot.pause()


@SIZES
def test_training_screen_mid_run_with_the_demo_outlier(tui_env, snap_compare, size):
    async def mid_run(pilot):
        await training_mid_run(pilot, tui_env)

    assert snap_compare(make_app(tui_env), terminal_size=size, run_before=mid_run)


@SIZES
def test_runs_overlay(tui_fake_runs, snap_compare, utc, size):
    """Two marked runs overlaid: a colour each, train and val told apart by marker, the legend in
    the title line; the first run's epoch-1 val loss is the demo's 93.6, clipped to the top."""
    from tui_support import write_fake_run

    write_fake_run(tui_fake_runs.store, "20250101-120000-m8_demo", tui_fake_runs.values, status="completed",
                   iterations=30, first_val_loss=93.6)

    async def overlay(pilot):
        await settled(pilot)
        screen, table = await open_runs(pilot)
        for run_id in ("20250101-120000-m8_demo", "20250104-100000-m8_lr05"):
            table.move_cursor(row=[row.value for row in table.rows].index(run_id))
            await pilot.press("space")
        await wait_for(pilot, lambda: len(screen.shown) == 2, 10, "two runs overlaid")
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(make_app(tui_fake_runs), terminal_size=size, run_before=overlay)


@pytest.mark.parametrize("columns", [None, "40"])
async def test_the_log_wraps_at_its_own_width_whatever_columns_says(tui_env, monkeypatch, columns):
    """Rich sizes the app's console from $COLUMNS when it is set: the log must not fold its
    lines there (a stray COLUMNS=40 folded every line at 40 on a 78-column log)."""
    from tui_support import screen_text

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    app = make_app(tui_env)
    async with app.run_test(size=(160, 50)) as pilot:
        await training_mid_run(pilot, tui_env)
        shown = screen_text(app)
    assert "I epoch 1: loss 2.2923, acc 15.81%, val loss 93.6000, val acc 13.81%" in shown, shown


# -- issue 25: the range test's curve, and charts zoomed on a log x axis --------------------------

@SIZES
def test_lr_range_test_with_its_marks_and_cursor(tui_env, snap_compare, size, monkeypatch):
    """F9's picture for a fixed curve: the training behind it is tests/test_lr_finder.py's; here the
    points are set so the picture is the same on every CPU."""
    import numpy as np

    from resnet_tui.training import lr_finder

    def fixed_curve(config, *, iterations, cancel, curve):
        for lr in np.geomspace(1e-5, 3.0, 120):
            curve.add(float(lr), float(2.3 - 0.5 / (1 + (0.05 / lr) ** 1.5) + (lr / 1.5) ** 2))
        curve.stopped = "the loss diverged (4x its minimum)"
        return curve

    monkeypatch.setattr(lr_finder, "find_lr", fixed_curve)

    async def measured(pilot):
        await settled(pilot)
        await pilot.press("f9")
        await wait_for(pilot, lambda: getattr(pilot.app.screen, "ended", False), 10, "the fixed curve")
        await pilot.press("left", "left", "left")
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(make_app(tui_env), terminal_size=size, run_before=measured)


@SIZES
def test_runs_charts_zoomed_on_a_log_x_axis(tui_fake_runs, snap_compare, utc, size):
    """+ twice and ] once on the Runs screen, then x: the three charts show the same quarter of the
    run's iterations, on a log axis."""
    async def zoomed(pilot):
        await settled(pilot)
        screen, _ = await open_runs(pilot)
        await wait_for(pilot, lambda: screen.shown, 10, "the first run")
        await pilot.press("plus", "plus", "right_square_bracket", "x")
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(make_app(tui_fake_runs), terminal_size=size, run_before=zoomed)
