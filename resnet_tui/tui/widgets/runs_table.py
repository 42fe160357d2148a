"""The table of past runs: sortable, filterable (notes and tags too), with marks for comparing;
hidden runs are left out unless asked for, then dimmed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from resnet_tui.report.tables import RUN_FIELDS, RUN_ORDER, STATUS_STYLES, with_tags
from resnet_tui.store.notes import matches_filter
from resnet_tui.store.runs import RunInfo


@dataclass(frozen=True)
class Column:
    key: str  # in report.RUN_FIELDS: the header and the cell text
    sort: Callable[[RunInfo], Any]  # None: no value, listed last in either order
    right: bool = False  # numbers line up on the right

    @property
    def label(self) -> str:
        return RUN_FIELDS[self.key][0]

    def cell(self, info: RunInfo) -> Text:
        style = STATUS_STYLES.get(info.status, "") if self.key == "status" else "cyan" if self.key == "tags" else ""
        if info.hidden:
            style = f"{style} dim".strip()
        return Text(RUN_FIELDS[self.key][1](info), style=style, justify="right" if self.right else "left")


COLUMN_BY_KEY = {c.key: c for c in (
    Column("run", lambda i: i.run_id),
    Column("config", lambda i: i.config_name),
    Column("status", lambda i: i.status),
    Column("epochs", lambda i: i.epochs, right=True),
    Column("iterations", lambda i: i.iterations, right=True),
    Column("best_val", lambda i: i.best_val_accuracy, right=True),
    Column("test", lambda i: i.test_accuracy, right=True),
    Column("duration", lambda i: i.duration, right=True),
    Column("date", lambda i: i.started),
    Column("tags", lambda i: " ".join(i.tags).lower() or None),
)}
COLUMNS = tuple(COLUMN_BY_KEY[key] for key in RUN_ORDER)  # most important first: 80 columns show id, status, best val


class RunsTable(DataTable):
    """Rows keyed by run id. Sorting and filtering rebuild the rows from ``infos``."""

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.infos: list[RunInfo] = []
        self.filter_text = ""
        self.sort_key = "date"
        self.sort_reverse = True  # newest first
        self.marked: set[str] = set()
        self.show_hidden = False  # H: hidden runs listed too, dimmed

    def on_mount(self) -> None:
        self.rebuild()  # the headers, before the first listing arrives

    def set_runs(self, infos: list[RunInfo]) -> None:
        self.infos = list(infos)
        known = {i.run_id for i in infos}
        self.marked &= known
        self.rebuild()

    # This method shadows Textual's DOMNode.visible (a bool property); kept as it is in a typing-only change.
    def visible(self) -> list[RunInfo]:  # type: ignore[override]
        rows = [i for i in self.listed()
                if matches_filter(self.filter_text, (i.run_id, i.config_name, i.status, i.note), i.tags)]
        key = COLUMN_BY_KEY[self.sort_key].sort
        present = sorted((i for i in rows if key(i) is not None), key=key, reverse=self.sort_reverse)
        return present + [i for i in rows if key(i) is None]

    def listed(self) -> list[RunInfo]:
        """The runs the table can show: hidden ones only while ``show_hidden``."""
        return [i for i in self.infos if self.show_hidden or not i.hidden]

    def hidden_count(self) -> int:
        return sum(i.hidden for i in self.infos)

    def shown_columns(self) -> list[Column]:
        """COLUMNS, and the tags after the config's name when a listed run has tags."""
        return [COLUMN_BY_KEY[key] for key in with_tags(RUN_ORDER, self.listed())]

    def rebuild(self) -> None:
        current = self.current_run_id()
        infos = self.visible()
        columns = self.shown_columns()
        rows = [[self._run_cell(info), *(column.cell(info) for column in columns[1:])] for info in infos]
        headers = [Text(column.label + self._arrow(column)) for column in columns]
        # Each column as wide as its widest cell, set here: DataTable sizes auto-width columns only
        # when it is next idle, and a frame drawn before that kept every cell at its header's width
        # until the cursor moved (Textual issue #4470; seen on a busy machine).
        self.clear(columns=True)
        for k, (column, header) in enumerate(zip(columns, headers)):
            self.add_column(header, key=column.key, width=max([header.cell_len, *(row[k].cell_len for row in rows)]))
        for info, cells in zip(infos, rows):
            self.add_row(*cells, key=info.run_id)
        if current is not None and current in self.rows:
            self.move_cursor(row=self.get_row_index(current))
        self.refresh()

    def _run_cell(self, info: RunInfo) -> Text:
        marked = info.run_id in self.marked
        style = " ".join(s for s in ("bold" if marked else "", "dim" if info.hidden else "") if s)
        return Text(("● " if marked else "  ") + info.run_id, style=style)

    def _arrow(self, column: Column) -> str:
        """The sort column's header shows its direction."""
        if column.key != self.sort_key:
            return ""
        return " ▼" if self.sort_reverse else " ▲"

    def current_run_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # cursor outside the rows
            return None

    def sort_by(self, key: str) -> None:
        """Sort by a column; the same column again flips the order."""
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_key, self.sort_reverse = key, key in ("date", "best_val", "test", "epochs", "iterations")
        self.rebuild()

    def next_sort(self) -> None:
        keys = [c.key for c in self.shown_columns()]
        at = keys.index(self.sort_key) if self.sort_key in keys else -1
        self.sort_by(keys[(at + 1) % len(keys)])

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self.rebuild()

    def toggle_hidden(self) -> None:
        """H: list hidden runs too (dimmed), or not."""
        self.show_hidden = not self.show_hidden
        self.rebuild()

    def toggle_mark(self, run_id: str | None = None) -> None:
        run_id = run_id or self.current_run_id()
        if run_id is None:
            return
        self.marked ^= {run_id}
        self.rebuild()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = event.column_key.value
        assert key is not None  # rebuild() gives every column a key
        self.sort_by(key)

    def describe_sort(self) -> str:
        label = COLUMN_BY_KEY[self.sort_key].label
        return f"sorted by {label} {'▼' if self.sort_reverse else '▲'}"
