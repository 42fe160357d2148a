"""Issue 12, section 6: every screen usable at 80x24 (and the footer whole at 160x50)."""

from __future__ import annotations

import pytest
from textual.widgets import Footer
from tui_support import make_app, open_runs, toast_texts, wait_for

from resnet_tui.tui.widgets.metric_chart import MetricChart

SMALL, LARGE = (80, 24), (160, 50)


def footer_keys(app) -> dict[str, bool]:
    """Each key the footer shows, as it reads ("F5 Start") -> whether all of it is inside the terminal.
    The keys are the footer's children of CSS type ``FooterKey`` (the name Textual's docs style
    them by): textual.widgets exports Footer, not its keys' class."""
    footer = app.screen.query_one(Footer)
    width = app.size.width
    return {key.render().plain.strip(): key.region.right <= width for key in footer.query("FooterKey")
            if key.region.width}


async def on_each_screen(pilot):
    """Configs, Training, Runs in turn; yields each screen's name once it is shown."""
    for key, name in (("f2", "Configs"), ("f3", "Training"), ("f4", "Runs")):
        await pilot.press(key)
        await pilot.pause()
        await pilot.pause()
        yield name


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x50"])
async def test_every_footer_keeps_the_training_keys_whole(tui_fake_runs, size):
    """F1 and F5/F6/F7 and ^q are in every footer, never cut; the screen's own keys that don't
    fit are left out whole, not cut in the middle (F1 lists them)."""
    app = make_app(tui_fake_runs)
    async with app.run_test(size=size) as pilot:
        async for name in on_each_screen(pilot):
            keys = footer_keys(app)
            for key in ("F1 Help", "F5 Start", "F6 Pause", "F7 Stop", "^q Quit"):
                assert keys.get(key), f"{name} at {size}: {key} missing or cut in {keys}"
            assert all(keys.values()), f"{name} at {size}: a key is cut: {keys}"
            if size == LARGE and name == "Runs":
                assert {"w Watch", "r Resume", "space Mark"} <= set(keys), keys  # room for the screen's keys


async def test_runs_table_shows_id_status_and_best_accuracy_at_80_columns(tui_fake_runs):
    app = make_app(tui_fake_runs)
    async with app.run_test(size=SMALL) as pilot:
        _, table = await open_runs(pilot)
        keys = [column.key.value for column in table.ordered_columns]
        assert keys[:3] == ["run", "status", "best_val"], keys
        shown = sum(column.get_render_width(table) for column in table.ordered_columns[:3])
        assert shown <= table.scrollable_content_region.width, (shown, table.size)
        assert table.scroll_x == 0


async def test_charts_get_the_rows_of_a_short_terminal(tui_fake_runs):
    """At 24 rows, loss and accuracy share the chart area side by side (at least 12 rows each)
    on Training and Runs; the learning rate waits for a taller terminal."""
    app = make_app(tui_fake_runs)
    async with app.run_test(size=SMALL) as pilot:
        await open_runs(pilot)
        charts = {c.id: c for c in app.screen.query(MetricChart)}
        assert charts["chart-loss"].size.height >= 12 and charts["chart-accuracy"].size.height >= 12
        assert not charts["chart-lr"].display
        await pilot.press("f3")
        await pilot.pause()
        charts = {c.id: c for c in app.screen.query(MetricChart)}
        assert charts["chart-loss"].size.height >= 12, charts["chart-loss"].size
    async with make_app(tui_fake_runs).run_test(size=LARGE) as pilot:  # a tall one keeps all three
        await pilot.press("f3")
        await pilot.pause()
        assert all(chart.display and chart.size.height >= 10 for chart in pilot.app.screen.query(MetricChart))


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x50"])
async def test_toasts_do_not_cover_the_charts(tui_fake_runs, size):
    app = make_app(tui_fake_runs)
    async with app.run_test(size=size, notifications=True) as pilot:
        await pilot.press("f3")
        await pilot.press("f6")  # no run: "No run is training." as a toast
        await wait_for(pilot, lambda: toast_texts(app), 5, "a toast")
        await pilot.pause()
        toasts = [toast.region for toast in app.screen.query("Toast")]  # by CSS type name: see toast_texts
        for chart in app.screen.query(MetricChart):
            if chart.display:
                assert not any(toast.overlaps(chart.region) for toast in toasts), (toasts, chart.id, chart.region)


async def test_the_config_list_has_the_keys_at_start(tui_env):
    """Launch, Down: the next config is on screen (the list has the focus, not the form)."""
    app = make_app(tui_env)
    async with app.run_test(size=SMALL) as pilot:
        screen = app.get_screen("config")
        await wait_for(pilot, lambda: screen.name_loaded is not None, 10, "the first config")
        first = screen.name_loaded
        await pilot.press("down")
        await wait_for(pilot, lambda: screen.name_loaded != first, 10, "the next config")
        assert screen.sub_title == screen.name_loaded == [p.name[:-5] for p in screen.paths][1]
        await pilot.press("f4", "f2", "down")  # and again after a visit to another screen
        await wait_for(pilot, lambda: screen.name_loaded == [p.name[:-5] for p in screen.paths][2], 10, "the third")


async def test_a_run_that_fails_to_start_says_why_under_the_progress_line(tui_env):
    """The toast goes away and a short terminal has no log: the reason stays on screen, after
    a path longer than its two lines (cut to its last parts)."""
    import json

    values = dict(tui_env.values)
    values["DATASET"] = dict(values["DATASET"], source="npz")
    values["DATA_PATH"] = str(tui_env.root.joinpath(*["a-folder-with-a-long-name"] * 8, "no-such.npz"))
    (tui_env.configs / "m8_broken.json").write_text(json.dumps(values))
    app = make_app(tui_env)
    async with app.run_test(size=SMALL) as pilot:
        screen = app.get_screen("config")
        await wait_for(pilot, lambda: screen.name_loaded is not None, 10, "the first config")
        while screen.name_loaded != "m8_broken":
            await pilot.press("down")
            await pilot.pause()
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.session is not None and not app.session.active, 120, "the run to fail")
        await pilot.pause()
        numbers = str(app.screen.query_one("#numbers").render())
        assert "…/a-folder-with-a-long-name/no-such.npz does not exist" in numbers.replace("\n", " "), numbers
