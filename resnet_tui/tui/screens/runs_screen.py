"""Past runs: a sortable, filterable table; the selected run's curves, result, confusion matrix
(where it fails), config, error; several marked runs overlaid on one chart with their config
differences and their per-class accuracies side by side. A run's note and tags are edited here
(n, t), and a run is hidden (h; H lists hidden runs) or deleted (d)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Input, Static, TabbedContent, TabPane
from textual.worker import Worker, get_current_worker

from resnet_tui.config import SCHEMA, get_dotted
from resnet_tui.events import MachineEpoch, RunStatus
from resnet_tui.report import format as fmt
from resnet_tui.report.tables import STATUS_STYLES, confusion_report, per_class_comparison, result_table
from resnet_tui.store.json_files import RunFileError
from resnet_tui.store.notes import parse_tags
from resnet_tui.store.runs import RunBusyError, RunCorruptError, RunInfo, RunNotFoundError, RunStore
from resnet_tui.tui.controller import SessionController, read_only_refusal
from resnet_tui.tui.history import RunHistory
from resnet_tui.tui.messages import ChartOptionsChanged, ResumeRequested, SessionChanged, WatchRequested
from resnet_tui.tui.screens.base import DashboardScreen
from resnet_tui.tui.screens.dialogs import ConfirmScreen, EditTextScreen
from resnet_tui.tui.screens.train_screen import CHART_BINDINGS
from resnet_tui.tui.widgets.charts import ChartGrid
from resnet_tui.tui.widgets.model_summary import ModelSummary
from resnet_tui.tui.widgets.runs_table import RunsTable


def read_listing(stores: list[RunStore]) -> dict[str, tuple[RunInfo, RunStore]]:
    """Every run of ``stores`` (the first store to hold an id wins), newest first. Reads files:
    the timer calls it from a thread."""
    listing: dict[str, tuple[RunInfo, RunStore]] = {}
    for store in stores:
        for info in store.list_runs():
            listing.setdefault(info.run_id, (info, store))
    return listing


REFRESH_SECONDS = 2.0  # how often the shown Runs screen looks for new and changed runs


@dataclass
class RunDetail:
    """Everything shown about one run, read in a worker thread."""

    info: RunInfo
    config: dict | None = None
    result: dict | None = None
    summary: str = ""
    error: str = ""
    history: RunHistory = field(default_factory=RunHistory)
    machine: list[MachineEpoch] = field(default_factory=list)  # machine.csv's rows
    problems: list[str] = field(default_factory=list)


def read_detail(store: RunStore, info: RunInfo) -> RunDetail:
    """Read a run's files; whatever is missing or damaged becomes a problem line, not an exception."""
    detail = RunDetail(info, problems=[info.problem] if info.problem else [])
    run = store.open_run(info.run_id)
    for name, reader in (("config", run.read_config), ("result", run.read_result),
                         ("summary", run.read_summary), ("error", run.read_error), ("machine", run.read_machine)):
        try:
            setattr(detail, name, reader())
        except (OSError, ValueError) as exc:
            problem = str(exc) if isinstance(exc, RunFileError) else f"{name}: unreadable ({exc})"
            if problem not in info.problem:  # the listing said it already
                detail.problems.append(problem)
    try:
        batch_size = (detail.config or {}).get("BATCH_SIZE")
        detail.history = RunHistory.from_records(run.read_iterations(), run.read_epochs(),
                                                 batch_size if isinstance(batch_size, int) else 0)
    except (OSError, ValueError) as exc:  # a metrics file whose header is damaged: RunFileError says which
        detail.problems.append(str(exc))
    return detail


def detail_table(detail: RunDetail) -> Table:
    return result_table(detail.info, detail.result or {}, detail.problems, machine=detail.machine, notes=True)


def tags_problem(text: str) -> str | None:
    """Why the tags input cannot be saved, or None."""
    try:
        parse_tags(text)
    except ValueError as exc:
        return str(exc)
    return None


def marked_runs_table(details: list[RunDetail]) -> Table:
    """Two lines per marked run: id and status, then its accuracies."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim")
    table.add_column()
    for d in details:
        table.add_row(Text(d.info.run_id, style="bold"), Text(d.info.status, style=STATUS_STYLES.get(d.info.status, "")))
        table.add_row("", f"best val {fmt.percent(d.info.best_val_accuracy)} · test {fmt.percent(d.info.test_accuracy)}")
    return table


def config_table(config: dict | None) -> Table | Text:
    if not config:
        return Text("No readable config.json for this run.", style="magenta")
    table = Table.grid(padding=(0, 2))
    table.add_column(style="cyan", no_wrap=True)
    table.add_column()
    for f in SCHEMA:
        table.add_row(f.key, Text(json.dumps(get_dotted(config, f.key))))
    return table


def compare_view(details: list[RunDetail]) -> Group | Table | Text:
    """The config keys that differ, then the per-class test accuracy side by side."""
    configs = compare_table(details)
    if len(details) < 2:
        return configs
    classes = per_class_comparison([(d.info.run_id, d.result) for d in details])
    return Group(configs, Text(""), classes)


def compare_table(details: list[RunDetail]) -> Table | Text:
    """Only the keys whose values differ between the runs."""
    if len(details) < 2:
        return Text("Mark two or more runs (space) to compare their configs and per-class accuracies.", style="dim")
    configs = [d.config or {} for d in details]
    table = Table(title="Config keys that differ", title_justify="left")
    table.add_column("key", style="cyan", no_wrap=True)
    for d in details:
        table.add_column(Text(d.info.run_id), overflow="fold")
    differing = 0
    for f in SCHEMA:
        values = [get_dotted(c, f.key) for c in configs]
        if any(v != values[0] for v in values[1:]):
            differing += 1
            table.add_row(f.key, *(Text(json.dumps(v)) for v in values))
    if not differing:
        return Text("These runs' configs are identical.", style="dim")
    return table


class RunsScreen(DashboardScreen):
    TITLE = "Runs"
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", key_display="/"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("s", "next_sort", "Sort"),
        Binding("space", "mark", "Mark"),
        Binding("c", "clear_marks", "Unmark"),
        Binding("g", "reload", "Reload"),
        Binding("w", "watch", "Watch"),
        Binding("r", "resume", "Resume"),
        Binding("n", "edit_note", "Note"),
        Binding("t", "edit_tags", "Tags"),
        Binding("h", "hide", "Hide"),
        Binding("H", "toggle_hidden", "Hidden runs", show=False),
        Binding("d", "delete", "Delete"),
        *CHART_BINDINGS,
    ]

    def __init__(self, controller: SessionController) -> None:
        super().__init__()
        self.controller = controller  # read only: the session and where runs are (tui/messages.py)
        self.stores: dict[str, RunStore] = {}  # run id -> the store it lives in
        self.details: dict[str, RunDetail] = {}  # finished runs only: they don't change
        self._listing: Worker | None = None  # the last listing started
        self._unseen_options: tuple | None = None  # the smoothing and outliers last told in a toast
        self.shown: list[RunDetail] = []
        self._signature: list | None = None  # what the table last showed, to skip unchanged listings
        self._announced: str | None = None  # the session run last put under the cursor
        self._select: str | None = None  # a run to put under the cursor once a listing shows it

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="runs-top"):
            yield Input(placeholder="/ filter: id, config, note, #tag", id="runs-filter", compact=True)
            yield Static("", id="runs-sort")
        yield RunsTable(id="runs-table")
        with TabbedContent(id="run-tabs"):
            with TabPane("Curves", id="tab-curves"):
                yield ChartGrid(self._brief, id="run-charts")
            with TabPane("Result", id="tab-result"):
                with VerticalScroll():
                    yield Static("", id="run-result")
            with TabPane("Classes", id="tab-classes"):
                with VerticalScroll():
                    yield Static("", id="run-classes")
            with TabPane("Config", id="tab-run-config"):
                with VerticalScroll():
                    yield Static("", id="run-config")
            with TabPane("Compare", id="tab-compare"):
                with VerticalScroll():
                    yield Static("", id="run-compare")
            with TabPane("Error", id="tab-error"):
                with VerticalScroll():
                    yield Static("", id="run-error")
            with TabPane("Model", id="tab-run-model"):
                yield ModelSummary(id="run-summary")
        yield Footer(compact=True, show_command_palette=False)

    def _brief(self) -> ComposeResult:
        with VerticalScroll(classes="chart", id="run-brief-scroll"):
            yield Static("Select a run.", id="run-brief")

    def on_mount(self) -> None:
        self.query_one(RunsTable).focus()
        self._unseen_options = (self.app.chart_options.smoothing, self.app.chart_options.ignore_outliers)
        self.set_interval(REFRESH_SECONDS, self._refresh)

    def on_screen_resume(self) -> None:  # after on_mount, the first time too
        session = self.controller.session
        if session is not None and session.started and session.started.run_id != self._announced:
            self._announced = session.started.run_id  # a run started since the last look: show it
            self._select = self._announced
        self.reload()

    @on(SessionChanged)
    def _session_changed(self, message: SessionChanged) -> None:
        session = message.session
        if message.changes.finished and session is not None and not session.active:
            if session.started:
                self._select = session.started.run_id  # the run that just ended
            self.reload()

    @on(ChartOptionsChanged)
    def _chart_options_changed(self) -> None:
        self.redraw_charts()
        # The chart titles say the scales, x quantity and zoom; a toast says what they cannot
        # (the training screen has a line for all of it).
        options = self.app.chart_options
        unseen = (options.smoothing, options.ignore_outliers)
        if unseen != self._unseen_options:
            self._unseen_options = unseen
            self.notify(options.describe(compact=True), timeout=2)

    # -- the table ----------------------------------------------------------------
    def reload(self) -> None:
        """List the runs again, in a thread: the table changes when the listing comes back."""
        self._listing = self._list_in_background(self.controller.run_stores())

    def _refresh(self) -> None:
        """Timer: while the screen is shown, list the runs again (new, finished, damaged runs
        appear without a key). Not while a listing is under way: on a loaded machine or a slow
        disk one can take longer than the timer, and each would cancel the one before."""
        if self.is_current and (self._listing is None or self._listing.is_finished):
            self.reload()

    @work(thread=True, exclusive=True, group="runs-listing")
    def _list_in_background(self, stores: list[RunStore]) -> None:
        listing = read_listing(stores)
        if not get_current_worker().is_cancelled:  # a newer listing replaced this one
            self.app.call_from_thread(self._show_listing, listing)

    def select_run(self, run_id: str) -> None:
        table = self.query_one(RunsTable)
        if run_id in {i.run_id for i in table.visible()}:
            table.move_cursor(row=table.get_row_index(run_id))

    def _show_listing(self, listing: dict[str, tuple[RunInfo, RunStore]]) -> None:
        signature = [(i.run_id, i.status, i.iterations, i.epochs, i.problem, i.note, i.tags, i.hidden)
                     for i, _ in listing.values()]
        if signature == self._signature:
            self._select_pending()
            return  # nothing changed: leave the table (and its cursor) alone
        self._signature = signature
        self.stores = {run_id: store for run_id, (_, store) in listing.items()}  # replaced whole: workers read it
        infos = {run_id: info for run_id, (info, _) in listing.items()}
        table = self.query_one(RunsTable)
        table.set_runs(list(infos.values()))
        self._update_sort_label()
        if not infos:
            self.query_one("#run-brief", Static).update(Text("No runs yet. Start one with F5.", style="dim"))
        else:
            self.show_selection()
        self._select_pending()

    def _select_pending(self) -> None:
        if self._select is not None and self._select in self.stores:
            self.select_run(self._select)
            self._select = None

    def _update_sort_label(self) -> None:
        table = self.query_one(RunsTable)
        marks = f"  ·  {len(table.marked)} marked" if table.marked else ""
        hidden = table.hidden_count()
        if hidden:
            marks += f"  ·  {hidden} hidden" + (", dimmed (H)" if table.show_hidden else " (H shows)")
        self.query_one("#runs-sort", Static).update(
            f"{len(table.visible())}/{len(table.listed())} runs  ·  {table.describe_sort()} (s, or click a header){marks}")

    @on(Input.Changed, "#runs-filter")
    def _filter(self, event: Input.Changed) -> None:
        self.query_one(RunsTable).set_filter(event.value)
        self._update_sort_label()

    @on(Input.Submitted, "#runs-filter")
    def _filter_done(self) -> None:
        self.query_one(RunsTable).focus()

    @on(DataTable.RowHighlighted, "#runs-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_selection()

    @on(DataTable.HeaderSelected, "#runs-table")
    def _sorted(self) -> None:
        self._update_sort_label()

    def action_focus_filter(self) -> None:
        self.query_one("#runs-filter", Input).focus()

    def action_clear_filter(self) -> None:
        """Esc: the filter is emptied (every run shown again) and the table has the keys."""
        self.query_one("#runs-filter", Input).value = ""  # Input.Changed re-filters
        self.query_one(RunsTable).focus()

    def action_next_sort(self) -> None:
        self.query_one(RunsTable).next_sort()
        self._update_sort_label()

    def action_mark(self) -> None:
        self.query_one(RunsTable).toggle_mark()
        self._update_sort_label()
        self.show_selection()

    def action_clear_marks(self) -> None:
        table = self.query_one(RunsTable)
        table.marked.clear()
        table.rebuild()
        self._update_sort_label()
        self.show_selection()

    def action_watch(self) -> None:
        """Follow the selected running run live on the training screen (F3)."""
        table = self.query_one(RunsTable)
        run_id = table.current_run_id()
        info = next((i for i in table.infos if i.run_id == run_id), None)
        if info is None:
            return
        if info.status != RunStatus.RUNNING:
            why = f" ({info.problem})" if info.status == RunStatus.CORRUPT else ""
            self.notify(f"{run_id} is {info.status}{why}: only a running run can be watched; its curves are here.",
                        severity="warning", markup=False)
            return
        self.post_message(WatchRequested(self.stores[info.run_id], info.run_id))

    @on(DataTable.RowSelected, "#runs-table")
    def _open(self, event: DataTable.RowSelected) -> None:
        """Enter on a run: watch it live when it is running, else go to its details (the tab
        bar: left/right switch tabs, tab into them; esc comes back to the table)."""
        info = next((i for i in self.query_one(RunsTable).infos if i.run_id == event.row_key.value), None)
        if info is not None and info.status == RunStatus.RUNNING:
            self.action_watch()
        else:
            self.query_one("#run-tabs Tabs").focus()

    def action_resume(self) -> None:
        """Continue the selected stopped or interrupted run (same run id)."""
        table = self.query_one(RunsTable)
        run_id = table.current_run_id()
        if run_id is not None:
            self.post_message(ResumeRequested(self.stores[run_id], run_id))

    # -- notes, tags, hiding, deleting ---------------------------------------------------
    def _selected_info(self) -> RunInfo | None:
        table = self.query_one(RunsTable)
        run_id = table.current_run_id()
        return next((i for i in table.infos if i.run_id == run_id), None)

    def _may_change(self, info: RunInfo | None, what: str, done: str | None = None) -> bool:
        """Whether the selected run may be changed: never in a read-only dashboard (the toast says
        it does not ``what``), nor ``done`` (hidden, deleted) while it runs."""
        if info is None:
            return False
        if self.app.read_only:
            self.notify(read_only_refusal(what), severity="warning")
            return False
        if done and info.status == RunStatus.RUNNING:
            self.notify(f"{info.run_id} is running: it cannot be {done} while it trains; stop it first.",
                        severity="warning")
            return False
        return True

    def action_edit_note(self) -> None:
        """n: the selected run's note, in a dialog (Enter saves, Esc cancels)."""
        info = self._selected_info()
        if not self._may_change(info, "edit notes"):
            return
        assert info is not None

        def edited(text: str | None) -> None:
            if text is not None:
                self._change(info, note=text)

        self.app.push_screen(EditTextScreen(f"Note on {info.run_id}", info.note,
                                            placeholder="what this run tried, what it showed"), edited)

    def action_edit_tags(self) -> None:
        """t: the selected run's tags, comma-separated, in a dialog."""
        info = self._selected_info()
        if not self._may_change(info, "edit tags"):
            return
        assert info is not None

        def edited(text: str | None) -> None:
            if text is not None:
                self._change(info, tags=parse_tags(text))

        self.app.push_screen(EditTextScreen(f"Tags of {info.run_id}, separated by commas", ", ".join(info.tags),
                                            placeholder="e.g. baseline, lr-sweep", check=tags_problem), edited)

    def action_hide(self) -> None:
        """h: hide the selected run (H lists hidden runs), or list a hidden one again."""
        info = self._selected_info()
        hide = info is not None and not info.hidden
        if not self._may_change(info, "hide runs", "hidden" if hide else None):
            return
        assert info is not None
        if self._change(info, hidden=hide):
            self.notify(f"Hid {info.run_id}: H lists hidden runs" if hide else f"{info.run_id} is listed again",
                        timeout=3)

    def action_toggle_hidden(self) -> None:
        """H: list hidden runs too, dimmed, or not."""
        self.query_one(RunsTable).toggle_hidden()
        self._update_sort_label()

    def _change(self, info: RunInfo, **changes) -> bool:
        """Write the run's notes.json (Run.update_notes) and show the change at once."""
        try:
            notes = self.stores[info.run_id].open_run(info.run_id).update_notes(**changes)
        except (RunBusyError, RunCorruptError, RunNotFoundError, ValueError, OSError) as exc:
            self.notify(f"Can't change {info.run_id}: {exc}", severity="error")
            return False
        info.note, info.tags, info.hidden = notes.note, list(notes.tags), notes.hidden
        self.query_one(RunsTable).rebuild()
        self._update_sort_label()
        self.show_selection()
        return True

    def action_delete(self) -> None:
        """d: delete the selected run's folders, once a dialog that names them says yes."""
        info = self._selected_info()
        if not self._may_change(info, "delete runs", "deleted"):
            return
        assert info is not None
        store = self.stores[info.run_id]
        try:
            folders = store.open_run(info.run_id).folders()
        except RunNotFoundError as exc:
            self.notify(str(exc), severity="error")
            return
        listed = "\n".join(f"  {folder}" for folder in folders)
        question = (f"Delete run {info.run_id}?\nThese {len(folders)} folders and everything in them go:\n{listed}"
                    if len(folders) != 1 else f"Delete run {info.run_id}?\nThis folder and everything in it goes:\n{listed}")

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(store, info.run_id)

        self.app.push_screen(ConfirmScreen(question, yes="Delete", no="Keep"), answered)

    @work(thread=True, group="run-delete")
    def _delete(self, store: RunStore, run_id: str) -> None:
        try:
            removed = store.open_run(run_id).delete()
        except (RunBusyError, RunNotFoundError, OSError) as exc:
            self.app.call_from_thread(self.notify, f"Can't delete {run_id}: {exc}", severity="error")
            return
        self.app.call_from_thread(self._deleted, run_id, len(removed))

    def _deleted(self, run_id: str, folders: int) -> None:
        table = self.query_one(RunsTable)
        table.marked.discard(run_id)
        self.details.pop(run_id, None)
        table.set_runs([i for i in table.infos if i.run_id != run_id])
        self._update_sort_label()
        self.show_selection()
        self.notify(f"Deleted {run_id} ({folders} folder{'s' * (folders != 1)})", timeout=3)
        self._signature = None
        self.reload()

    def action_reload(self) -> None:
        self.details.clear()
        self._signature = None  # g: redraw even if nothing seems to have changed
        self.reload()

    # -- details -----------------------------------------------------------------
    def selected_ids(self) -> list[str]:
        """The marked runs (the ones the filter hides too: the header counts them all) when two or
        more are marked, else the one under the cursor."""
        table = self.query_one(RunsTable)
        marked = [i.run_id for i in table.infos if i.run_id in table.marked]
        if len(marked) >= 2:
            return marked
        current = table.current_run_id()
        return [current] if current else []

    def show_selection(self) -> None:
        ids = self.selected_ids()
        if ids:
            table = self.query_one(RunsTable)
            infos = {i.run_id: i for i in table.infos}
            self.load_details([(self.stores[i], infos[i]) for i in ids if i in infos and i in self.stores])

    @work(thread=True, exclusive=True, group="run-detail")
    def load_details(self, runs: list[tuple[RunStore, RunInfo]]) -> None:
        worker = get_current_worker()
        details = []
        for store, info in runs:
            if worker.is_cancelled:  # a newer selection replaced this one: read no more
                return
            detail = self.details.get(info.run_id)
            if detail is not None and (detail.info.status, detail.info.problem) == (info.status, info.problem):
                detail.info = info  # its note and tags may be new
            else:
                try:
                    detail = read_detail(store, info)
                except Exception as exc:  # a damaged run must not take the screen down
                    detail = RunDetail(info, problems=[f"unreadable: {exc.__class__.__name__}: {exc}"])
                else:
                    if info.status.finished:  # finished runs don't change
                        self.details[info.run_id] = detail
            details.append(detail)
        # A newer selection replaced this worker (a thread can't be interrupted): drop stale details.
        if not worker.is_cancelled:
            self.app.call_from_thread(self.show_details, details)

    def show_details(self, details: list[RunDetail]) -> None:
        if not details:
            return
        self.shown = details
        self.redraw_charts()
        first = details[0]
        self.query_one("#run-brief", Static).update(detail_table(first) if len(details) == 1
                                                    else marked_runs_table(details))
        self.query_one("#run-result", Static).update(detail_table(first))
        self.query_one("#run-config", Static).update(config_table(first.config))
        self.query_one("#run-classes", Static).update(confusion_report(first.result))
        self.query_one("#run-compare", Static).update(compare_view(details))
        error = first.error or (first.result or {}).get("error") or ""
        self.query_one("#run-error", Static).update(
            Text(error, style="red") if error else Text("No error recorded for this run.", style="dim"))
        self.query_one("#run-summary", ModelSummary).show(first.summary)

    def redraw_charts(self, force: bool = False) -> None:
        runs = [(d.info.run_id, d.history) for d in self.shown]
        self.query_one("#run-charts", ChartGrid).show(runs, self.app.chart_options, force)
