"""The model summary: Keras' own table, in a scrollable read-only text view."""

from __future__ import annotations

from textual.widgets import TextArea


class ModelSummary(TextArea):
    """Read-only and unwrapped, so the 110-column Keras table scrolls sideways."""

    def __init__(self, placeholder: str = "", *, id: str | None = None, classes: str | None = None):
        super().__init__("", read_only=True, soft_wrap=False, show_line_numbers=False,
                         highlight_cursor_line=False, compact=True, placeholder=placeholder,
                         id=id, classes=classes)

    def show(self, text: str) -> None:
        if text != self.text:
            self.load_text(text)
