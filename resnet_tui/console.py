"""The console the command line prints on (Rich), the same for every subcommand."""

from rich.console import Console, ConsoleDimensions

UNWRAPPED = 100_000  # columns: wider than any line the CLI prints


class CliConsole(Console):
    """Rich's console, made for output that people and scripts both read.

    Every print is soft-wrapped: a message is one line, which a terminal folds at its
    own edge, so a path or a figure copied from the screen comes out whole. Piped or
    redirected (``| tee log``, a CI job, nohup), nothing is fitted to 80 columns or to
    $COLUMNS: tables take their natural width and every line stays as long as it is,
    so scripts can read it back. On a terminal, tables fit the terminal's width.
    """

    def __init__(self, **kwargs):
        super().__init__(soft_wrap=True, **kwargs)

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        return size if self.is_terminal else ConsoleDimensions(UNWRAPPED, size.height)
