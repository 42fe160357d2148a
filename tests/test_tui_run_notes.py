"""Dashboard: a run's note and tags edited on the Runs screen (n, t), hidden (h, H) and deleted (d),
on hand-written runs; the filter finds notes and #tags; refusals for running runs and read-only."""

from __future__ import annotations

import json

from test_tui_runs import SIZE, ids, tree_state
from tui_support import MessageLog, make_app, open_runs, text_of, wait_for, write_fake_run

from resnet_tui.tui.screens.dialogs import ConfirmScreen, EditTextScreen

DEMO = "20250101-120000-m8_demo"
LR05 = "20250104-100000-m8_lr05"


def notes_file(env, run_id: str):
    return env.store.roots["log"] / run_id / "notes.json"


async def type_text(pilot, text: str) -> None:
    await pilot.press(*("space" if c == " " else c for c in text))


async def select(pilot, screen, table, run_id: str) -> None:
    table.move_cursor(row=ids(table).index(run_id))
    await wait_for(pilot, lambda: screen.shown and screen.shown[0].info.run_id == run_id, 10, run_id)


async def test_a_note_and_tags_are_edited_shown_and_found_by_the_filter(tui_fake_runs):
    app = make_app(tui_fake_runs)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_runs(pilot)
        await select(pilot, screen, table, DEMO)
        assert "tags" not in table.columns  # no run has tags yet

        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, EditTextScreen)
        await type_text(pilot, "first try, lr 0.1")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen
        assert json.loads(notes_file(tui_fake_runs, DEMO).read_text()) == {
            "note": "first try, lr 0.1", "tags": [], "hidden": False}
        await wait_for(pilot, lambda: "first try, lr 0.1" in text_of(screen.query_one("#run-result")), 10, "the note")

        await pilot.press("n")  # Esc cancels: nothing written
        await pilot.pause()
        assert app.screen.query_one("#edit-text").value == "first try, lr 0.1"
        await type_text(pilot, " and more")
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and json.loads(notes_file(tui_fake_runs, DEMO).read_text())["note"] == \
            "first try, lr 0.1"

        await pilot.press("t")
        await pilot.pause()
        await type_text(pilot, "base, bad tag!")
        await pilot.pause()
        assert "tag 'tag!'" in text_of(app.screen.query_one("#edit-error"))
        await pilot.press("enter")  # refused: the dialog stays
        await pilot.pause()
        assert isinstance(app.screen, EditTextScreen)
        await pilot.press(*["backspace"] * len("bad tag!"))
        await type_text(pilot, "paper")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen
        assert json.loads(notes_file(tui_fake_runs, DEMO).read_text())["tags"] == ["base", "paper"]
        assert str(table.get_cell(DEMO, "tags")) == "#base #paper"  # a tags column, as a run has tags
        assert str(table.get_cell(LR05, "tags")) == ""
        await wait_for(pilot, lambda: "#base #paper" in text_of(screen.query_one("#run-result")), 10, "the tags")

        for query, expected in (("#pap", [DEMO]), ("#nope", []), ("first try", [DEMO]), ("paper m8_demo", [DEMO]),
                                ("m8_demo", [DEMO, "20250103-080000-m8_demo"])):
            await pilot.press("slash")
            screen.query_one("#runs-filter").value = ""
            await type_text(pilot, query)
            await pilot.press("enter")
            await pilot.pause()
            assert sorted(ids(table)) == sorted(expected), query
        await pilot.press("escape")
        await pilot.pause()
        assert len(ids(table)) == 4


async def test_hide_leaves_a_run_out_until_H_shows_it_dimmed(tui_fake_runs):
    app = make_app(tui_fake_runs)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_runs(pilot)
        await select(pilot, screen, table, DEMO)
        await pilot.press("h")
        await pilot.pause()
        assert DEMO not in ids(table) and len(ids(table)) == 3
        assert json.loads(notes_file(tui_fake_runs, DEMO).read_text())["hidden"] is True
        assert "3/3 runs" in text_of(screen.query_one("#runs-sort"))
        assert "1 hidden (H shows)" in text_of(screen.query_one("#runs-sort"))
        await pilot.press("g")  # a fresh listing from the files keeps it out
        await wait_for(pilot, lambda: screen._signature is not None, 10, "the listing")
        assert DEMO not in ids(table)

        await pilot.press("H")
        await pilot.pause()
        assert DEMO in ids(table) and "1 hidden, dimmed (H)" in text_of(screen.query_one("#runs-sort"))
        assert "dim" in str(table.get_cell(DEMO, "status").style)
        assert "dim" not in str(table.get_cell(LR05, "status").style)
        await select(pilot, screen, table, DEMO)
        await pilot.press("h")  # h on a hidden run lists it again
        await pilot.pause()
        assert json.loads(notes_file(tui_fake_runs, DEMO).read_text())["hidden"] is False
        await pilot.press("H")
        await pilot.pause()
        assert DEMO in ids(table) and "dim" not in str(table.get_cell(DEMO, "status").style)


async def test_delete_asks_naming_the_folders_and_removes_only_them(tui_fake_runs):
    app = make_app(tui_fake_runs)
    root = tui_fake_runs.root / "artifact"
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_runs(pilot)
        await select(pilot, screen, table, "20250102-090000-m8_light")  # failed: config, log, result, error
        before = tree_state(root)
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        question = str(app.screen.query_one(".dialog-question").content)
        folders = [tui_fake_runs.store.roots[name] / "20250102-090000-m8_light"
                   for name in ("config", "log", "result", "error")]
        assert question.startswith("Delete run 20250102-090000-m8_light?\nThese 4 folders")
        assert all(str(folder) in question for folder in folders), question
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is screen and tree_state(root) == before

        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: "20250102-090000-m8_light" not in ids(table), 10, "the run to go")
        assert not any(folder.exists() for folder in folders)
        assert tree_state(root) == {p: d for p, d in before.items() if "20250102-090000-m8_light" not in p}
        await pilot.press("g")
        await wait_for(pilot, lambda: screen._signature is not None, 10, "the listing")
        assert len(ids(table)) == 3


async def test_a_running_run_is_noted_but_not_hidden_or_deleted_and_read_only_changes_nothing(tui_fake_runs):
    from resnet_tui.tui.app import ResnetTuiApp

    store, run_id = tui_fake_runs.store, "20250105-100000-m8_remote"
    write_fake_run(store, run_id, tui_fake_runs.values, status=None, iterations=15, started=1736071200.0)
    run = store.open_run(run_id)
    run.acquire_lock()  # "another process": the lock's owner is alive, so the run is running
    try:
        app = make_app(tui_fake_runs)
        log = MessageLog()
        async with app.run_test(size=SIZE, message_hook=log) as pilot:
            await pilot.press("f4")
            screen = app.screen
            table = screen.query_one("#runs-table")
            await wait_for(pilot, lambda: table.row_count == 5, 20, "the runs")
            table.focus()
            await select(pilot, screen, table, run_id)
            before = tree_state(tui_fake_runs.root)
            await pilot.press("h", "d")
            await pilot.pause()
            assert app.screen is screen and tree_state(tui_fake_runs.root) == before
            refused = [msg for _, msg in log.notifications if msg.startswith(f"{run_id} is running")]
            assert refused == [f"{run_id} is running: it cannot be {done} while it trains; stop it first."
                               for done in ("hidden", "deleted")]
            await pilot.press("t")  # its notes are the user's file, never the trainer's
            await pilot.pause()
            await type_text(pilot, "live")
            await pilot.press("enter")
            await pilot.pause()
            assert json.loads(notes_file(tui_fake_runs, run_id).read_text())["tags"] == ["live"]
    finally:
        run.release_lock()

    before = tree_state(tui_fake_runs.root)
    app = ResnetTuiApp(tui_fake_runs.configs, store=store, read_only=True)
    log = MessageLog()
    async with app.run_test(size=SIZE, message_hook=log) as pilot:
        await pilot.press("f4")
        screen = app.screen
        table = screen.query_one("#runs-table")
        await wait_for(pilot, lambda: table.row_count == 5 and screen.shown, 20, "the runs")
        table.focus()
        await pilot.press("n", "t", "h", "d")
        await pilot.pause()
        assert app.screen is screen
        refused = [msg for _, msg in log.notifications if msg.startswith("Read-only dashboard")]
        assert [m.split(":")[1].split(".")[0] for m in refused] == [
            " it does not edit notes", " it does not edit tags", " it does not hide runs", " it does not delete runs"]
    assert tree_state(tui_fake_runs.root) == before
