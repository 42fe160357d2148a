"""Dashboard: the runs browser over hand-written runs (sort, filter, half-written, failed, overlay, compare)."""

from __future__ import annotations

import re

import pytest
from tui_support import make_app, open_runs, text_of, wait_for

from resnet_tui.tui.widgets.metric_chart import MetricChart
from resnet_tui.tui.widgets.runs_table import RunsTable

SIZE = (160, 50)


def ids(table: RunsTable) -> list[str]:
    return [row.value for row in table.rows]


async def test_every_run_is_listed_with_its_status(tui_fake_runs):
    app = make_app(tui_fake_runs)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_runs(pilot)
        statuses = {i.run_id: i.status for i in table.infos}
        assert statuses == {"20250101-120000-m8_demo": "completed", "20250102-090000-m8_light": "failed",
                            "20250103-080000-m8_demo": "interrupted", "20250104-100000-m8_lr05": "completed"}
        assert ids(table)[0] == "20250104-100000-m8_lr05"  # newest first
        row = {key: str(table.get_cell("20250101-120000-m8_demo", key))
               for key in ("epochs", "iterations", "best_val", "test")}
        assert row == {"epochs": "3", "iterations": "30", "best_val": "64.54%", "test": "55.00%"}


async def test_a_listing_drawn_at_once_still_shows_every_id_whole(tui_fake_runs):
    """A frame drawn between the first listing and the table's next idle moment (a busy machine)
    kept every column at its header's width ("2" for each id) until the cursor moved (Textual
    issue #4470); seen in tmux and in a snapshot on a loaded machine."""
    from textual.app import App

    class OneTable(App):
        CSS = "RunsTable { height: 8; }"  # as on the Runs screen: rows arriving do not resize it

        def compose(self):
            yield RunsTable()

    app = OneTable()
    async with app.run_test(size=(160, 12)) as pilot:
        table = app.query_one(RunsTable)
        table.set_runs(tui_fake_runs.store.list_runs())
        table.render_lines(table.region.reset_offset)  # drawn at once, before the table is idle again
        await pilot.pause()
        await pilot.pause()
        shown = "\n".join(strip.text for strip in table.render_lines(table.region.reset_offset))
        assert all(run_id in shown for run_id in ids(table)), shown


async def test_sort_by_key_and_by_header_click(tui_fake_runs):
    app = make_app(tui_fake_runs)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_runs(pilot)
        await pilot.press("s")  # date -> run id, ascending
        assert table.sort_key == "run" and ids(table) == sorted(ids(table))
        assert "sorted by run ▲" in text_of(screen.query_one("#runs-sort"))
        await pilot.press("s")  # -> status, the next column
        assert table.sort_key == "status"
        table.post_message(RunsTable.HeaderSelected(table, table.columns["test"].key, 6, table.columns["test"].label))
        await pilot.pause()
        assert table.sort_key == "test"
        assert ids(table)[0] == "20250104-100000-m8_lr05"  # best test accuracy first; runs without one last
        assert ids(table)[-1] in ("20250102-090000-m8_light", "20250103-080000-m8_demo")


async def test_filter(tui_fake_runs):
    app = make_app(tui_fake_runs)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_runs(pilot)
        await pilot.press("slash", *"fail")
        assert ids(table) == ["20250102-090000-m8_light"]
        assert "1/4 runs" in text_of(screen.query_one("#runs-sort"))
        await pilot.press("enter")  # back to the table
        assert table.has_focus

        # Marked runs stay marked and compared when the filter hides them; Esc clears the filter.
        await pilot.press("space")  # the failed run
        await pilot.press("slash", *"m8_", "escape")
        await pilot.pause()
        assert screen.query_one("#runs-filter").value == "" and len(ids(table)) == 4 and table.has_focus
        table.move_cursor(row=0)
        await pilot.press("space")
        await pilot.press("slash", *"090000", "enter")
        assert len(ids(table)) == 1 and "2 marked" in text_of(screen.query_one("#runs-sort"))
        assert len(screen.selected_ids()) == 2  # what the header counts is what Compare compares


async def test_failed_run_shows_its_error_and_half_written_run_its_problem(tui_fake_runs):
    app = make_app(tui_fake_runs)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_runs(pilot)
        table.move_cursor(row=ids(table).index("20250102-090000-m8_light"))
        await wait_for(pilot, lambda: screen.shown[0].info.run_id == "20250102-090000-m8_light", 10, "the failed run")
        assert "the loss became NaN" in text_of(screen.query_one("#run-error"))
        assert "failed" in text_of(screen.query_one("#run-result"))

        table.move_cursor(row=ids(table).index("20250103-080000-m8_demo"))
        await wait_for(pilot, lambda: screen.shown[0].info.run_id == "20250103-080000-m8_demo", 10, "the half run")
        result = text_of(screen.query_one("#run-result"))
        assert "interrupted" in result and "ended without writing a result" in result
        loss = screen.query_one("#run-charts #chart-loss", MetricChart)
        await wait_for(pilot, lambda: loss.plotted.get("train", 0) > 0, 10, "its curves so far")


async def test_marked_runs_are_overlaid_and_their_configs_compared(tui_fake_runs):
    app = make_app(tui_fake_runs)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_runs(pilot)
        table.move_cursor(row=ids(table).index("20250101-120000-m8_demo"))
        await pilot.press("space")
        table.move_cursor(row=ids(table).index("20250104-100000-m8_lr05"))
        await pilot.press("space")
        await wait_for(pilot, lambda: len(screen.shown) == 2, 10, "two runs shown")
        loss = screen.query_one("#run-charts #chart-loss", MetricChart)
        await wait_for(pilot, lambda: len(loss.plotted) == 4, 10, "two runs overlaid")
        assert {"20250101-120000-m8_demo train", "20250104-100000-m8_lr05 val"} <= set(loss.plotted)
        compare = text_of(screen.query_one("#run-compare"))
        assert "BATCH_SIZE" in compare and "OPTIMIZER.learning_rate" in compare
        assert "EPOCHS_COUNT" not in compare  # only the differences
        # Per-class test accuracy side by side, in the table's order (newest first: cats 77% and 69%
        # in fake_confusion), with the second's difference from the first.
        assert re.search(r"Per-class test accuracy.*20250104-100000-m8_lr05.*20250101-120000-m8_demo.*Δ", compare, re.S)
        assert re.search(r"│ cat +│ +77\.00% │ +69\.00% │ +-8\.0% │", compare), compare
        assert "2 marked" in text_of(screen.query_one("#runs-sort"))

        await pilot.press("c")
        await wait_for(pilot, lambda: len(screen.shown) == 1, 10, "back to one run")


async def test_a_finished_run_shows_where_it_fails(tui_fake_runs):
    """The Classes tab: the test confusion matrix from result.json, per-class accuracy, the worst pairs."""
    app = make_app(tui_fake_runs)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_runs(pilot)
        assert screen.shown[0].info.run_id == "20250104-100000-m8_lr05"
        classes = text_of(screen.query_one("#run-classes"))
        assert "Test split, 1,000 images, accuracy 81.50% (end of training)" in classes
        rows = {line.split()[0]: line.split()[1:] for line in classes.splitlines() if line.split()}
        assert rows["cat"] == ["·", "2", "·", "77", "1", "16", "1", "1", "1", "1", "77.0%"]
        assert "most confused: airplane → bird 23% (23 of 100) · automobile → truck 20% (20 of 100) · " \
               "bird → deer 18% (18 of 100)" in classes

        table.move_cursor(row=ids(table).index("20250102-090000-m8_light"))  # failed: no matrix
        await wait_for(pilot, lambda: screen.shown[0].info.run_id == "20250102-090000-m8_light", 10, "the failed run")
        assert "No confusion matrix" in text_of(screen.query_one("#run-classes"))


async def test_chart_options_apply_to_the_runs_charts(tui_fake_runs):
    app = make_app(tui_fake_runs)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_runs(pilot)
        loss = screen.query_one("#run-charts #chart-loss", MetricChart)
        await wait_for(pilot, lambda: loss.plotted, 10, "the curves")
        assert app.chart_options.smoothing == 0.6 and "#0" in loss.plotted  # raw points behind the smoothed line
        await pilot.press("l")
        await pilot.pause()
        assert loss.log_y
        await pilot.press("a")
        await pilot.pause()
        assert loss.xlabel == "epoch"
        await pilot.press("left_curly_bracket", "left_curly_bracket", "left_curly_bracket")
        await pilot.pause()
        assert app.chart_options.smoothing == 0.0 and "#0" not in loss.plotted


async def test_zoom_pan_log_x_and_images_seen_move_every_chart_of_the_screen(tui_fake_runs):
    """+ - [ ] 0 zoom and pan the x range of the three charts together, x puts it on a log scale,
    a cycles what x counts (the run shown first: 40 iterations of 64 images)."""
    app = make_app(tui_fake_runs)
    async with app.run_test(size=SIZE) as pilot:
        screen, _ = await open_runs(pilot)
        charts = [screen.query_one(f"#run-charts #chart-{name}", MetricChart) for name in ("loss", "accuracy", "lr")]
        loss = charts[0]
        await wait_for(pilot, lambda: loss.plotted, 10, "the curves")
        assert loss.ticks["x"][-1] == "40"
        await pilot.press("plus", "plus")
        await pilot.pause()
        assert [chart.x_range for chart in charts] == [(15.0, 25.0)] * 3  # the middle quarter, on every chart
        xs = loss.drawn["train"][0]
        assert 15 <= xs.min() and xs.max() <= 25 and len(xs) == 11  # only the points inside are drawn
        await pilot.press(*["right_square_bracket"] * 6)
        await pilot.pause()
        assert [chart.x_range for chart in charts] == [(30.0, 40.0)] * 3  # panned to the end, and no further
        await pilot.press("0")
        await pilot.pause()
        assert [chart.x_range for chart in charts] == [(0.0, 40.0)] * 3
        await pilot.press("x")
        await pilot.pause()
        assert "log x" in loss.header and loss.ticks["x"] == ["1", "10"]
        await pilot.press("a", "a", "a")
        await pilot.pause()
        assert loss.xlabel == "images seen" and loss.ticks["x"] == ["100", "1k"]  # 64 to 2,560 images
        await pilot.press("x")
        await pilot.pause()
        assert loss.ticks["x"][-1] == "2.5k" and loss.header.strip().split("  ")[0] == "loss vs images seen"


@pytest.mark.parametrize("key", ["w", "enter"])
async def test_watch_a_run_that_another_process_trains(tui_fake_runs, key):
    """A headless run (say on a GPU box) is followed from its files: live charts, no controls.
    ``w`` watches it, and so does enter on a running run."""
    import json

    from tui_support import MessageLog, write_fake_run

    from resnet_tui.tui.messages import WatchRequested
    from resnet_tui.tui.screens.dialogs import ConfirmScreen
    from resnet_tui.tui.screens.train_screen import TrainScreen

    store, run_id = tui_fake_runs.store, "20250105-100000-m8_remote"
    write_fake_run(store, run_id, tui_fake_runs.values, status=None, iterations=15, started=1736071200.0)
    run = store.open_run(run_id)
    run.acquire_lock()  # "another process": the lock's owner is alive, so the run is running
    (run.paths.log / "plan.json").write_text(json.dumps(
        {"steps_per_epoch": 10, "total_iterations": 40, "param_count": 274042, "train_count": 320}))
    app = make_app(tui_fake_runs)
    log = MessageLog()
    async with app.run_test(size=SIZE, message_hook=log) as pilot:
        await pilot.press("f4")
        table = app.screen.query_one(RunsTable)
        await wait_for(pilot, lambda: table.row_count == 5, 20, "the runs")
        assert {i.run_id: i.status for i in table.infos}[run_id] == "running"
        table.focus()
        table.move_cursor(row=ids(table).index(run_id))
        await pilot.press(key)
        await pilot.pause()
        (request,) = log.of(WatchRequested)  # the screen asks, the app follows
        assert (request.store, request.run_id) == (store, run_id)
        assert isinstance(app.screen, TrainScreen)
        session = app.session
        assert session.following
        await wait_for(pilot, lambda: len(session.history.iterations) == 15, 10, "the rows written so far")
        assert "watching" in str(app.screen.query_one("#progress-line").content)
        assert app.screen.query_one("#stop").disabled

        with open(run.paths.log / "iterations.csv", "a") as fh:  # the trainer goes on elsewhere
            for i in range(16, 26):
                fh.write(f"{i},2,0.5,0.8,0.01,1000,0.5,0.8,{0.5 * i}\n")
        await wait_for(pilot, lambda: len(session.history.iterations) == 25, 10, "the new rows")

        notes = log.notifications
        await pilot.press("f7")
        assert any("can only be watched" in msg for _, msg in notes) and session.state == "running"

        await pilot.press("f5")  # starting another run while watching one asks first
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and "which another process is training" in str(
            app.screen.query_one(".dialog-question").content)
        await pilot.press("n")
        await pilot.pause()
        assert app.session is session and session.following and isinstance(app.screen, TrainScreen)

        write_fake_run(store, run_id, tui_fake_runs.values, status="completed", iterations=25, started=1736071200.0)
        run.release_lock()
        await wait_for(pilot, lambda: session.state == "completed", 10, "the end of the run")
        await pilot.press("ctrl+q")  # nothing of ours is training: no question
        await pilot.pause()
        assert not app.is_running


async def test_resume_a_stopped_run_from_the_runs_browser(tui_env):
    """r on a stopped run continues it under the same id; its earlier curve is drawn too."""
    from resnet_tui.config import config_from_values
    from resnet_tui.events import IterationEnd
    from resnet_tui.training.trainer import Trainer

    config = config_from_values(dict(tui_env.values, EPOCHS_COUNT=3), "tiny")
    trainer = Trainer(config, store=tui_env.store,  # stopped at the first step of epoch 2
                      sink=lambda e: isinstance(e, IterationEnd) and e.epoch == 2 and trainer.stop())
    stopped = trainer.run()
    assert stopped.status == "stopped"
    app = make_app(tui_env)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        table = pilot.app.screen.query_one(RunsTable)
        await wait_for(pilot, lambda: table.row_count == 1, 20, "the stopped run")
        table.focus()
        await pilot.press("r")
        session = pilot.app.session
        assert session is not None and session.resume_run_id == stopped.run_id
        await wait_for(pilot, lambda: session.state == "completed", 240, "the resumed run to finish")
        steps = session.started.steps_per_epoch
        assert stopped.iterations == steps + 1  # stopped in epoch 2: resumed from the end of epoch 1
        assert session.started.run_id == stopped.run_id and session.started.start_iteration == steps
        total = session.started.total_iterations
        assert list(session.history.iterations["iteration"]) == list(range(1, total + 1))  # old curve + new, no gap
    run = tui_env.store.open_run(stopped.run_id)
    assert run.info().status == "completed"
    assert [r.iteration for r in run.read_iterations()] == list(range(1, total + 1))


def tree_state(root) -> dict:
    """Every file under root with its size and contents' hash: what 'nothing was written' means."""
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


async def test_read_only_dashboard_browses_and_never_writes(tui_fake_runs):
    """--read-only (or a runs folder it cannot write): runs are listed and shown; start, resume, save refused."""
    from tui_support import MessageLog

    from resnet_tui.tui.app import ResnetTuiApp
    from resnet_tui.tui.messages import ResumeRequested, StartRequested

    before = tree_state(tui_fake_runs.root)
    app = ResnetTuiApp(tui_fake_runs.configs, store=tui_fake_runs.store, read_only=True)
    log = MessageLog()
    async with app.run_test(size=SIZE, message_hook=log) as pilot:
        notes = log.notifications
        assert app.screen.title == "Configs · read-only"
        await pilot.press("f5")  # dimmed in the footer: nothing happens
        await pilot.pause()
        assert app.session is None
        await pilot.click("#start")  # the form's Start button says why
        await pilot.pause()
        assert app.session is None
        await pilot.press("ctrl+s")
        await pilot.pause()
        screen, table = await open_runs(pilot)
        table.move_cursor(row=ids(table).index("20250103-080000-m8_demo"))  # interrupted: resumable
        await pilot.press("r")
        await pilot.pause()
        assert app.session is None
        refused = [msg for _, msg in notes if msg.startswith("Read-only dashboard")]
        assert len(refused) == 3, notes
        assert len(log.of(StartRequested)) == 1  # the button asked (the dimmed F5 did not); the app refused
        assert [r.run_id for r in log.of(ResumeRequested)] == ["20250103-080000-m8_demo"]
        assert any("start training" in m for m in refused) and any("resume" in m for m in refused)
        assert len(ids(table)) == 4 and screen.shown  # browsing works as usual
    assert tree_state(tui_fake_runs.root) == before


def test_unwritable_runs_folder_is_detected(tmp_path):
    from resnet_tui.tui.app import not_writable

    assert not_writable(tmp_path / "new" / "log") is None  # created, then writable
    (tmp_path / "a-file").write_text("x")
    assert not_writable(tmp_path / "a-file" / "log")  # cannot exist: a file is in the way


async def test_a_run_with_a_damaged_file_is_listed_corrupt_with_the_reason(tui_fake_runs):
    from tui_support import MessageLog

    store, run_id = tui_fake_runs.store, "20250101-120000-m8_demo"
    (store.roots["result"] / run_id / "result.json").write_text('{"status": "completed", "started": "yesterday"}')
    problem = 'result.json: "started" should be a number, got "yesterday"'
    app = make_app(tui_fake_runs)
    log = MessageLog()
    async with app.run_test(size=SIZE, message_hook=log) as pilot:
        screen, table = await open_runs(pilot)
        info = {i.run_id: i for i in table.infos}[run_id]
        assert info.status == "corrupt" and info.problem == problem
        assert "corrupt" in str(table.get_cell(run_id, "status"))
        table.move_cursor(row=ids(table).index(run_id))
        await wait_for(pilot, lambda: screen.shown[0].info.run_id == run_id, 10, "the corrupt run")
        result = text_of(screen.query_one("#run-result"))
        assert "corrupt" in result and problem in result and result.count(problem) == 1
        notes = log.notifications
        await pilot.press("r", "w")
        assert ("error", f"Can't resume: run {run_id} is corrupt: {problem} "
                         f"({store.roots['result'] / run_id / 'result.json'})") in notes
        assert any(severity == "warning" and problem in msg for severity, msg in notes)


async def test_the_list_refreshes_itself_and_keeps_the_cursor_on_its_run(tui_fake_runs):
    """A run written by another process appears without a key; the highlighted run stays highlighted."""
    from tui_support import write_fake_run

    app = make_app(tui_fake_runs)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_runs(pilot)
        table.move_cursor(row=2)
        await pilot.pause()
        highlighted = table.current_run_id()
        write_fake_run(tui_fake_runs.store, "20991231-235959-m8_newest", tui_fake_runs.values, status="completed",
                       iterations=30, started=4102444799.0)  # the newest: listed first, above the cursor
        await wait_for(pilot, lambda: "20991231-235959-m8_newest" in ids(table), 10, "the new run, unasked")
        assert table.current_run_id() == highlighted  # the cursor followed its run, not its row number
        assert ids(table)[0] == "20991231-235959-m8_newest"


async def test_enter_on_a_finished_run_goes_to_its_details_and_esc_comes_back(tui_fake_runs):
    from textual.widgets import TabbedContent, Tabs

    app = make_app(tui_fake_runs)
    async with app.run_test(size=SIZE) as pilot:
        screen, table = await open_runs(pilot)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.focused, Tabs) and app.focused in screen.query_one("#run-tabs").query(Tabs)
        await pilot.press("right")  # Curves -> Result
        await pilot.pause()
        assert screen.query_one("#run-tabs", TabbedContent).active == "tab-result"
        await pilot.press("escape")
        await pilot.pause()
        assert app.focused is table
