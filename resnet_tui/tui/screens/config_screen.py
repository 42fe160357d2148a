"""Pick a config, edit it (form or raw JSON), see the changes and the model."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer, Vertical, VerticalScroll
from textual.widget import AwaitMount
from textual.widgets import Button, Footer, Header, Label, ListItem, ListView, Static, TabbedContent, TabPane, TextArea
from textual.worker import get_current_worker

from resnet_tui.config import (
    FIELDS,
    Config,
    ConfigError,
    check_values,
    config_from_values,
    config_name,
    default_values,
    diff_values,
    get_dotted,
    learning_rate_key,
    list_configs,
    load_config,
    parse_json,
    read_config_json,
    save_config,
    schedule_name,
    set_dotted,
)
from resnet_tui.report import format as fmt
from resnet_tui.tui.controller import read_only_refusal
from resnet_tui.tui.messages import ConfigWanted, QuitAsked, QuitRequested, StartRequested
from resnet_tui.tui.screens.base import DashboardScreen
from resnet_tui.tui.screens.dialogs import SaveAsScreen, UnsavedEditsScreen
from resnet_tui.tui.widgets.config_form import ConfigForm
from resnet_tui.tui.widgets.model_summary import ModelSummary

PROTECTED = "m8_base"  # the seed's config: never written by the dashboard
MODEL_KEYS = ("MODEL_NUMBER", "L2_MODE.enabled", "L2_MODE.lambda", "DROPOUT_MODE.enabled", "DROPOUT_MODE.rate")


def describe(config: Config) -> Text:
    """The key values of a config, for the list's side panel."""
    v = config.values
    data = v["DATASET"]["source"]
    if data == "synthetic":
        data += f" ({v['DATASET']['synthetic_train_count']} train)"
    if v["LIGHT_MODE"]:
        data += ", light mode"
    opt = v["OPTIMIZER"]
    lines = [
        ("model", f"m{v['MODEL_NUMBER']}"),
        ("data", data),
        ("epochs", str(v["EPOCHS_COUNT"])),
        ("batch", str(v["BATCH_SIZE"])),
        ("max iters", f"{v['MAX_ITERATIONS']:,}" if v["MAX_ITERATIONS"] else "no cap"),
        ("optimizer", f"{opt['type']} lr {opt['learning_rate']:g}" +
         (f" m {opt['momentum']:g}" if opt["type"] == "sgd" else "") + (" nesterov" if opt["nesterov"] else "") +
         (f" wd {opt['weight_decay']:g}" if opt["weight_decay"] else "")),
        ("lr steps", schedule_text(v)),
        ("L2", f"{v['L2_MODE']['lambda']:g}" if v["L2_MODE"]["enabled"] else "off"),
        *([("smoothing", f"{v['LABEL_SMOOTHING']:g}")] if v["LABEL_SMOOTHING"] else []),
        ("augment", "on" if v["AUGMENT_MODE"] else "off"),
        ("early stop", "on" if v["EARLY_STOP_MODE"]["enabled"] else "off"),
    ]
    text = Text()
    for key, value in lines:
        text.append(f"{key:<10} ", style="dim")
        text.append(value + "\n")
    return text


def model_key(config: Config) -> str:
    """The values the model is built from: configs that agree on them share a summary."""
    return json.dumps([get_dotted(config.values, k) for k in MODEL_KEYS])


def summary_heading(config: Config) -> str:
    """Which config the summary is for, and its L2 (Keras' table does not show regularizers)."""
    l2 = f"L2 {config.L2_MODE['lambda']:g}" if config.L2_MODE["enabled"] else "no L2"
    return f"{config.name}: model m{config.model_number}, {l2}\n\n"


def summary_text(config: Config) -> tuple[str, bool]:
    """Keras' summary of ``config``'s model and its parameter count, and whether it could be built."""
    from resnet_tui.models.resnet import dispatch_build_model
    from resnet_tui.models.summary import count_params, model_summary_text

    try:
        model = dispatch_build_model(config.model_number, config)
        return model_summary_text(model) + f"\nparameters: {count_params(model):,}\n", True
    except Exception as exc:  # shown, never raised into the UI
        return f"Could not build the model: {exc.__class__.__name__}: {exc}", False


def schedule_text(v: dict) -> str:
    """The learning-rate schedule of config values ``v``, in a few words."""
    name = schedule_name(v)
    if name == "step":
        return f"x{v['STEP_SCHEDULE']['factor']:g} at {', '.join(map(str, v['STEP_SCHEDULE']['boundaries']))}"
    if name == "cosine":
        cosine = v["COSINE_SCHEDULE"]
        warmup = f"warmup {cosine['warmup_steps']} to {cosine['warmup_target']:g}, " if cosine["warmup_steps"] else ""
        return f"{warmup}cosine to x{cosine['alpha']:g}"
    if name == "one_cycle":
        cycle = v["ONE_CYCLE_SCHEDULE"]
        return (f"one cycle: {cycle['peak_learning_rate']:g} at {cycle['warmup_steps']}, "
                f"{cycle['final_learning_rate']:g} at {cycle['total_steps'] or 'end'}")
    return "on plateau of " + v["SCHEDULE_MODE"]["monitor"] if name == "plateau" else "constant"


class JsonEditor(TextArea, inherit_bindings=False):
    """The raw JSON editor, without TextArea's own F6 (select line) and F7 (select all): on every
    widget those keys are the app's Pause and Stop, so a run can be stopped while editing JSON."""

    BINDINGS = [*(b for b in ScrollableContainer.BINDINGS if isinstance(b, Binding) and b.key.startswith("ctrl+page")),
                *(b for b in TextArea.BINDINGS if not (isinstance(b, Binding) and b.key in ("f6", "f7")))]


class ConfigScreen(DashboardScreen):
    """The editor. ``current_config()`` is what F5 starts (None while anything is invalid): the
    screen puts it in a ``StartRequested`` when its Start button is pressed or the app asks
    (``ConfigWanted``, on F5 or the Training screen's Start)."""

    TITLE = "Configs"
    BINDINGS = [
        # Save as and Revert are on their buttons, so the footer leaves them out.
        Binding("ctrl+s", "save_as", "Save as", show=False),
        Binding("ctrl+r", "revert", "Revert", show=False),
        Binding("ctrl+l", "focus_list", "List"),
        Binding("ctrl+t", "next_tab", "Tab"),
        Binding("f9", "lr_find", "LR find", key_display="F9"),
    ]

    def __init__(self, configs_dir: Path, read_only: bool = False):
        super().__init__()
        self.configs_dir = Path(configs_dir)
        self.read_only = read_only  # a read-only dashboard saves no config
        self.paths: list[Path] = []
        self.name_loaded: str | None = None  # config name in the editor
        self.original: dict | None = None  # its values as loaded (for the diff)
        self.errors: dict[str, str] = {}  # field key -> why refused
        self.general_errors: list[str] = []  # problems not tied to one field
        # The file's own problems the form cannot show (an unknown key, a value that should be an
        # object): they block Start until fixed in the JSON tab, which then holds the file's text.
        self.file_problems: list[str] = []
        self._file_text = ""
        self.warnings: list[str] = []
        self.json_error: str | None = None
        self._json_generated = ""  # the text we last put in the JSON editor
        self._summary_cache: dict[str, str] = {}  # model_key -> summary text
        self._summary_for: Config | None = None  # the config the Model tab shows

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="config-main"):
            with Vertical(id="config-side"):
                yield Label("Configs", classes="pane-title")
                yield ListView(id="config-list")
                yield Static("", id="config-facts", markup=False)
            with Vertical(id="config-editor"):
                with TabbedContent(id="config-tabs"):
                    with TabPane("Form", id="tab-form"):
                        yield ConfigForm(id="config-form")
                    with TabPane("Changes", id="tab-diff"):
                        with VerticalScroll():
                            yield Static("", id="config-diff")
                    with TabPane("JSON", id="tab-json"):
                        yield JsonEditor("", language="json", show_line_numbers=True, id="config-json")
                        yield Static("", id="json-error", classes="field-error", markup=False)
                    with TabPane("Model", id="tab-model"):
                        yield ModelSummary("The model summary is built when this tab opens.", id="config-summary")
                yield Static("", id="config-status")
                with Horizontal(id="config-actions"):
                    yield Button("Start  F5", id="start", variant="success", compact=True)
                    yield Button("Save as…  ^S", id="save-as", compact=True)
                    yield Button("Revert  ^R", id="revert", compact=True)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.reload_list()
        if self.paths:
            self.load_path(self.paths[0])
            self.query_one("#config-list", ListView).index = 0
        self.query_one("#config-list", ListView).focus()  # master-detail: up/down pick, enter edits

    # -- the list -------------------------------------------------------------
    def reload_list(self, select: str | None = None) -> None:
        self.paths = list_configs(self.configs_dir)
        list_view = self.query_one("#config-list", ListView)
        list_view.clear()
        mounted = list_view.extend(ListItem(Label(config_name(p), markup=False)) for p in self.paths)
        if not self.paths:
            self.query_one("#config-facts", Static).update(f"No configs in {self.configs_dir}/")
        if select is not None:
            self.select(select)
            self.call_later(self._select_mounted, mounted, select)

    async def _select_mounted(self, mounted: AwaitMount, name: str) -> None:
        """Select ``name`` again once the new rows are in: an index set before they are highlights none."""
        await mounted
        self.select(name, again=True)

    @on(ListView.Highlighted, "#config-list")
    def _follow_cursor(self, event: ListView.Highlighted) -> None:
        """Master-detail: the form, the facts, the title and what F5 starts follow the list's cursor."""
        index = event.list_view.index
        if index is None or index >= len(self.paths) or config_name(self.paths[index]) == self.name_loaded:
            return
        path = self.paths[index]
        if self.is_dirty():
            self.ask_about_edits(f"opening {config_name(path)}", lambda: self.load_path(path))
        else:
            self.load_path(path)

    @on(ListView.Selected, "#config-list")
    def _pick(self, event: ListView.Selected) -> None:
        """Enter: edit the config under the cursor, from the form's first field."""
        tabs, form = self.query_one("#config-tabs", TabbedContent), self.query_one("#config-form", ConfigForm)
        if tabs.active != "tab-form":
            tabs.active = "tab-form"
            self.call_after_refresh(form.focus_first)  # once the form's pane shows
        else:
            form.focus_first()

    def ask_about_edits(self, then: str, go) -> None:
        """Unsaved edits: save as a new config, discard them (then ``go()``), or cancel (the cursor
        goes back to the config being edited)."""
        edited = self.name_loaded
        assert edited is not None  # only dirty edits are asked about, and load_path names them first

        def answered(choice: str | None) -> None:
            if choice == "discard":
                go()
                return
            self.select(edited)
            if choice == "save":
                self.action_save_as()

        self.app.push_screen(UnsavedEditsScreen(edited, then), answered)

    def select(self, name: str | None, again: bool = False) -> None:
        """Put the list's cursor on config ``name`` (``again``: even where it is already, to highlight it)."""
        names = [config_name(p) for p in self.paths]
        if name in names:
            list_view = self.query_one("#config-list", ListView)
            if again and list_view.index == names.index(name):
                list_view.index = None
            list_view.index = names.index(name)

    def load_path(self, path: Path) -> None:
        """Put a config file in the editor; a broken file shows its problems at the fields."""
        name = config_name(path)
        self.name_loaded = name
        self.sub_title = name  # the title follows the list, a config that fails to load included
        try:
            facts = describe(load_config(path))
        except ConfigError as exc:
            facts = Text(str(exc), style="red")
        self.query_one("#config-facts", Static).update(facts)
        try:
            raw = read_config_json(path)
        except ConfigError as exc:
            self.original = None
            self.file_problems, self._file_text = [], ""
            self.general_errors = [str(exc)]
            self._update_status()
            return
        values = default_values()
        if isinstance(raw, dict):
            for key in FIELDS:  # the file's values over the defaults, wrong ones included
                value = get_dotted(raw, key, _MISSING)
                if value is not _MISSING:
                    set_dotted(values, key, value)
        resolved, issues, _ = check_values(raw if isinstance(raw, dict) else {}, name)
        self.file_problems = [str(issue) for issue in issues if issue.key not in FIELDS]
        self._file_text = path.read_text(encoding="utf-8") if self.file_problems else ""
        self.original = resolved
        self.query_one(ConfigForm).load(values)
        self.json_error = None
        self._json_generated = ""
        self.validate()

    # -- validation -------------------------------------------------------------
    def validate(self) -> None:
        raw, parse_errors = self.query_one(ConfigForm).read()
        resolved, issues, self.warnings = check_values(raw, self.name_loaded or "")
        errors = dict(parse_errors)
        general = []
        for issue in issues:
            if issue.key in FIELDS:
                errors.setdefault(issue.key, issue.message)
            else:
                general.append(str(issue))
        self.errors, self.general_errors = errors, general
        self.query_one(ConfigForm).show_errors(errors)
        self._resolved = resolved
        config = self.current_config()
        if config is not None:  # the facts follow the edits (the saved file's stay while they are refused)
            self.query_one("#config-facts", Static).update(describe(config))
        self._update_status()
        self._update_diff()
        if self.query_one("#config-tabs", TabbedContent).active == "tab-model":
            self.show_summary()  # the tab shows the config on screen, whatever changed it

    @on(ConfigForm.Edited)
    def _edited(self) -> None:
        self.json_error = None  # the form is the newer edit now
        self.validate()

    def problems(self) -> list[str]:
        found = [f"{key}: {message}" for key, message in self.errors.items()] + self.general_errors
        found += [f"{problem} (fix it in the JSON tab)" for problem in self.file_problems]
        if self.json_error:
            found.insert(0, f"JSON: {self.json_error}")
        if self.original is None and not found:
            found.append("no config loaded")
        return found

    def current_config(self) -> Config | None:
        """The edited config, validated; None when anything is refused."""
        if self.problems() or self.name_loaded is None:
            return None
        raw, _ = self.query_one(ConfigForm).read()
        name = self.name_loaded + ("-edited" if self.is_dirty() else "")
        source = self.configs_dir / f"{self.name_loaded}.json"
        try:
            return config_from_values(raw, name, source)
        except ConfigError:
            return None

    def is_dirty(self) -> bool:
        return bool(self.original is not None and diff_values(self.original, getattr(self, "_resolved", {}) or {}))

    def _update_status(self) -> None:
        problems = self.problems()
        status = self.query_one("#config-status", Static)
        if problems:
            first = fmt.short_paths(problems[0], 40)  # one line: the file's name and the reason, not its folders
            text = Text(f"✗ {len(problems)} problem{'s' * (len(problems) > 1)}: {first}", style="red")
        else:
            changed = " (edited)" if self.is_dirty() else ""
            text = Text(f"✓ {self.name_loaded}{changed} is valid", style="green")
            for warning in self.warnings:
                text.append(f"  ⚠ {warning}", style="yellow")
        status.update(text)
        self.query_one("#start", Button).disabled = bool(problems)

    def _update_diff(self) -> None:
        diff = self.query_one("#config-diff", Static)
        if self.json_error:  # the JSON tab holds the newest edit, and it does not parse
            diff.update(Text(f"The JSON tab's text does not parse ({self.json_error}): fix it there to see the "
                             "differences.", style="red"))
            return
        if self.original is None:
            diff.update("")
            return
        changes = diff_values(self.original, self._resolved)
        if not changes:
            diff.update(Text(f"No differences from {self.name_loaded}.json", style="dim"))
            return
        table = Table(title=f"Differences from {self.name_loaded}.json", title_justify="left", expand=False)
        table.add_column("key", style="cyan", no_wrap=True)
        table.add_column("original")
        table.add_column("edited", style="bold")
        for key, before, after in changes:
            table.add_row(key, Text(json.dumps(before)), Text(json.dumps(after)))
        diff.update(table)

    # -- raw JSON ---------------------------------------------------------------
    @on(TabbedContent.TabActivated, "#config-tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-json" and not self.json_error:
            raw, _ = self.query_one(ConfigForm).read()
            # The file's own text while it has problems the form cannot hold, so they can be fixed there.
            self._json_generated = self._file_text if self.file_problems else json.dumps(raw, indent=2)
            editor = self.query_one("#config-json", TextArea)
            if editor.text != self._json_generated:
                editor.load_text(self._json_generated)
        if event.pane.id == "tab-json":
            self.query_one("#config-json", TextArea).focus()  # typing goes to the editor at once
        elif event.pane.id == "tab-form" and not self.query_one("#config-list", ListView).has_focus:
            form = self.query_one(ConfigForm)  # (the list keeps the keys at start: up/down pick the config)
            if not form.has_focus_within:
                form.focus_first()
        elif event.pane.id == "tab-model":
            self.show_summary()

    @on(TextArea.Changed, "#config-json")
    def _json_changed(self, event: TextArea.Changed) -> None:
        text = event.text_area.text
        if text == self._json_generated:
            return
        error = self.query_one("#json-error", Static)
        try:
            raw = parse_json(text, "JSON")
            if not isinstance(raw, dict):
                raise ConfigError("JSON: the config must be an object {...}")
        except ConfigError as exc:
            self.json_error = str(exc).removeprefix("JSON: ")
            error.update(f"✗ {self.json_error}")
            self._update_status()
            self._update_diff()
            return
        self.json_error = None
        _, issues, _ = check_values(raw, self.name_loaded or "")
        error.update("\n".join(f"✗ {i}" for i in issues))
        self.file_problems = [str(issue) for issue in issues if issue.key not in FIELDS]
        self._file_text = text if self.file_problems else ""
        values = default_values()
        for key in FIELDS:
            value = get_dotted(raw, key, _MISSING)
            if value is not _MISSING:
                set_dotted(values, key, value)
        self.query_one(ConfigForm).load(values)
        self._json_generated = text
        self.validate()

    # -- model summary ------------------------------------------------------------
    def show_summary(self) -> None:
        """Show the model of the config on screen: from the cache, or built by a worker."""
        config = self.current_config()
        self._summary_for = config  # what the tab must show; a build for anything else is dropped
        view = self.query_one("#config-summary", ModelSummary)
        if config is None:
            view.show("Fix the config's problems to see its model.")
        elif model_key(config) in self._summary_cache:
            view.show(summary_heading(config) + self._summary_cache[model_key(config)])
        else:
            view.show("Building the model (the first time loads TensorFlow, a few seconds)…")
            self._build_summary(config)

    @work(thread=True, exclusive=True, group="summary")
    def _build_summary(self, config: Config) -> None:
        """Build ``config``'s model in a thread. Touches no widget: Textual's DOM is not thread-safe."""
        text, built = summary_text(config)
        if not get_current_worker().is_cancelled:  # a newer build replaced this one: drop it
            self.app.call_from_thread(self._summary_built, config, text, built)

    def _summary_built(self, config: Config, text: str, built: bool) -> None:
        if built:
            self._summary_cache[model_key(config)] = text
        wanted = self._summary_for
        if wanted is not None and model_key(wanted) == model_key(config):  # else the user moved on meanwhile
            self.query_one("#config-summary", ModelSummary).show(summary_heading(wanted) + text)

    # -- actions --------------------------------------------------------------------
    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.post_message(StartRequested(self.current_config()))

    @on(ConfigWanted)
    def _config_wanted(self) -> None:
        """F5 or Training's Start: the config to start is the one here now."""
        self.post_message(StartRequested(self.current_config()))

    @on(QuitAsked)
    def _quit_asked(self) -> None:
        """ctrl+q: edits are not dropped silently; then the app may quit."""
        if self.is_dirty():
            self.ask_about_edits("quitting", lambda: self.post_message(QuitRequested()))
        else:
            self.post_message(QuitRequested())

    @on(Button.Pressed, "#save-as")
    def _save_pressed(self) -> None:
        self.action_save_as()

    @on(Button.Pressed, "#revert")
    def _revert_pressed(self) -> None:
        self.action_revert()

    def action_save_as(self) -> None:
        if self.read_only:
            self.notify(read_only_refusal("save configs"), severity="warning")
            return
        config = self.current_config()
        if config is None:
            self.notify("Fix the problems before saving", severity="error")
            return
        base = self.name_loaded or "m8_config"
        suggestion = next(f"{base}_{n}" for n in range(2, 1000)
                          if not (self.configs_dir / f"{base}_{n}.json").exists())

        def saved(name: str | None) -> None:
            if not name:
                return
            if name == PROTECTED:
                self.notify(f"{PROTECTED}.json is the seed's config and is never overwritten", severity="error")
                return
            path = self.configs_dir / f"{name}.json"
            try:
                save_config(config_from_values(config.values, name, path), path)
            except (ConfigError, OSError) as exc:
                self.notify(str(exc), severity="error")
                return
            self.notify(f"Saved {path}")
            self.name_loaded = None  # the edits are saved: nothing to ask about
            self.load_path(path)
            self.reload_list(select=name)

        self.app.push_screen(SaveAsScreen(self.configs_dir, suggestion), saved)

    def action_revert(self) -> None:
        if self.name_loaded:
            path = self.configs_dir / f"{self.name_loaded}.json"
            if path.exists():
                self.name_loaded = None  # no "discarded" warning: that is the point
                self.load_path(path)
                self.notify(f"Reverted to {path}")

    def action_lr_find(self) -> None:
        """F9: the learning-rate range test of the config as edited; the rate picked there goes
        into the form as an unsaved edit, in the key the config's schedule reads."""
        from resnet_tui.tui.screens.lr_find_screen import LrFindScreen

        config = self.current_config()
        if config is None:
            self.notify("Fix the config's problems first: the range test trains it", severity="warning")
            return
        if self.app.controller.training_here or self.app.sweep_runner is not None:
            self.notify("A run or a sweep trains here: the range test waits until it ends", severity="warning")
            return

        def chosen(rate: float | None) -> None:
            if rate is not None:
                key = learning_rate_key(config.values)  # the one-cycle peak, a warmup's target, else the rate
                self.query_one(ConfigForm).row(key).set_value(rate)
                self.validate()
                self.notify(f"{key} = {rate:g} (unsaved: Ctrl+S saves as a new file)")

        self.app.push_screen(LrFindScreen(config), chosen)

    def action_focus_list(self) -> None:
        self.query_one("#config-list", ListView).focus()

    def action_next_tab(self) -> None:
        tabs = self.query_one("#config-tabs", TabbedContent)
        order = ["tab-form", "tab-diff", "tab-json", "tab-model"]
        tabs.active = order[(order.index(tabs.active) + 1) % len(order)] if tabs.active in order else order[0]


_MISSING = object()
