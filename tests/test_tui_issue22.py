"""Dashboard fixes of issue 22, item 6: what the screens say follows what is going on."""

from __future__ import annotations

import json

from tui_support import MessageLog, make_app, open_runs, screen_text, select_config, text_of, wait_for

from resnet_tui.config import config_from_values
from resnet_tui.events import IterationEnd, LogMessage, MachineEpoch, MachineSample, RunFinished, RunStarted, RunStatus
from resnet_tui.tui.screens.dialogs import SaveAsScreen
from resnet_tui.tui.session import SessionState, TrainingSession
from resnet_tui.tui.widgets.config_form import ConfigForm
from resnet_tui.tui.widgets.runs_table import RunsTable

SIZE = (160, 50)


def started(run_id: str = "20250105-100000-tiny", total: int = 12) -> RunStarted:
    return RunStarted(run_id=run_id, config_name="tiny", config={}, model_summary="(summary)", param_count=1000,
                      steps_per_epoch=6, total_iterations=total, epochs=2, batch_size=32, train_count=192,
                      val_count=64, test_count=64)


def session_here(env) -> TrainingSession:
    """A session as F5 makes it, without its thread: the test feeds its buffer as the trainer would."""
    return TrainingSession(config_from_values(env.values, "tiny"), env.store)


async def test_the_progress_line_says_what_the_trainer_does_before_the_first_iteration(tui_env):
    """j: F5 to the first iteration takes 15-20 s: loading, building, compiling, read from its events."""
    app = make_app(tui_env)
    async with app.run_test(size=SIZE) as pilot:
        session = app.session = session_here(tui_env)
        await pilot.press("f3")
        line = lambda: text_of(app.screen.query_one("#progress-line"))
        await wait_for(pilot, lambda: "loading TensorFlow and the data…" in line(), 10, "loading")
        session.buffer(LogMessage("info", "Synthetic (seed 42): 192 train / 64 val / 64 test"))
        await wait_for(pilot, lambda: "building the model…" in line(), 10, "building the model")
        session.buffer(started())
        await wait_for(pilot, lambda: "compiling…" in line(), 10, "compiling")
        assert "running" in line() and "12" in line()
        session.buffer(IterationEnd(1, 1, 2.3, 0.1, 0.1, 100.0, 2.3, 0.1, 5.0))
        await wait_for(pilot, lambda: "iteration 1 / 12" in line(), 10, "the first iteration")
        assert "compiling" not in line()


async def test_the_resume_button_shows_its_key(tui_env):
    """f: paused, the button reads "Resume F6" whole (it kept "Pause F6"'s width: "Resume")."""
    app = make_app(tui_env)
    async with app.run_test(size=SIZE) as pilot:
        session = app.session = session_here(tui_env)
        await pilot.press("f3")
        await pilot.press("f6")
        await pilot.pause()
        await pilot.pause()
        assert session.state == SessionState.PAUSED
        controls = screen_text(app).splitlines()[1]
        assert "Resume F6" in controls, controls


async def test_resuming_the_run_trained_here_says_it_is_trained_here(tui_fake_runs):
    """g: ``r`` on the run this dashboard trains: not "stop it before resuming another"."""
    app = make_app(tui_fake_runs)
    log = MessageLog()
    async with app.run_test(size=SIZE, message_hook=log) as pilot:
        run_id = "20250103-080000-m8_demo"  # the interrupted one, as if resumed here
        session = TrainingSession(config_from_values(tui_fake_runs.values, "m8_demo"), tui_fake_runs.store,
                                  resume_run_id=run_id)
        app.session = session
        session.buffer(started(run_id))
        await wait_for(pilot, lambda: session.started is not None, 10, "the run to start")
        screen, table = await open_runs(pilot)
        while table.current_run_id() != run_id:
            await pilot.press("down")
        await pilot.press("r")
        await pilot.pause()
        said = [message for _, message in log.notifications]
        assert any(f"{run_id} is being trained here already" in m for m in said), said
        assert not any("before resuming another" in m for m in said), said
        assert app.session is session and isinstance(screen.query_one(RunsTable), RunsTable)


async def test_enter_on_the_config_list_focuses_the_forms_first_field(tui_env):
    """h: after Enter the focus is on a field, where its cursor shows, not on the form's scroll box."""
    app = make_app(tui_env)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.get_screen("config")
        form = screen.query_one(ConfigForm)
        await select_config(pilot, "m8_demo")
        assert app.focused is form.rows()[0].editor, app.focused


async def test_the_title_follows_a_config_that_fails_to_load(tui_env):
    """a: ``Configs — deep`` stayed while ``empty`` (an empty file) was selected."""
    (tui_env.configs / "deep.json").write_text(json.dumps(tui_env.values))
    (tui_env.configs / "empty.json").write_text("")
    app = make_app(tui_env)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.get_screen("config")
        await select_config(pilot, "deep")
        assert screen.sub_title == "deep"
        await select_config(pilot, "empty")
        assert screen.sub_title == "empty"
        assert "empty" in screen_text(app).splitlines()[0]


async def test_save_as_highlights_the_saved_configs_row(tui_env):
    """b: after Save-as the new config's row is the list's selected one."""
    app = make_app(tui_env)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.get_screen("config")
        await select_config(pilot, "m8_demo")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, SaveAsScreen), 5, "the save-as dialog")
        app.screen.query_one("#edit-text").value = "m8_saved"
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, SaveAsScreen), 5, "the dialog to close")
        list_view = screen.query_one("#config-list")
        names = [p.name[:-5] for p in screen.paths]
        row = lambda: list_view.highlighted_child
        await wait_for(pilot, lambda: list_view.index == names.index("m8_saved") and row() is not None
                       and row().highlighted, 5, "the saved row highlighted")
        assert [c.highlighted for c in list_view.children].count(True) == 1
        assert screen.name_loaded == "m8_saved"


async def test_the_facts_follow_the_edited_config(tui_env):
    """c: the facts panel showed the saved learning rate while the form held another."""
    app = make_app(tui_env)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.get_screen("config")
        await select_config(pilot, "tiny")
        facts = lambda: text_of(screen.query_one("#config-facts"))
        assert "lr 0.1" in facts(), facts()
        editor = screen.query_one(ConfigForm).row("OPTIMIZER.learning_rate").editor
        editor.value = "0.025"
        await wait_for(pilot, lambda: "lr 0.025" in facts(), 5, "the edited rate in the facts")
        editor.value = "nonsense"  # refused: the facts keep the last valid config's
        await pilot.pause()
        await pilot.pause()
        assert "lr 0.025" in facts()


async def test_the_machine_line_drops_the_cpu_once_the_run_has_ended(tui_env):
    """d: a run that has ended shows its means (or "—"), not its last CPU %."""
    app = make_app(tui_env)
    async with app.run_test(size=SIZE) as pilot:
        session = app.session = session_here(tui_env)
        await pilot.press("f3")
        panel = app.screen.query_one("#machine")
        session.buffer(started())
        session.buffer(MachineSample(1.0, 187.0, 1_210_000_000, 9_100_000_000, 23_500_000_000))
        await wait_for(pilot, lambda: "CPU 187%" in text_of(panel), 10, "the live sample")
        session.buffer(MachineEpoch(1, 10, 150.0, 1_000_000_000, 1_300_000_000, 9_000_000_000, 20_000_000_000,
                                    0, None, None, None, None))
        session.buffer(RunFinished("20250105-100000-tiny", RunStatus.COMPLETED, "epoch limit (2 epochs)", 12, 2, 9.0))
        await wait_for(pilot, lambda: not session.active, 10, "the end of the run")
        await pilot.pause()
        line = text_of(panel)
        assert "187%" not in line and "CPU 150%" in line and "peak 1.30" in line, line

        ended = session_here(tui_env)  # a watched process gone before any epoch ended: "—"
        app.session = ended
        ended.buffer(MachineSample(1.0, 99.0, 1_000_000_000, 9_000_000_000, 20_000_000_000))
        ended.buffer(RunFinished("x", RunStatus.INTERRUPTED, "its process ended", 0, 0, 1.0))
        await wait_for(pilot, lambda: not ended.active, 10, "the end")
        await pilot.pause()
        assert "99%" not in text_of(panel) and "—" in text_of(panel), text_of(panel)


async def test_a_toast_shows_whole_at_80x24(tui_env):
    """i: "Run completed: epoch limit (6" — the toast's height was measured wider than it is drawn."""
    app = make_app(tui_env)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        session = app.session = session_here(tui_env)
        await pilot.press("f3")
        session.buffer(RunFinished("20250105-100000-tiny", RunStatus.COMPLETED, "epoch limit (6 epochs)", 36, 6, 9.0))
        app.notify("Training failed: ValueError: the loss became NaN at iteration 7, a longer message that wraps")
        await wait_for(pilot, lambda: len(app.screen.query("Toast")) == 2, 5, "the toasts")
        await pilot.pause()
        rows = screen_text(app).splitlines()
        for toast in app.screen.query("Toast"):
            region = toast.region
            shown = " ".join(row[region.x:region.right].strip(" ▌") for row in rows[region.y:region.bottom])
            assert " ".join(toast.render().plain.split()) in " ".join(shown.split()), (shown, region)


async def test_a_long_key_keeps_a_space_before_its_value(tui_env):
    """e: at 160 columns ``ONE_CYCLE_SCHEDULE.peak_learning0.4``: the key now ends in "…" and a space."""
    app = make_app(tui_env)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.get_screen("config")
        await select_config(pilot, "tiny")
        form = screen.query_one(ConfigForm)
        key = "ONE_CYCLE_SCHEDULE.peak_learning_rate"
        form.row(key).editor.focus()  # scrolled into view
        await pilot.pause()
        await pilot.pause()
        (line,) = [row for row in screen_text(app).splitlines() if "ONE_CYCLE_SCHEDULE.peak" in row]
        value = form.row(key).editor.value
        assert f"… {value}" in line, line
        assert form.row(key).key_label.tooltip == key
