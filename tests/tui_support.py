"""Helpers and fixtures for the dashboard tests (tests/test_tui*.py).

The fixtures that use them (tui_env, tui_fake_runs, tui_finished_run) are in conftest.py.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from conftest import tiny_values as conftest_tiny_values
from support import REPO

from resnet_tui.config import config_from_values
from resnet_tui.events import EpochEnd, IterationEnd
from resnet_tui.store.atomic import write_json_atomic
from resnet_tui.store.layout import CSV_FILES
from resnet_tui.store.records import columns, to_row
from resnet_tui.store.runs import RunStore

# The dashboard's tiny run, a few seconds on CPU: conftest's tiny config with
# 6 steps of 32 per epoch (192 training images after 64 for validation).
DASHBOARD_RUN = {"DATASET.synthetic_train_count": 256}


def tiny_values(root: Path, **changes) -> dict:
    return conftest_tiny_values(root, **{**DASHBOARD_RUN, **changes})


def write_configs(folder: Path, values: dict, name: str = "tiny") -> Path:
    """The repository's configs plus ``<name>.json`` holding ``values``."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted((REPO / "configs").glob("*.json")):
        shutil.copy(path, folder / path.name)
    (folder / f"{name}.json").write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")
    return folder


async def wait_for(pilot, predicate, timeout: float = 90.0, what: str | Callable[[], str] = "condition") -> None:
    """Let the app run until ``predicate()`` holds (training runs in a thread meanwhile). ``what``
    may be a function: what it returns at the timeout says what was seen instead."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what() if callable(what) else what}")
        await pilot.pause(0.1)


async def select_config(pilot, name: str) -> None:
    """Pick a config the way a user does: focus the list, move to it, press enter."""
    app = pilot.app
    screen = app.get_screen("config")
    names = [p.name[:-5] for p in screen.paths]
    await pilot.press("ctrl+l")
    list_view = screen.query_one("#config-list")
    target = names.index(name)
    while list_view.index != target:
        await pilot.press("down" if (list_view.index or 0) < target else "up")
    await pilot.press("enter")
    await wait_for(pilot, lambda: screen.name_loaded == name, 10, f"{name} to load")
    await pilot.pause()


def dashboard_env(tmp_path: Path) -> SimpleNamespace:
    """A configs folder (the repo's + tiny) and a store, both under tmp_path (fixture ``tui_env``)."""
    values = tiny_values(tmp_path)
    configs = write_configs(tmp_path / "configs", values)
    return SimpleNamespace(root=tmp_path, configs=configs, values=values, store=RunStore.from_values(values))


def make_app(env):
    from resnet_tui.tui.app import ResnetTuiApp

    return ResnetTuiApp(env.configs, store=env.store)


def finished_run_env(root: Path) -> SimpleNamespace:
    """One real tiny training run under ``root``, made by the Trainer itself (fixture ``tui_finished_run``)."""
    from resnet_tui.training.trainer import Trainer

    values = tiny_values(root)
    config = config_from_values(values, "tiny")
    store = RunStore.from_values(values)
    result = Trainer(config, store=store).run()
    assert result.status == "completed", result.error
    configs = write_configs(root / "configs", values)
    return SimpleNamespace(root=root, configs=configs, values=values, store=store, run_id=result.run_id)


# -- hand-written runs with fixed values (deterministic screens) ---------------------------

def _write_records(path: Path, cls, records) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(columns(cls))] + [",".join(to_row(r)) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_fake_run(store: RunStore, run_id: str, config_values: dict, *, status: str | None,
                   iterations: int, steps: int = 10, started: float = 1735732800.0, error: str | None = None,
                   host: str = "elsewhere", test_accuracy: float | None = 0.55,
                   confusion: dict | None = None, first_val_loss: float | None = None) -> None:
    """A run's files as the trainer leaves them, with made-up but smooth numbers.

    ``status=None`` leaves no result.json: a half-written (interrupted) run.
    ``first_val_loss`` replaces epoch 1's validation loss (the demo config's 93.6 outlier).
    """
    roots = store.roots
    write_json_atomic(roots["config"] / run_id / "config.json", config_values)
    config_name = run_id.split("-", 2)[2]
    write_json_atomic(roots["log"] / run_id / "run.json",
                      {"run_id": run_id, "config_name": config_name, "pid": 1, "host": host, "started": started})
    (roots["log"] / run_id / "summary.txt").write_text("Model: \"resnet20\"\n(summary)\n", encoding="utf-8")
    lr0 = config_values["OPTIMIZER"]["learning_rate"]
    iteration_rows, epoch_rows = [], []
    for i in range(1, iterations + 1):
        epoch = (i - 1) // steps + 1
        loss = 2.3 * 0.97 ** i + 0.1 * ((i * 7919) % 13) / 13
        acc = min(0.95, 0.1 + 0.02 * i + 0.03 * ((i * 104729) % 7) / 7)
        lr = lr0 * (0.1 if i > 15 else 1.0)
        iteration_rows.append(IterationEnd(i, epoch, loss, acc, lr, 1000.0, loss, acc, 0.5 * i))
        if i % steps == 0:
            val_loss = first_val_loss if epoch == 1 and first_val_loss is not None else loss * 1.1
            epoch_rows.append(EpochEnd(epoch, i, loss, acc, val_loss, acc * 0.9, lr, 5.0, 0.5 * i))
    _write_records(roots["log"] / run_id / CSV_FILES[IterationEnd], IterationEnd, iteration_rows)
    _write_records(roots["log"] / run_id / CSV_FILES[EpochEnd], EpochEnd, epoch_rows)
    if status is None:
        return
    best = max((r.val_accuracy for r in epoch_rows), default=None)
    result = {"run_id": run_id, "config_name": config_name, "started": started, "status": status,
              "stop_reason": {"completed": f"epoch limit ({len(epoch_rows)} epochs)", "stopped": "stopped by user",
                              "failed": "error: ValueError"}[status],
              "error": error, "finished": started + 0.5 * iterations + 10, "duration": 0.5 * iterations + 10,
              "iterations": iterations, "epochs": len(epoch_rows), "param_count": 274042,
              "best_val_accuracy": best, "best_epoch": len(epoch_rows) if best else None,
              "device": "CPU: test", "versions": {"python": "3.x"},
              "dataset": {"description": "Synthetic (seed 42): 192 train / 64 val / 64 test"}}
    if test_accuracy is not None and status != "failed":
        result.update(test_accuracy=test_accuracy, test_loss=1.25)
    if confusion is not None:
        result["confusion"] = confusion
    write_json_atomic(roots["result"] / run_id / "result.json", result)
    if error:
        (roots["error"] / run_id).mkdir(parents=True, exist_ok=True)
        (roots["error"] / run_id / "error.log").write_text(f"Traceback (most recent call last):\n{error}\n",
                                                          encoding="utf-8")


def fake_confusion(skill: int) -> dict:
    """A confusion record (confusion.py's) of 100 test images per class with fixed, made-up errors:
    class c right 60 + 3c + ``skill`` times; cats mostly taken for dogs, dogs for cats, the rest spread."""
    from resnet_tui.training.confusion import confusion_record

    y_true, y_pred = [], []
    for c in range(10):
        right = min(100, 60 + 3 * c + skill)
        wrong = 100 - right
        big = {3: 5, 5: 3, 1: 9, 9: 1}.get(c, (c + 2) % 10)  # the class it is mostly taken for
        spread = [big] * (wrong * 2 // 3) + [(c + 1 + k % 9) % 10 or 1 for k in range(wrong - wrong * 2 // 3)]
        y_true += [c] * 100
        y_pred += [c] * right + [p if p != c else (c + 1) % 10 for p in spread]
    record = confusion_record(y_true, y_pred)
    record.update(source="end of training", evaluated=1735733000.0)
    return record


def fake_runs_env(tmp_path: Path) -> SimpleNamespace:
    """Four runs written by hand: completed, failed, interrupted (half-written) and a second completed
    (fixture ``tui_fake_runs``)."""
    values = tiny_values(tmp_path)
    store = RunStore.from_values(values)
    configs = write_configs(tmp_path / "configs", values)
    other = json.loads(json.dumps(values))
    other["BATCH_SIZE"] = 64
    other["OPTIMIZER"]["learning_rate"] = 0.05
    write_fake_run(store, "20250101-120000-m8_demo", values, status="completed", iterations=30,
                   confusion=fake_confusion(0))
    write_fake_run(store, "20250102-090000-m8_light", values, status="failed", iterations=7, started=1735808400.0,
                   error="ValueError: the loss became NaN at iteration 7")
    write_fake_run(store, "20250103-080000-m8_demo", values, status=None, iterations=12, started=1735891200.0)
    write_fake_run(store, "20250104-100000-m8_lr05", other, status="completed", iterations=40, started=1735984800.0,
                   test_accuracy=0.61, confusion=fake_confusion(8))
    return SimpleNamespace(root=tmp_path, configs=configs, values=values, store=store)


def text_of(widget) -> str:
    """The plain text a Static shows (str, rich Text or any rich renderable)."""
    import io

    from rich.console import Console
    from rich.text import Text

    content = widget.content
    if isinstance(content, str):
        return content
    if isinstance(content, Text):
        return content.plain
    console = Console(width=250, file=io.StringIO(), record=True)
    console.print(content)
    return console.export_text()


class MessageLog:
    """Every message the app and its screens and widgets dispatch, once each, for
    ``app.run_test(message_hook=log)``: a bubbling message reaches the hook at each stop."""

    def __init__(self) -> None:
        self.messages: list = []  # kept: their ids stay unique
        self._seen: set[int] = set()
        self.notifications: list[tuple[str, str]] = []  # (severity, message) of every toast

    def __call__(self, message) -> None:
        from textual.notifications import Notify

        if id(message) in self._seen:
            return
        self._seen.add(id(message))
        self.messages.append(message)
        if isinstance(message, Notify):
            self.notifications.append((message.notification.severity, message.notification.message))

    def of(self, cls) -> list:
        """The messages of type ``cls`` so far, oldest first."""
        return [m for m in self.messages if isinstance(m, cls)]


async def open_runs(pilot):
    """F4 with the four runs of ``tui_fake_runs`` listed and the first one's details shown;
    returns (screen, table) with the table focused."""
    from resnet_tui.tui.widgets.runs_table import RunsTable

    await pilot.press("f4")
    screen = pilot.app.screen
    table = screen.query_one(RunsTable)
    await wait_for(pilot, lambda: table.row_count == 4 and screen.shown, 20, "the runs and the first run's details")
    # The selected id as a user reads it: whole (a frame drawn before the table sized its columns
    # once kept them at their headers' widths, the ids cut to "2").
    await wait_for(pilot, lambda: str(table.current_run_id()) in screen_text(pilot.app), 20, "the runs at their widths")
    table.focus()
    await pilot.pause()
    await pilot.pause()
    return screen, table


def screen_text(app) -> str:
    """What the terminal shows now, one line per row, all layers (toasts and dialogs included).

    Read from ``app.export_screenshot()``, Textual's public picture of the screen (an SVG that
    Rich writes): each run of text is a ``<text>`` at ``x`` = column x cell width, clipped to its
    line's ``...-line-<row>`` path, with spaces as no-break spaces. (Textual has no public call
    that returns the screen as text; its compositor's strips are private.)
    """
    import html
    import re

    svg = app.export_screenshot()
    cell = 20 * 0.61  # Rich's export_svg: char_height 20, font_aspect_ratio 0.61
    rows: dict[int, dict[int, str]] = {}
    for match in re.finditer(r'<text ([^>]*)>(.*?)</text>', svg, flags=re.S):
        attributes, content = match.groups()
        x = re.search(r'\bx="([0-9.]+)"', attributes)
        line = re.search(r'clip-path="url\(#[^)]*-line-(\d+)\)"', attributes)
        if x is None or line is None:  # the window title
            continue
        text = html.unescape(content).replace("\xa0", " ")
        rows.setdefault(int(line.group(1)), {})[round(float(x.group(1)) / cell)] = text
    lines = []
    for row in range(app.size.height):
        line = ""
        for column, text in sorted(rows.get(row, {}).items()):
            line = line.ljust(column) + text
        lines.append(line.rstrip())
    return "\n".join(lines)


def toast_texts(app) -> list[str]:
    """The text of each toast on screen, as rendered. The toasts are found by their CSS type name,
    ``Toast`` (the name Textual's docs style notifications by): textual.widgets does not export
    the class."""
    return [toast.render().plain for toast in app.screen.query("Toast")]
