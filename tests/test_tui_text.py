"""Dashboard: text from users and their files is shown as typed, never read as markup."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

from textual.widgets import TextArea
from tui_support import make_app, screen_text, select_config, tiny_values, toast_texts, wait_for, write_configs, write_fake_run

from resnet_tui.store.runs import RunStore
from resnet_tui.tui.widgets.runs_table import RunsTable

SIZE = (200, 60)


async def test_names_ids_values_and_errors_with_brackets_show_as_typed(tmp_path):
    values = tiny_values(tmp_path, DATA_PATH="data/[b]x")
    # Deep enough that the file's path alone would fill the status line.
    configs = write_configs(tmp_path.joinpath(*["a-folder-with-a-long-name"] * 6, "[b]configs"), values,
                            name="m8_[test]")
    (configs / "m8_latin1.json").write_bytes(b'{"_c":"caf\xe9"}')
    store = RunStore.from_values(values)
    write_fake_run(store, "20250101-120000-m8_[test]", values, status="completed", iterations=30)
    write_fake_run(store, "20250102-120000-m8_[bad]", values, status="failed", iterations=7, started=1735819200.0,
                   error="ValueError: a [/] in [red]the error")
    app = make_app(SimpleNamespace(configs=configs, store=store))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.pause()
        screen = app.get_screen("config")
        assert "m8_[test]" in screen_text(app)  # in the config list

        await select_config(pilot, "m8_latin1")  # not UTF-8: its problem, not a crash
        assert "problem: …/[b]configs/m8_latin1.json: not UTF-8 text: byte 0xe9 at offset 10" in screen_text(app)

        await select_config(pilot, "m8_[test]")
        await pilot.press("ctrl+t", "ctrl+t")  # Form -> Changes -> JSON
        await pilot.pause()
        editor = screen.query_one("#config-json", TextArea)
        raw = json.loads(editor.text)
        raw["OPTIMIZER"]["type"] = "[/]"
        editor.load_text(json.dumps(raw, indent=2))
        await pilot.pause()
        await pilot.pause()
        assert 'OPTIMIZER.type: got "[/]", expected one of' in screen_text(app)

        await pilot.press("f4")
        table = app.screen.query_one(RunsTable)
        await wait_for(pilot, lambda: table.row_count == 2 and app.screen.shown, 20, "the runs")
        await pilot.pause()
        shown = screen_text(app)
        assert re.search(r"20250101-120000-m8_\[test\] +completed.* m8_\[test\] ", shown), shown
        table.focus()
        await pilot.press("down")
        await wait_for(pilot, lambda: app.screen.shown[0].info.run_id.endswith("[test]"), 10, "the run's details")
        await pilot.pause()
        assert re.search(r"run +20250101-120000-m8_\[test\]", screen_text(app))  # the brief beside the charts
        await pilot.press("r")  # resume a completed run: refused, naming it
        await wait_for(pilot, lambda: toast_texts(app), 5, "a toast")
        assert any("20250101-120000-m8_[test] already completed" in t for t in toast_texts(app)), toast_texts(app)

        tabs = app.screen.query_one("#run-tabs")
        tabs.active = "tab-run-config"
        await pilot.pause()
        app.screen.query_one("#run-config").parent.scroll_end(animate=False)  # the path keys come last
        await pilot.pause()
        assert '"data/[b]x"' in screen_text(app)
        await pilot.press("space", "up", "space")  # mark both: their configs compared, headed by their ids
        tabs.active = "tab-compare"
        await wait_for(pilot, lambda: len(app.screen.shown) == 2, 10, "both runs' details")
        await pilot.pause()
        assert "20250101-120000-m8_[test]" in screen_text(app) and "20250102-120000-m8_[bad]" in screen_text(app)
        await pilot.press("space")  # unmark the failed run: its error, as recorded
        tabs.active = "tab-error"
        await wait_for(pilot, lambda: len(app.screen.shown) == 1, 10, "one run's details")
        await pilot.pause()
        assert "ValueError: a [/] in [red]the error" in screen_text(app)
