"""A run's result as Rich renderables, the same for ``resnet-tui show``, ``train`` and the Runs screen:
its result table, and its confusion matrix as a heatmap."""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Sequence

from rich.color import Color
from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text

from resnet_tui.config import default_values
from resnet_tui.events import MachineEpoch, RunStatus
from resnet_tui.report import format as fmt
from resnet_tui.store.notes import shown_tags
from resnet_tui.store.runs import Run, RunInfo, RunStore

STATUS_STYLES = {"completed": "green", "stopped": "yellow", "failed": "bold red", "running": "cyan",
                 "interrupted": "magenta", "corrupt": "bold magenta"}


def resume_command(run_id: str, store: RunStore | None = None) -> str:
    """The command that resumes ``run_id`` of ``store``, as it works when pasted: with
    ``--artifact`` when the run is under a folder other than the default one."""
    command = f"resnet-tui resume {run_id}"
    if store is None or store.roots == RunStore.from_values(default_values()).roots:
        return command
    artifact = store.roots["log"].parent
    if store.roots == RunStore.under(artifact).roots:
        return f"{command} --artifact {shlex.quote(str(artifact))}"
    return command


def result_rows(info: RunInfo, result: dict | None = None, problems: Sequence[str] = (),
                saved: Run | None = None, show_error: bool = True,
                machine: Sequence[MachineEpoch] = (), store: RunStore | None = None,
                notes: bool = False) -> list[tuple[str, Text | str]]:
    """(label, value) rows describing a run, from its listing info and its result.json (default: the info's);
    with ``saved``, where its files are; ``show_error=False`` when the caller prints the error itself;
    ``machine``, its machine.csv rows (none for a run older than it: no row); ``notes``: its note
    and tags too, when it has them."""
    result = (info.result if result is None else result) or {}
    best = fmt.percent(info.best_val_accuracy)
    if result.get("best_epoch"):
        best += f" (epoch {result['best_epoch']})"
    rows: list[tuple[str, Text | str]] = [
        ("run", info.run_id),
        ("status", Text(info.status, style=STATUS_STYLES.get(info.status, ""))),
        ("why it ended", result.get("stop_reason") or "—"),
        ("config", info.config_name),
        *(note_rows(info) if notes else []),
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
    if machine:
        rows.append(("machine", machine_summary(machine)))
    if info.status in (RunStatus.STOPPED, RunStatus.INTERRUPTED):
        where = store or (saved.store if saved is not None else None)
        rows.append(("resume", f"{resume_command(info.run_id, where)}  (r on the dashboard's Runs screen)"))
    if saved is not None:
        rows.append(("saved in", str(saved.paths.log)))
        final = saved.paths.final_model
        if final.exists():
            rows.append(("final model", str(final)))
    rows += [("problem", Text(problem, style="magenta")) for problem in problems]
    if show_error and result.get("error"):
        rows.append(("error", Text(result["error"], style="red")))
    return rows


def note_rows(info: RunInfo) -> list[tuple[str, Text | str]]:
    """The run's note, tags and hidden flag as (label, value) rows; none for a run without them."""
    rows: list[tuple[str, Text | str]] = []
    if info.note:
        rows.append(("note", Text(info.note, style="italic")))
    if info.tags:
        rows.append(("tags", Text(shown_tags(info.tags), style="cyan")))
    if info.hidden:
        rows.append(("hidden", Text("yes: listed only by `resnet-tui runs --all` (H on the Runs screen)", style="dim")))
    return rows


def one_line(text: str, limit: int = 60) -> str:
    """The first line of ``text``, cut to ``limit`` characters (a listing's summary of an error)."""
    first = (text.strip().splitlines() or [""])[0]
    return first if len(first) <= limit else first[: limit - 1] + "…"


# A run's fields as the listings show them (the CLI's `runs`, the dashboard's Runs table):
# key -> (header, cell text).
RUN_FIELDS: dict[str, tuple[str, Callable[[RunInfo], str]]] = {
    "run": ("run", lambda i: i.run_id),
    "config": ("config", lambda i: i.config_name),
    "status": ("status", lambda i: i.status),
    "epochs": ("epochs", lambda i: str(i.epochs)),
    "iterations": ("iterations", lambda i: f"{i.iterations:,}"),
    "best_val": ("best val", lambda i: fmt.percent(i.best_val_accuracy)),
    "test": ("test acc", lambda i: fmt.percent(i.test_accuracy)),
    "duration": ("duration", lambda i: fmt.duration(i.duration)),
    "date": ("date", lambda i: fmt.date(i.started)),
    "tags": ("tags", lambda i: shown_tags(i.tags)),
}

# The run columns, most important first, in the CLI listing and the dashboard's table: a
# narrow terminal drops them from the end (the id, status and best accuracy stay in view);
# the id is never cut (show, watch and resume need it whole).
RUN_ORDER = ("run", "status", "best_val", "test", "iterations", "epochs", "config", "duration", "date")
# The CLI's status cell adds the problem in one line (the dashboard shows it beside the table).
RUN_COLUMNS: list[tuple[str, Callable[[RunInfo], str]]] = [RUN_FIELDS[key] for key in RUN_ORDER]
RUN_COLUMNS[1] = ("status", lambda i: i.status + (f" ({one_line(i.problem)})" if i.problem else ""))
# Where the tags column goes in both listings, when a listed run has tags (after the config's name).
TAGS_AFTER = "config"


def with_tags(keys: Sequence[str], infos: Sequence[RunInfo]) -> list[str]:
    """``keys`` (RUN_FIELDS') with "tags" after the config's name when one of ``infos`` has tags."""
    keys = list(keys)
    if any(info.tags for info in infos):
        keys.insert(keys.index(TAGS_AFTER) + 1, "tags")
    return keys


def runs_listing(infos: list[RunInfo], width: int | None) -> Table:
    """The runs as a table no wider than ``width`` (None: every column): columns are
    dropped from the least important, and the status column is the one that gives way,
    down to its statuses whole ("interrupted"): a problem's words are cut, never the status.
    A tags column comes after the config's when a run has tags; hidden runs are dimmed."""
    by_key = dict(zip(RUN_ORDER, RUN_COLUMNS, strict=True))
    run_columns = [by_key.get(key) or RUN_FIELDS[key] for key in with_tags(RUN_ORDER, infos)]
    cells = [[cell(info) for _, cell in run_columns] for info in infos]
    widths = [max(len(header), *(len(row[k]) for row in cells)) for k, (header, _) in enumerate(run_columns)]
    shown, status_width = len(run_columns), widths[1]
    if width is not None:
        floor = max(len(str(info.status)) for info in infos) if infos else len("status")
        while shown > 2 and _table_width(widths[:shown]) - widths[1] + floor > width:
            shown -= 1
        status_width = max(floor, min(widths[1], width - _table_width(widths[:shown]) + widths[1]))
    table = Table(title="runs")
    for k, (header, _) in enumerate(run_columns[:shown]):
        table.add_column(header, no_wrap=True, overflow="ellipsis",
                         width=status_width if k == 1 else widths[k])
    for info, row in zip(infos, cells, strict=True):
        table.add_row(*(Text(cell, style=STATUS_STYLES.get(info.status, "") if k == 1 else "")
                        for k, cell in enumerate(row[:shown])), style="dim" if info.hidden else None)
    return table


def _table_width(widths: list[int]) -> int:
    return sum(widths) + 3 * len(widths) + 1  # a box border and one space of padding each side


def stopping_message(stop_at: int | None, evaluating: bool = False) -> str:
    """What a stop request answers, the same from every stop path (F7, Ctrl+Q, Ctrl-C, SIGTERM)."""
    if evaluating:  # training has ended: the run is complete, and its test figures are on their way
        return "training has ended: the test evaluation under way finishes, then the run is recorded as completed"
    if stop_at is None:
        return "stopping before training starts"
    return f"stopping at iteration {stop_at:,} (the step under way finishes), then saving; no test evaluation"


def result_table(info: RunInfo, result: dict | None = None, problems: Sequence[str] = (),
                 saved: Run | None = None, show_error: bool = True, machine: Sequence[MachineEpoch] = (),
                 store: RunStore | None = None, notes: bool = False) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column()
    for label, value in result_rows(info, result, problems, saved, show_error, machine, store, notes):
        table.add_row(label, Text(value) if isinstance(value, str) else value)  # values as typed, never markup
    return table


def machine_summary(rows: Sequence[MachineEpoch]) -> str:
    """A run's machine.csv in one line, its epochs weighed by their samples: mean CPU (100% is one
    core), peak RSS, mean RAM in use, and the GPUs' mean utilization and memory, hottest temperature:
    'CPU 180% · RSS peak 1.21 GB · RAM 9.1/23.5 GB · GPU 95% 10.1/80.0 GB max 70°C'."""
    weights = [max(row.samples, 1) for row in rows]
    mean = lambda values: sum(v * w for v, w in zip(values, weights)) / sum(weights)
    parts = [f"CPU {mean([r.cpu_percent for r in rows]):.0f}%",
             f"RSS peak {fmt.gigabytes(max(r.rss_peak for r in rows), 2)} GB",
             f"RAM {fmt.gigabytes(mean([r.ram_used for r in rows]))}/{fmt.gigabytes(max(r.ram_total for r in rows))} GB"]
    gpu_rows = [r for r in rows if r.gpus and r.gpu_utilization is not None]
    if gpu_rows:
        weights = [max(r.samples, 1) for r in gpu_rows]
        count = max(r.gpus for r in gpu_rows)
        memory = [r.gpu_memory_used if r.gpu_memory_used is not None else math.nan for r in gpu_rows]
        total = max((r.gpu_memory_total or 0.0) for r in gpu_rows)
        hottest = max((r.gpu_temperature for r in gpu_rows if r.gpu_temperature is not None), default=None)
        parts.append(f"{'GPU' if count == 1 else f'{count} GPUs'} {mean([r.gpu_utilization for r in gpu_rows]):.0f}% "
                     f"{fmt.gigabytes(mean(memory))}/{fmt.gigabytes(total)} GB"
                     + ("" if hottest is None else f" max {hottest:.0f}°C"))
    return " · ".join(parts)


def machine_rows(run: Run) -> list[MachineEpoch]:
    """The run's machine.csv rows for a report; none when it is unreadable (the report goes on without)."""
    try:
        return run.read_machine()
    except (OSError, ValueError):
        return []


def _versions(versions: dict | str | None) -> str:
    """result.json's library versions; a string when they could not be found."""
    if isinstance(versions, str):
        return versions
    return ", ".join(f"{k} {v}" for k, v in (versions or {}).items()) or "—"


# -- where a model fails: the confusion matrix (confusion.py's record in result.json) --------------

# Column headers short enough for 10 classes and the per-class accuracy in 80 columns.
SHORT_CLASS_NAMES = {"airplane": "plane", "automobile": "auto"}
CELL_WIDTH = 5  # "1,000" images at most per CIFAR-10 test class; the header names fit too
_BLANK = (30, 30, 30)  # the shade a rate of 0 starts from
_RIGHT, _WRONG = (20, 140, 60), (200, 40, 40)


def short_class_name(name: str) -> str:
    return SHORT_CLASS_NAMES.get(name, name[:CELL_WIDTH])


def _shade(rate: float, diagonal: bool) -> Style:
    """Green for the diagonal by its rate; red for an error, by the square root of its rate over
    25% (errors seldom pass that share of a row): 1% shows faintly, 5% clearly, 25% and more in full."""
    weight = max(0.0, min(1.0, rate if diagonal else math.sqrt(rate / 0.25)))
    target = _RIGHT if diagonal else _WRONG
    rgb = tuple(round(a + (b - a) * weight) for a, b in zip(_BLANK, target))
    return Style(bgcolor=Color.from_rgb(*rgb), color="white", bold=diagonal)


def confusion_heatmap(record: dict) -> Table:
    """The matrix as a heatmap: a row per true class (its name and accuracy), a column per
    predicted class; each cell the number of images, shaded by its share of the row."""
    from resnet_tui.training.confusion import row_rates

    names, matrix = record["classes"], record["matrix"]
    rates = row_rates(matrix)
    table = Table(box=None, padding=(0, 0, 0, 1), pad_edge=False, show_edge=False, collapse_padding=True)
    table.add_column(Text("true \\ pred", style="dim"), no_wrap=True)
    for name in names:
        table.add_column(Text(short_class_name(name)), justify="right", width=CELL_WIDTH + 1, no_wrap=True)  # + the padding
    table.add_column(Text("acc"), justify="right", no_wrap=True)
    for t, name in enumerate(names):
        cells = []
        for p, count in enumerate(matrix[t]):
            text = f"{count:,}" if count else "·"
            cells.append(Text(text, style=_shade(rates[t][p], t == p)) if count else Text(text, style="dim"))
        accuracy = record["per_class_accuracy"][t]
        table.add_row(Text(name), *cells, Text("—" if accuracy is None else f"{accuracy:.1%}"))
    return table


def confused_pairs(record: dict, k: int = 3) -> Text:
    """"most confused: cat → dog 12% (120 of 1,000), ..." (true class → what it was taken for)."""
    from resnet_tui.training.confusion import most_confused

    names, matrix = record["classes"], record["matrix"]
    pairs = most_confused(matrix, k)
    if not pairs:
        return Text("no image was misclassified", style="dim")
    text = Text("most confused: ", style="bold")
    for i, pair in enumerate(pairs):
        if i:
            text.append(" · ")
        text.append(f"{names[pair.true]} → {names[pair.predicted]} {pair.rate:.0%}", style="bold red")
        text.append(f" ({pair.count:,} of {sum(matrix[pair.true]):,})", style="dim")
    return text


def confusion_report(result: dict | None) -> Group | Text:
    """Heading, heatmap and the most confused pairs of a run's result; a note when it has none."""
    from resnet_tui.training.confusion import read_record

    record = read_record(result)
    if record is None:
        return Text("No confusion matrix: it is recorded when a run completes; for a stopped run's saved model "
                    "run `resnet-tui evaluate RUN`.", style="dim")
    accuracy = fmt.percent(record.get("accuracy"))
    heading = Text.assemble(
        (f"{record.get('split', 'test').capitalize()} split, {record['images']:,} images, accuracy {accuracy}", "bold"),
        (f" ({record['source']})" if record.get("source") else "", "dim"),
        ("\nrows: true class · columns: predicted · shade: share of the row", "dim"))
    return Group(heading, confusion_heatmap(record), confused_pairs(record))


def per_class_comparison(runs: list[tuple[str, dict | None]]) -> Table | Text:
    """Per-class test accuracy of several runs side by side (label, result); with two, their difference."""
    from resnet_tui.training.confusion import read_record

    records = [(label, read_record(result)) for label, result in runs]
    names = next((r["classes"] for _, r in records if r is not None), None)
    if names is None:
        return Text("None of these runs has a confusion matrix (recorded when a run completes, "
                    "or by `resnet-tui evaluate RUN`).", style="dim")
    table = Table(title="Per-class test accuracy", title_justify="left")
    table.add_column("class", no_wrap=True)
    for label, _ in records:
        table.add_column(Text(label), justify="right", overflow="fold")
    two = len(records) == 2 and all(r is not None and r["classes"] == names for _, r in records)
    if two:
        table.add_column("Δ", justify="right")
    for c, name in enumerate(names):
        values = [r["per_class_accuracy"][c] if r is not None and r["classes"] == names else None for _, r in records]
        row = [Text(name)] + [Text(fmt.percent(v)) for v in values]
        if two:
            row.append(_delta(*values))
        table.add_row(*row)
    overall = [r.get("accuracy") if r else None for _, r in records]
    row = [Text("all", style="bold")] + [Text(fmt.percent(v), style="bold") for v in overall]
    if two:
        row.append(_delta(*overall))
    table.add_row(*row)
    return table


def _delta(a: float | None, b: float | None) -> Text:
    if a is None or b is None:
        return Text("—")
    return Text(f"{b - a:+.1%}", style="green" if b > a else "red" if b < a else "")
