"""The Training screen's log of warnings and errors."""

from __future__ import annotations

from textual.widgets import RichLog


class LogView(RichLog):
    """A RichLog whose lines wrap at its own width.

    RichLog measures a line against the app's console, whose width is $COLUMNS when
    that is set, not the terminal's: a stray COLUMNS=40 would fold every line at 40.
    A write before the log has a size is deferred by RichLog and comes back here.
    """

    def write(self, content, width: int | None = None, *args, **kwargs) -> LogView:
        if width is None:
            width = self.scrollable_content_region.width or None
        return super().write(content, width, *args, **kwargs)
