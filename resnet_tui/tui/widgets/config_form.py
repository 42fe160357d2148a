"""The hyperparameter form, generated from the config schema.

One row per :class:`~resnet_tui.config.Field`, grouped by ``Field.group``: a
checkbox for booleans, a choice for fixed choices, an input otherwise; the
field's help text under it and, when the value is refused, the reason in red.
The form only reads and shows values; the screen validates them with
:func:`~resnet_tui.config.check_values`, the same check as the CLI.

The form has ~40 fields and Textual's cost grows with the widget count, so each
field is kept to four plain widgets (no Select: its overlay is heavy).
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Checkbox, Input, Static

from resnet_tui.config import SCHEMA, Field, get_dotted, set_dotted


def field_id(key: str) -> str:
    """A DOM id for a dotted key ("L2_MODE.lambda" -> "field-L2_MODE--lambda")."""
    return "field-" + key.replace(".", "--")


def format_value(f: Field, value: Any) -> str:
    """How a value is typed in an input."""
    if f.type is list and isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, str):
        return value
    return json.dumps(value)


def parse_text(f: Field, text: str) -> Any:
    """An input's text as the field's type; ValueError says why not."""
    text = text.strip()
    if f.type is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an integer; expected {f.allowed()}") from None
    if f.type is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number; expected {f.allowed()}") from None
    if f.type is list:
        items = [item for item in text.strip("[]").replace(",", " ").split() if item]
        try:
            return [int(item) for item in items]
        except ValueError:
            raise ValueError(f"{text!r} is not a list of integers, e.g. 32000, 48000") from None
    return text


class Choice(Static, can_focus=True):
    """One of a few values, stepped with ← → / space / enter (lighter than a Select)."""

    BINDINGS = [
        Binding("right,space,enter", "step(1)", "Next choice", show=False),
        Binding("left", "step(-1)", "Previous choice", show=False),
    ]
    value = reactive(None, init=False)

    class Changed(Message):
        def __init__(self, choice: Choice, value: Any):
            super().__init__()
            self.choice, self.value = choice, value

    def __init__(self, choices: tuple, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.choices = choices
        self.set_reactive(Choice.value, choices[0])

    def render(self) -> Text:
        label = self.value if isinstance(self.value, str) else json.dumps(self.value)
        others = len(self.choices) > 1
        return Text.assemble(("◀ " if others else "  ", "dim"), (label, "bold"), (" ▶" if others else "", "dim"))

    def action_step(self, step: int) -> None:
        index = self.choices.index(self.value) if self.value in self.choices else 0
        self.value = self.choices[(index + step) % len(self.choices)]

    def on_click(self) -> None:
        self.action_step(1)

    def watch_value(self, value: Any) -> None:
        self.post_message(self.Changed(self, value))


class FieldRow:
    """The widgets of one field: key label, editor, help line (which also shows the error)."""

    def __init__(self, f: Field):
        self.field = f
        self.key_label = Static(f.key, classes="field-key", markup=False)
        self.key_label.tooltip = f.key  # shown whole, where the column cuts it
        if f.type is bool:
            self.editor: Checkbox | Choice | Input = Checkbox("", compact=True, classes="field-editor")
        elif f.choices is not None:
            self.editor = Choice(f.choices, classes="field-editor")
        else:
            self.editor = Input(compact=True, classes="field-editor")
        self.editor.id = field_id(f.key)
        self.help = f"{f.help} ({f.allowed()})"
        self.help_line = Static(self.help, classes="field-help", markup=False)
        self.line = Horizontal(self.key_label, self.editor, classes="field-line")
        self.error = ""

    def widgets(self):
        return self.line, self.help_line

    def set_value(self, value: Any) -> None:
        editor = self.editor
        if isinstance(editor, Checkbox):
            editor.value = value if isinstance(value, bool) else False
            editor.label = json.dumps(editor.value)  # "true"/"false": readable without colour
        elif isinstance(editor, Choice):
            assert self.field.choices is not None  # a Choice edits a field with choices
            editor.value = value if value in self.field.choices else self.field.default
        else:
            editor.value = format_value(self.field, value)

    def get_value(self) -> Any:
        """The typed value; ValueError when the input's text can't be read as the type."""
        if isinstance(self.editor, Input):
            return parse_text(self.field, self.editor.value)
        return self.editor.value

    def set_error(self, message: str | None) -> None:
        message = message or ""
        if message == self.error:
            return
        self.error = message
        text = Text(self.help, style="")
        if message:
            text.append(f"\n✗ {message}", style="bold red")
        self.help_line.update(text)
        for widget in (self.key_label, self.help_line):
            widget.set_class(bool(message), "-invalid")


class ConfigForm(VerticalScroll):
    """Every schema field, grouped. Posts :class:`ConfigForm.Edited` on any change."""

    # A key longer than its column (ONE_CYCLE_SCHEDULE.peak_learning_rate) ends in "…" and a
    # space before its value, never runs into it; the whole key is its tooltip.
    DEFAULT_CSS = """
    ConfigForm .field-key {
        text-wrap: nowrap;
        text-overflow: ellipsis;
        padding-right: 1;
    }
    """

    class Edited(Message):
        """A value in the form changed (typed, toggled or chosen)."""

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self._rows = [FieldRow(f) for f in SCHEMA]
        self._pending = False

    def compose(self) -> ComposeResult:
        group = None
        for row in self._rows:
            if row.field.group != group:
                group = row.field.group
                yield Static(group, classes="group-title")
            yield from row.widgets()

    def rows(self) -> list[FieldRow]:
        return self._rows

    def focus_first(self) -> None:
        """Focus the first field's editor (its cursor shows), scrolled into view: focusing the
        form itself left the focus on the scroll container, where nothing showed it."""
        editor = self._rows[0].editor
        editor.focus()
        self.scroll_to_widget(editor, animate=False)

    def row(self, key: str) -> FieldRow:
        return next(r for r in self._rows if r.field.key == key)

    def load(self, values: dict) -> None:
        for row in self._rows:
            row.set_value(get_dotted(values, row.field.key))

    def read(self) -> tuple[dict, dict[str, str]]:
        """(raw values as nested JSON, {key: why the text can't be read})."""
        raw: dict = {}
        errors: dict[str, str] = {}
        for row in self._rows:
            try:
                set_dotted(raw, row.field.key, row.get_value())
            except ValueError as exc:
                errors[row.field.key] = str(exc)
        return raw, errors

    def show_errors(self, errors: dict[str, str]) -> None:
        for row in self._rows:
            row.set_error(errors.get(row.field.key))

    def _changed(self) -> None:
        # Loading a config changes ~40 editors at once: tell the screen once, after them all.
        if not self._pending:
            self._pending = True
            self.call_after_refresh(self._post_edited)

    def _post_edited(self) -> None:
        self._pending = False
        self.post_message(self.Edited())

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._changed()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        event.checkbox.label = json.dumps(event.value)
        self._changed()

    def on_choice_changed(self, event: Choice.Changed) -> None:
        event.stop()
        self._changed()
