"""A run's result as a Rich table: the same rows for ``resnet-tui show``, ``train`` and the Runs screen."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from resnet_tui import format as fmt
from resnet_tui.runs import RunInfo
from resnet_tui.training.events import RunStatus

STATUS_STYLES = {"completed": "green", "stopped": "yellow", "failed": "bold red", "running": "cyan",
                 "interrupted": "magenta", "corrupt": "bold magenta"}


def result_rows(info: RunInfo, result: dict | None = None, problems: list[str] = ()) -> list[tuple[str, Text | str]]:
    """(label, value) rows describing a run, from its listing info and its result.json (default: the info's)."""
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
    rows += [("problem", Text(problem, style="magenta")) for problem in problems]
    if result.get("error"):
        rows.append(("error", Text(result["error"], style="red")))
    return rows


def stopping_message(stop_at: int | None) -> str:
    """What a stop request answers, the same from every stop path (F7, Ctrl+Q, Ctrl-C, SIGTERM)."""
    if stop_at is None:
        return "stopping before training starts"
    return f"stopping at iteration {stop_at:,} (the step under way finishes), then saving; no test evaluation"


def result_table(info: RunInfo, result: dict | None = None, problems: list[str] = ()) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column()
    for label, value in result_rows(info, result, problems):
        table.add_row(label, Text(value) if isinstance(value, str) else value)  # values as typed, never markup
    return table


def _versions(versions: dict | str | None) -> str:
    """result.json's library versions; a string when they could not be found."""
    if isinstance(versions, str):
        return versions
    return ", ".join(f"{k} {v}" for k, v in (versions or {}).items()) or "—"
