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
        self.forced_terminal: bool | None = kwargs.get("force_terminal")

    def on_a_terminal(self) -> bool:
        """Whether the output goes to a terminal. Rich's ``is_terminal`` also says yes under
        FORCE_COLOR, which asks for colours in a pipe, not for lines cut to a width."""
        if self.forced_terminal is not None:
            return self.forced_terminal
        try:
            return self.file.isatty()
        except (AttributeError, ValueError):  # no isatty, or a closed file
            return False

    # Rich's Console.size can also be set; this one is only read (adding a setter would change behaviour).
    @property  # type: ignore[misc]
    def size(self) -> ConsoleDimensions:
        size = super().size
        return size if self.on_a_terminal() else ConsoleDimensions(UNWRAPPED, size.height)
