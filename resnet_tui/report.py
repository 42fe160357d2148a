"""A run's result as a Rich table: the same rows for ``resnet-tui show``, ``train`` and the Runs screen."""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Table
from rich.text import Text

from resnet_tui import format as fmt
from resnet_tui.runs import Run, RunInfo
from resnet_tui.training.events import RunStatus

STATUS_STYLES = {"completed": "green", "stopped": "yellow", "failed": "bold red", "running": "cyan",
                 "interrupted": "magenta", "corrupt": "bold magenta"}


def result_rows(info: RunInfo, result: dict | None = None, problems: list[str] = (),
                saved: Run | None = None, show_error: bool = True) -> list[tuple[str, Text | str]]:
    """(label, value) rows describing a run, from its listing info and its result.json (default: the info's);
    with ``saved``, where its files are; ``show_error=False`` when the caller prints the error itself."""
    result = (info.result if result is None else result) or {}
    best = fmt.percent(info.best_val_accuracy)
    if result.get("best_epoch"):
        best += f" (epoch {result['best_epoch']})"
    rows: list[tuple[str, Text | str]] = [
        ("run", info.run_id),
        ("status", Text(info.status, style=STATUS_STYLES.get(info.status, ""))),
        ("why it ended", result.get("stop_reason") or "—"),
        ("config", info.config_name),
        ("started", fmt.date(info.started)),
        ("duration", fmt.duration(info.duration)),
        ("iterations", f"{info.iterations:,}"),
        ("epochs", str(info.epochs)),
        ("parameters", f"{result['param_count']:,}" if result.get("param_count") else "—"),
        ("best val acc", best),
        ("test acc", fmt.percent(info.test_accuracy)),
        ("test loss", fmt.number(result.get("test_loss"))),
        ("dataset", (result.get("dataset") or {}).get("description", "—")),
        ("device", str(result.get("device", "—"))),
        ("versions", _versions(result.get("versions"))),
    ]
    if info.status in (RunStatus.STOPPED, RunStatus.INTERRUPTED):
        rows.append(("resume", f"resnet-tui resume {info.run_id}  (r on the dashboard's Runs screen)"))
    if saved is not None:
        rows.append(("saved in", str(saved.paths.log)))
        final = saved.paths.model / "final.keras"
        if final.exists():
            rows.append(("final model", str(final)))
    rows += [("problem", Text(problem, style="magenta")) for problem in problems]
    if show_error and result.get("error"):
        rows.append(("error", Text(result["error"], style="red")))
    return rows


def one_line(text: str, limit: int = 60) -> str:
    """The first line of ``text``, cut to ``limit`` characters (a listing's summary of an error)."""
    first = (text.strip().splitlines() or [""])[0]
    return first if len(first) <= limit else first[: limit - 1] + "…"


# The runs listing's columns, most important first: (header, cell). A narrow terminal
# drops them from the end; the id is never cut (show, watch and resume need it whole).
RUN_COLUMNS: list[tuple[str, Callable[[RunInfo], str]]] = [
    ("run id", lambda i: i.run_id),
    ("status", lambda i: i.status + (f" ({one_line(i.problem)})" if i.problem else "")),
    ("best val", lambda i: fmt.percent(i.best_val_accuracy)),
    ("test acc", lambda i: fmt.percent(i.test_accuracy)),
    ("iterations", lambda i: f"{i.iterations:,}"),
    ("epochs", lambda i: str(i.epochs)),
    ("config", lambda i: i.config_name),
    ("duration", lambda i: fmt.duration(i.duration)),
    ("started", lambda i: fmt.date(i.started)),
]


def runs_listing(infos: list[RunInfo], width: int | None) -> Table:
    """The runs as a table no wider than ``width`` (None: every column): columns are
    dropped from the least important, and the status column is the one that gives way."""
    cells = [[cell(info) for _, cell in RUN_COLUMNS] for info in infos]
    widths = [max(len(header), *(len(row[k]) for row in cells)) for k, (header, _) in enumerate(RUN_COLUMNS)]
    shown, status_width = len(RUN_COLUMNS), widths[1]
    if width is not None:
        floor = min(widths[1], len("completed"))
        while shown > 2 and _table_width(widths[:shown]) - widths[1] + floor > width:
            shown -= 1
        status_width = max(floor, min(widths[1], width - _table_width(widths[:shown]) + widths[1]))
    table = Table(title="runs")
    for k, (header, _) in enumerate(RUN_COLUMNS[:shown]):
        table.add_column(header, no_wrap=True, overflow="ellipsis",
                         width=status_width if k == 1 else widths[k])
    for info, row in zip(infos, cells, strict=True):
        table.add_row(*(Text(cell, style=STATUS_STYLES.get(info.status, "") if k == 1 else "")
                        for k, cell in enumerate(row[:shown])))
    return table


def _table_width(widths: list[int]) -> int:
    return sum(widths) + 3 * len(widths) + 1  # a box border and one space of padding each side


def stopping_message(stop_at: int | None) -> str:
    """What a stop request answers, the same from every stop path (F7, Ctrl+Q, Ctrl-C, SIGTERM)."""
    if stop_at is None:
        return "stopping before training starts"
    return f"stopping at iteration {stop_at:,} (the step under way finishes), then saving; no test evaluation"


def result_table(info: RunInfo, result: dict | None = None, problems: list[str] = (),
                 saved: Run | None = None, show_error: bool = True) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column()
    for label, value in result_rows(info, result, problems, saved, show_error):
        table.add_row(label, Text(value) if isinstance(value, str) else value)  # values as typed, never markup
    return table


def _versions(versions: dict | str | None) -> str:
    """result.json's library versions; a string when they could not be found."""
    if isinstance(versions, str):
        return versions
    return ", ".join(f"{k} {v}" for k, v in (versions or {}).items()) or "—"
