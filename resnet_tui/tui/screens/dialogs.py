"""Modal dialogs: confirm, save-as, a line of text to edit, and the help overlay."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; dismisses with True for yes."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No"):
        super().__init__(classes="dialog-screen")
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="dialog-question", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes", compact=True)
                yield Button(f"{self.no} (n)", variant="primary", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class UnsavedEditsScreen(ModalScreen[str]):
    """Edits would be lost: dismisses with "save", "discard" or "cancel"."""

    BINDINGS = [Binding("s", "answer('save')", "Save as"), Binding("d", "answer('discard')", "Discard"),
                Binding("c,escape", "answer('cancel')", "Cancel")]

    def __init__(self, name: str, then: str):
        super().__init__(classes="dialog-screen")
        self.question = f"{name} has unsaved edits. Save them as a new config before {then}?"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="dialog-question", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save as… (s)", variant="success", id="save", compact=True)
                yield Button("Discard (d)", variant="error", id="discard", compact=True)
                yield Button("Cancel (c)", variant="primary", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_answer(self, choice: str) -> None:
        self.dismiss(choice)


class EditTextScreen(ModalScreen[str | None]):
    """One line of text to edit (a run's note, its tags, a file name): Enter saves, dismissing with
    :meth:`result` of the text; Esc cancels (None). ``check(result)`` says why it cannot be saved,
    under the input."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str, placeholder: str = "",
                 check: Callable[[str], str | None] | None = None):
        super().__init__(classes="dialog-screen")
        self.title_text, self.value, self.placeholder = title, value, placeholder
        self.check = check or (lambda text: None)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-question", markup=False)
            yield Input(self.value, placeholder=self.placeholder, id="edit-text")
            yield Static("", id="edit-error", classes="field-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (enter)", variant="success", id="save", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#edit-text", Input).focus()

    def result(self, text: str) -> str:
        """What the typed text saves as."""
        return text

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#edit-error", Static).update(self.check(self.result(event.value)) or "")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self._save()
        else:
            self.dismiss(None)

    def _save(self) -> None:
        text = self.result(self.query_one("#edit-text", Input).value)
        problem = self.check(text)
        if problem:
            self.query_one("#edit-error", Static).update(problem)
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SaveAsScreen(EditTextScreen):
    """Asks for a new config file name; refuses names that exist (nothing is overwritten)."""

    def __init__(self, folder: Path, suggestion: str):
        self.folder = Path(folder)
        super().__init__(f"Save the edited config as a new file in {self.folder}/", suggestion,
                         "name, e.g. m8_lr05", check=self.name_problem)

    def name_problem(self, name: str) -> str | None:
        if not name:
            return "type a name"
        if not NAME_PATTERN.match(name):
            return "use letters, digits, '_', '-' or '.'"
        if (self.folder / f"{name}.json").exists():
            return f"{name}.json already exists; choose another name (nothing is overwritten)"
        return None

    def result(self, text: str) -> str:
        name = text.strip()
        return name[:-5] if name.endswith(".json") else name


class HelpScreen(ModalScreen[None]):
    """Every key of every screen, read from the BINDINGS so it can't go stale."""

    BINDINGS = [Binding("escape,q,f1,question_mark", "close", "Close")]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]):
        super().__init__(classes="dialog-screen")
        self.sections = sections

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for title, keys in self.sections:
            table.add_row(f"[b]{title}[/b]", "", style="")
            for key, description in keys:
                table.add_row(key, description)
            table.add_row("", "")
        with Vertical(classes="dialog help"):
            yield Static("Keys  (esc to close)", classes="dialog-question")
            with VerticalScroll():
                yield Static(table)

    def action_close(self) -> None:
        self.dismiss(None)
