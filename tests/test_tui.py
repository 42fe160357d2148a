"""Dashboard: the config screen (pick, edit, validate, save as, diff, JSON), keys and help."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Button, Input, TextArea
from tui_support import MessageLog, make_app, select_config, text_of, wait_for, write_fake_run

from resnet_tui.tui.screens.dialogs import HelpScreen, SaveAsScreen
from resnet_tui.tui.widgets.config_form import ConfigForm

SIZE = (160, 50)


async def set_input(pilot, form: ConfigForm, key: str, text: str) -> None:
    """Type into a field as a user would: focus it, select all, type."""
    editor = form.row(key).editor
    editor.focus()
    editor.value = ""
    await pilot.press(*text) if text else None
    await pilot.pause()
    await pilot.pause()


def test_first_screen_paints_before_tensorflow_is_imported(tui_env):
    """TensorFlow takes seconds to import: only the workers that train or build a model import it."""
    import subprocess
    import sys

    script = f"""
import asyncio, sys
from resnet_tui.tui.app import ResnetTuiApp
from resnet_tui.store.runs import RunStore
async def main():
    app = ResnetTuiApp({str(tui_env.configs)!r}, store=RunStore.under({str(tui_env.root / "artifact")!r}))
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        await pilot.press("f3", "f4", "f2")
        await pilot.pause()
        print("loaded", app.get_screen("config").name_loaded)
        print("tensorflow imported", "tensorflow" in sys.modules)
asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "loaded m8_base" in out.stdout, out.stderr
    assert "tensorflow imported False" in out.stdout


async def test_pick_config_shows_its_values(tui_env):
    app = make_app(tui_env)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.get_screen("config")
        await select_config(pilot, "m8_demo")
        form = screen.query_one(ConfigForm)
        assert form.row("DATASET.source").editor.value == "synthetic"
        assert form.row("EPOCHS_COUNT").editor.value == "6"
        assert form.row("STEP_SCHEDULE.boundaries").editor.value == "75, 125"
        assert form.row("L2_MODE.enabled").editor.value is True
        facts = text_of(screen.query_one("#config-facts"))
        assert "synthetic" in facts and "epochs     6" in facts
        assert screen.query_one("#start", Button).disabled is False
        assert "m8_demo is valid" in text_of(screen.query_one("#config-status"))
        assert screen.current_config().values["EPOCHS_COUNT"] == 6


async def test_the_fast_recipe_shows_its_schedule_optimizer_and_smoothing(tui_env):
    app = make_app(tui_env)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.get_screen("config")
        await select_config(pilot, "m8_fast")
        form = screen.query_one(ConfigForm)
        assert form.row("COSINE_SCHEDULE.enabled").editor.value is True
        assert form.row("OPTIMIZER.type").editor.value == "sgd"
        facts = text_of(screen.query_one("#config-facts"))
        assert "sgd lr 0.01 m 0.9 nesterov wd 0.005" in facts
        assert "warmup 704 to 0.1, cosine to x0" in facts and "smoothing  0.1" in facts
        assert "m8_fast is valid" in text_of(screen.query_one("#config-status"))


def test_the_schedule_is_described_in_a_few_words():
    from resnet_tui.config import config_from_values
    from resnet_tui.tui.screens.config_screen import schedule_text

    def text(**values):
        return schedule_text(config_from_values({"STEP_SCHEDULE": {"enabled": False}, **values}, "cfg").values)

    assert text(ONE_CYCLE_SCHEDULE={"enabled": True, "warmup_steps": 300, "total_steps": 900}) == (
        "one cycle: 0.4 at 300, 0.0004 at 900")
    assert text(ONE_CYCLE_SCHEDULE={"enabled": True}) == "one cycle: 0.4 at 1000, 0.0004 at end"
    assert text(COSINE_SCHEDULE={"enabled": True, "alpha": 0.01}) == "cosine to x0.01"
    assert text(SCHEDULE_MODE={"enabled": True}) == "on plateau of val_loss"
    assert text() == "constant"


async def test_invalid_value_is_flagged_at_the_field_and_blocks_start(tui_env):
    app = make_app(tui_env)
    log = MessageLog()
    async with app.run_test(size=SIZE, message_hook=log) as pilot:
        await pilot.pause()
        screen = app.get_screen("config")
        form = screen.query_one(ConfigForm)
        start = screen.query_one("#start", Button)

        await set_input(pilot, form, "OPTIMIZER.learning_rate", "-1")
        row = form.row("OPTIMIZER.learning_rate")
        assert "expected a number > 0" in text_of(row.help_line)
        assert row.key_label.has_class("-invalid")
        assert start.disabled
        assert screen.current_config() is None

        await set_input(pilot, form, "BATCH_SIZE", "abc")
        assert "'abc' is not an integer" in text_of(form.row("BATCH_SIZE").help_line)
        assert "2 problems" in text_of(screen.query_one("#config-status"))

        notes = log.notifications
        await pilot.press("f5")  # the key is refused too, with a reason
        assert app.session is None
        assert any(sev == "error" and "problems" in msg for sev, msg in notes)

        await set_input(pilot, form, "OPTIMIZER.learning_rate", "0.05")
        await set_input(pilot, form, "BATCH_SIZE", "64")
        assert not row.key_label.has_class("-invalid")
        assert not start.disabled
        assert screen.current_config().values["OPTIMIZER"]["learning_rate"] == 0.05


async def test_combination_problem_and_choice_field(tui_env):
    """A rule across fields (plateau and step schedules both on) is shown at the field it names."""
    app = make_app(tui_env)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.get_screen("config")
        form = screen.query_one(ConfigForm)
        checkbox = form.row("SCHEDULE_MODE.enabled").editor
        checkbox.focus()
        await pilot.press("space")
        await pilot.pause()
        await pilot.pause()
        assert "cannot both be enabled" in text_of(form.row("SCHEDULE_MODE.enabled").help_line)
        assert screen.query_one("#start", Button).disabled
        await pilot.press("space")
        choice = form.row("OPTIMIZER.type").editor
        choice.focus()
        await pilot.press("right")
        await pilot.pause()
        await pilot.pause()
        assert choice.value == "adam"
        assert not screen.query_one("#start", Button).disabled


async def test_save_as_writes_a_new_file_and_never_overwrites(tui_env):
    base = tui_env.configs / "m8_base.json"
    base_text = base.read_text()
    app = make_app(tui_env)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.get_screen("config")
        form = screen.query_one(ConfigForm)
        await set_input(pilot, form, "EPOCHS_COUNT", "7")
        await set_input(pilot, form, "OPTIMIZER.learning_rate", "0.05")

        # The differences view lists exactly what changed.
        diff = text_of(screen.query_one("#config-diff"))
        assert "EPOCHS_COUNT" in diff and "200" in diff and "7" in diff
        assert "OPTIMIZER.learning_rate" in diff and "BATCH_SIZE" not in diff

        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, SaveAsScreen), 5, "the save-as dialog")
        dialog = app.screen
        name_input = dialog.query_one("#edit-text", Input)
        name_input.value = "m8_base"  # the seed's file: refused, the dialog stays
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SaveAsScreen)
        assert "already exists" in text_of(dialog.query_one("#edit-error"))

        name_input.value = ""
        await pilot.press(*"m8_short")
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, SaveAsScreen), 5, "the dialog to close")
        await pilot.pause()

        saved = tui_env.configs / "m8_short.json"
        assert saved.exists()
        data = json.loads(saved.read_text())
        assert data["EPOCHS_COUNT"] == 7 and data["OPTIMIZER"]["learning_rate"] == 0.05
        assert base.read_text() == base_text
        # The new file is listed and loaded, with nothing left to differ.
        assert screen.name_loaded == "m8_short"
        assert "m8_short" in [p.name[:-5] for p in screen.paths]
        assert "No differences" in text_of(screen.query_one("#config-diff"))


async def test_raw_json_editor_validates_like_the_form(tui_env):
    app = make_app(tui_env)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.get_screen("config")
        await pilot.press("ctrl+t", "ctrl+t")  # Form -> Changes -> JSON
        await pilot.pause()
        editor = screen.query_one("#config-json", TextArea)
        assert json.loads(editor.text)["EPOCHS_COUNT"] == 200
        assert editor.has_focus  # typing goes to the editor, no extra Tab needed
        editor.move_cursor((0, 1))
        await pilot.press("x")  # '{x "...' : the JSON no longer parses
        await pilot.pause()
        await pilot.pause()
        assert editor.text.startswith("{x") and "line 1" in text_of(screen.query_one("#json-error"))
        diff = text_of(screen.query_one("#config-diff"))
        assert "does not parse" in diff and "No differences" not in diff  # Changes says so
        await pilot.press("backspace")
        await pilot.pause()

        editor.load_text(editor.text.replace('"EPOCHS_COUNT": 200', '"EPOCHS_COUNT": 200,,'))
        await pilot.pause()
        await pilot.pause()
        assert "line" in text_of(screen.query_one("#json-error")) and "column" in text_of(screen.query_one("#json-error"))
        assert screen.query_one("#start", Button).disabled

        editor.load_text(editor.text.replace('"EPOCHS_COUNT": 200,,', '"EPOCHS_COUNT": 0'))
        await pilot.pause()
        await pilot.pause()
        assert "EPOCHS_COUNT" in text_of(screen.query_one("#json-error"))
        form = screen.query_one(ConfigForm)
        assert form.row("EPOCHS_COUNT").editor.value == "0"
        assert "got 0, expected an integer >= 1" in text_of(form.row("EPOCHS_COUNT").help_line)
        assert screen.query_one("#start", Button).disabled

        editor.load_text(editor.text.replace('"EPOCHS_COUNT": 0', '"EPOCHS_COUNT": 12'))
        await pilot.pause()
        await pilot.pause()
        assert form.row("EPOCHS_COUNT").editor.value == "12"
        assert not screen.query_one("#start", Button).disabled


async def test_help_overlay_lists_every_key(tui_env):
    app = make_app(tui_env)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        listed = {key for _, keys in app.screen.sections for key, _ in keys}
        for key in ("F1 / ?", "F2", "F3", "F4", "F5", "F6", "F7", "^q", "^s", "^r", "[", "]", "l", "a", "/", "s"):
            assert any(key in entry for entry in listed), key
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_screens_switch_by_key_and_nothing_runs_without_a_start(tui_env):
    app = make_app(tui_env)
    log = MessageLog()
    async with app.run_test(size=SIZE, message_hook=log) as pilot:
        await pilot.pause()
        for key, name in (("f3", "TrainScreen"), ("f4", "RunsScreen"), ("f2", "ConfigScreen")):
            await pilot.press(key)
            await pilot.pause()
            assert type(app.screen).__name__ == name
        notes = log.notifications
        await pilot.press("f7")
        assert any("No run is training" in msg for _, msg in notes)


async def test_the_training_buttons_ask_the_app_by_message(tui_env):
    """Buttons post requests that bubble to the app; with nothing training, it says so."""
    from resnet_tui.tui.messages import PauseRequested, StopRunRequested

    app = make_app(tui_env)
    log = MessageLog()
    async with app.run_test(size=SIZE, message_hook=log) as pilot:
        await pilot.press("f3")
        await pilot.pause()
        for button in ("#pause", "#stop"):
            app.screen.query_one(button, Button).disabled = False  # disabled while nothing runs
        await pilot.click("#pause")
        await pilot.click("#stop")
        await pilot.pause()
        assert len(log.of(PauseRequested)) == 1 and len(log.of(StopRunRequested)) == 1
        assert [msg for _, msg in log.notifications] == ["No run is training.", "No run is training."]
        assert app.session is None


async def test_the_form_follows_the_list_cursor_and_edits_are_never_dropped_silently(tui_env):
    """Master-detail: Down moves the list, the form, the facts, the title and what F5 starts together."""
    from resnet_tui.tui.screens.dialogs import UnsavedEditsScreen

    app = make_app(tui_env)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.get_screen("config")
        names = [p.name[:-5] for p in screen.paths]
        first, second = names[0], names[1]
        assert screen.name_loaded == first
        await pilot.press("ctrl+l", "down")
        await wait_for(pilot, lambda: screen.name_loaded == second, 10, "the form to follow the cursor")
        assert screen.sub_title == second and screen.current_config().name == second  # what F5 starts
        assert f"{second} is valid" in text_of(screen.query_one("#config-status"))
        epochs = str(screen.current_config().values["EPOCHS_COUNT"])
        assert screen.query_one(ConfigForm).row("EPOCHS_COUNT").editor.value == epochs

        # An edit, then the cursor moves on: asked; cancel keeps the edit and puts the cursor back.
        await set_input(pilot, screen.query_one(ConfigForm), "EPOCHS_COUNT", "3")
        assert screen.is_dirty()
        await pilot.press("ctrl+l", "up")
        await wait_for(pilot, lambda: isinstance(app.screen, UnsavedEditsScreen), 10, "the question")
        await pilot.press("c")
        await wait_for(pilot, lambda: screen.query_one("#config-list").index == 1, 10, "the cursor back")
        assert screen.name_loaded == second and screen.is_dirty()

        # Quitting asks too; cancel stays.
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, UnsavedEditsScreen), 10, "the question on quit")
        await pilot.press("c")
        await pilot.pause()
        assert app.is_running

        # Discard: the edit goes, the highlighted config loads.
        await pilot.press("ctrl+l", "up")
        await wait_for(pilot, lambda: isinstance(app.screen, UnsavedEditsScreen), 10, "the question")
        await pilot.press("d")
        await wait_for(pilot, lambda: screen.name_loaded == first, 10, "the first config")
        assert not screen.is_dirty() and screen.current_config().name == first


async def test_a_start_while_watching_starts_the_config_its_request_names(tui_fake_runs, monkeypatch):
    """Watching another dashboard's run of m8_demo, a start asks first; yes starts the config the
    request carries, named in the question, not the one under the Configs list's unseen cursor."""
    import json

    from resnet_tui.config import config_from_values
    from resnet_tui.tui.messages import StartRequested
    from resnet_tui.tui.screens.dialogs import ConfirmScreen
    from resnet_tui.tui.screens.train_screen import TrainScreen
    from resnet_tui.tui.session import TrainingSession
    from resnet_tui.tui.widgets.runs_table import RunsTable

    monkeypatch.setattr(TrainingSession, "run", lambda self: None)  # which config starts is the point, not training
    store, run_id = tui_fake_runs.store, "20250105-100000-m8_demo"
    write_fake_run(store, run_id, tui_fake_runs.values, status=None, iterations=15, started=1736071200.0)
    run = store.open_run(run_id)
    run.acquire_lock()  # "another process": the lock's owner is alive, so the run is running
    (run.paths.log / "plan.json").write_text(json.dumps(
        {"steps_per_epoch": 10, "total_iterations": 40, "param_count": 274042, "train_count": 320}))
    app = make_app(tui_fake_runs)
    log = MessageLog()
    try:
        async with app.run_test(size=SIZE, message_hook=log) as pilot:
            await pilot.press("f4")
            table = app.screen.query_one(RunsTable)
            await wait_for(pilot, lambda: run_id in [row.value for row in table.rows], 20, "the running run")
            table.focus()
            table.move_cursor(row=[row.value for row in table.rows].index(run_id))
            await pilot.press("w")
            await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen) and app.session is not None
                           and app.session.following, 10, "the run watched")
            watched = app.session

            def question() -> str:
                return str(app.screen.query_one(".dialog-question").content)

            # F5: the Configs screen puts its config (the first, m8_base) in the request, named in the question.
            await pilot.press("f5")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "the question")
            assert "You are watching m8_demo" in question() and "Start m8_base here as well?" in question()
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen), 10, "the question gone")
            assert app.session is watched

            # A request for tiny, the Configs cursor still on m8_base: tiny is asked about and started.
            wanted = config_from_values(tui_fake_runs.values, "tiny")
            app.screen.post_message(StartRequested(wanted))
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "the question")
            assert "Start tiny here as well?" in question()
            await pilot.press("y")
            await wait_for(pilot, lambda: app.session is not watched and isinstance(app.screen, TrainScreen),
                           10, "the start")
            assert app.session.config is wanted and not app.session.following
            assert app.screen.sub_title == "tiny"  # what the Training screen shows
            assert ("information", "Stopped watching m8_demo; it goes on training elsewhere.") in log.notifications
    finally:
        run.release_lock()


def test_the_session_controller_decides_in_plain_python(tui_env):
    """Start, resume, pause, stop and quit, decided without Textual: a new session, a question
    first, or the refusal the toast shows."""
    import subprocess
    import sys

    from resnet_tui.config import config_from_values
    from resnet_tui.tui.controller import Refused, SessionController

    imported = subprocess.run([sys.executable, "-c", "import sys, resnet_tui.tui.controller; "
                               "print(sorted(m for m in ('textual', 'tensorflow', 'keras') if m in sys.modules))"],
                              capture_output=True, text=True, timeout=120)
    assert imported.stdout.strip() == "[]", imported.stderr

    replaced = []
    controller = SessionController(tui_env.store, on_new_session=replaced.append)
    with pytest.raises(Refused, match="has problems") as refusal:
        controller.check_start(None)
    assert refusal.value.severity == "error"
    with pytest.raises(Refused, match="^No run is training.$"):
        controller.pause()
    config = config_from_values(tui_env.values, "tiny")
    assert controller.check_start(config) is None and controller.quit_question() is None
    session = controller.start(config)  # no thread: the app runs session.run in a worker
    assert replaced == [session] and controller.training_here and controller.session.store is tui_env.store
    with pytest.raises(Refused, match="A run of tiny is starting: stop it \\(F7\\) before starting another."):
        controller.check_start(config)
    with pytest.raises(Refused, match="before resuming another"):
        controller.resume(tui_env.store, "20250101-120000-tiny")
    assert "Stop it (it is recorded as stopped) and quit?" in controller.quit_question().text
    controller.pause()
    assert session.state == "paused"
    controller.pause()  # F6 again resumes
    controller.stop()
    assert session.state == "stopping" and controller.training_here  # until the trainer has saved

    read_only = SessionController(tui_env.store, read_only=True)
    with pytest.raises(Refused, match="^Read-only dashboard: it does not resume runs"):
        read_only.resume(tui_env.store, "20250101-120000-tiny")


async def test_a_file_with_an_unknown_key_blocks_start_until_fixed_in_the_json_tab(tui_env):
    """A typo'd key (EPOCH_COUNT for EPOCHS_COUNT) once showed "✓ valid" and F5 trained the defaults
    (issue 22, item 1). The status names the key and where to fix it, F5 starts nothing, the JSON
    tab holds the file's own text, and fixing the key there makes the config startable."""
    typo = dict(tui_env.values)
    typo["EPOCH_COUNT"] = typo.pop("EPOCHS_COUNT")
    (tui_env.configs / "m8_typo.json").write_text(json.dumps(typo, indent=2), encoding="utf-8")
    app = make_app(tui_env)
    log = MessageLog()
    async with app.run_test(size=SIZE, message_hook=log) as pilot:
        await select_config(pilot, "m8_typo")
        screen = app.get_screen("config")
        status = text_of(screen.query_one("#config-status"))
        assert "EPOCH_COUNT: unknown key; did you mean 'EPOCHS_COUNT'? (fix it in the JSON tab)" in status, status
        assert "valid" not in status and screen.query_one("#start", Button).disabled
        await pilot.press("f5")
        await pilot.pause(0.3)
        assert app.session is None  # nothing trains the defaults

        await pilot.press("ctrl+t", "ctrl+t")  # form -> differences -> JSON: the file as written, typo included
        editor = screen.query_one("#config-json", TextArea)
        await wait_for(pilot, lambda: '"EPOCH_COUNT"' in editor.text, 10, "the file's own text")
        editor.load_text(editor.text.replace('"EPOCH_COUNT"', '"EPOCHS_COUNT"'))
        await wait_for(pilot, lambda: not screen.query_one("#start", Button).disabled, 10, "the fix to validate")
        assert screen.current_config().EPOCHS_COUNT == tui_env.values["EPOCHS_COUNT"]


async def test_the_app_keys_work_while_the_json_editor_has_focus(tui_env):
    """TextArea binds F6 (select line) and F7 (select all): in the JSON editor they once did that,
    and vanished from the footer, so a run could not be stopped while editing (issue 22, item 5)."""
    app = make_app(tui_env)
    log = MessageLog()
    async with app.run_test(size=SIZE, message_hook=log) as pilot:
        await pilot.pause()
        screen = app.get_screen("config")
        await pilot.press("ctrl+t", "ctrl+t")  # to the JSON tab; the editor takes the focus
        editor = screen.query_one("#config-json", TextArea)
        await wait_for(pilot, lambda: editor.has_focus and editor.text, 10, "the JSON editor")
        await pilot.pause()
        footer = {key.render().plain.strip() for key in screen.query("FooterKey")}  # not exported by textual.widgets
        assert {"F6 Pause", "F7 Stop"} <= footer, footer
        before = len(log.notifications)
        await pilot.press("f7")
        await wait_for(pilot, lambda: len(log.notifications) > before, 5, "the app to answer F7")
        assert editor.selected_text == ""  # not TextArea's select-all


async def test_a_run_started_with_artifact_records_where_its_files_are(tui_env, tmp_path):
    """`resnet-tui --artifact DIR`: the run's folders are under DIR, and its config.json says so
    (it said "artifact/log" from the config file, and show and Compare named the wrong folders;
    issue 22, item 4)."""
    from resnet_tui.store.runs import RunStore
    from resnet_tui.tui.app import ResnetTuiApp

    elsewhere = RunStore.under(tmp_path / "elsewhere")
    values = dict(tui_env.values, LOG_PATH="artifact/log", CHECKPOINT_PATH="artifact/checkpoint")
    (tui_env.configs / "tiny.json").write_text(json.dumps(values, indent=2), encoding="utf-8")
    app = ResnetTuiApp(tui_env.configs, store=elsewhere)
    async with app.run_test(size=SIZE) as pilot:
        await select_config(pilot, "tiny")
        await pilot.press("f5")
        await wait_for(pilot, lambda: elsewhere.run_ids() and elsewhere.open_run(elsewhere.run_ids()[0]).read_config(),
                       90, "the run's config.json")
        await pilot.press("f7")
        await wait_for(pilot, lambda: app.session is not None and not app.session.active, 90, "the run to stop")
    recorded = elsewhere.open_run(elsewhere.run_ids()[0]).read_config()
    assert {key: recorded[key] for key in elsewhere.path_values()} == elsewhere.path_values()
