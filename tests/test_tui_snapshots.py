"""Snapshots of the main screens with deterministic content (no clocks, no timings).

Update after an intended change with: pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

import time

import pytest
from textual.widgets import TabbedContent
from tui_support import make_app, open_runs, select_config, tui_env, tui_fake_runs, wait_for  # noqa: F401

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


def test_config_screen(tui_env, snap_compare):
    assert snap_compare(make_app(tui_env), terminal_size=(160, 50), run_before=settled)


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


def test_runs_screen(tui_fake_runs, snap_compare, utc):
    async def runs(pilot):
        await settled(pilot)
        await open_runs(pilot)

    assert snap_compare(make_app(tui_fake_runs), terminal_size=(160, 50), run_before=runs)


def test_runs_screen_confusion_matrix_at_80_columns(tui_fake_runs, snap_compare, utc):
    """A finished run's Classes tab: the test confusion matrix as a heatmap (fixed fake data)."""
    async def classes(pilot):
        await settled(pilot)
        screen, _ = await open_runs(pilot)
        screen.query_one(TabbedContent).active = "tab-classes"
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(make_app(tui_fake_runs), terminal_size=(80, 40), run_before=classes)


def test_help_overlay(tui_env, snap_compare):
    async def help_(pilot):
        await settled(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(make_app(tui_env), terminal_size=(110, 45), run_before=help_)
