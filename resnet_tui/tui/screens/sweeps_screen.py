"""The Sweeps screen (F8): pick a sweep file, start it (F5), watch its trials, stop it (F7).

The trials come from the study's storage, read again every two seconds, so a
sweep other workers (or another dashboard) run shows here too. Each trial's
per-epoch validation accuracy is Optuna's record of it (what the pruner
judged); the best trial's curve is drawn over the others'. The sweep itself
runs in a worker thread through :class:`~resnet_tui.sweep.study.SweepRunner`:
each trial is an ordinary run, listed in Runs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, ListItem, ListView, Static
from textual_plotext import PlotextPlot

from resnet_tui.report import format as fmt
from resnet_tui.tui.screens.base import DashboardScreen

REFRESH_SECONDS = 2.0


class SweepCurves(PlotextPlot):
    """Validation accuracy per epoch of every trial; the best one on top, in its own colour."""

    def show(self, trials: list[Any], best: int | None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("val acc per epoch · best trial bold")
        for trial in sorted(trials, key=lambda t: t.number == best):  # the best drawn last, on top
            points = sorted(trial.intermediate_values.items())
            if points:
                plt.plot([p[0] for p in points], [p[1] for p in points],
                         color="green" if trial.number == best else "gray", marker="braille")
        self.refresh()


class BestSoFar(PlotextPlot):
    """The study's best value after each trial: is the search still finding better?"""

    def show(self, trials: list[Any]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("best val acc against trials")
        best, xs, ys = None, [], []
        for trial in trials:
            if trial.value is not None:
                best = trial.value if best is None else max(best, trial.value)
            if best is not None:
                xs.append(trial.number)
                ys.append(best)
        if xs:
            plt.plot(xs, ys, color="green", marker="braille")
        self.refresh()


class SweepsScreen(DashboardScreen):
    TITLE = "Sweeps"
    BINDINGS = [
        Binding("f5", "start_sweep", "Start", key_display="F5"),  # the sweep: this screen's F5 and F7
        Binding("f7", "stop_sweep", "Stop", key_display="F7"),
        Binding("g", "reload", "Reload"),
    ]

    def __init__(self, sweeps_dir: Path) -> None:
        super().__init__()
        self.sweeps_dir = sweeps_dir
        self.paths: list[Path] = []
        self.spec: Any = None  # the chosen sweep (resnet_tui.sweep.spec.SweepSpec)
        self.url: str | None = None
        self.runner: Any = None  # the sweep this dashboard runs (SweepRunner), while it runs

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="sweeps-main"):
            yield ListView(id="sweep-list")
            with Vertical(id="sweep-body"):
                yield Static("", id="sweep-status")
                yield DataTable(id="sweep-trials", cursor_type="row", zebra_stripes=True)
                with Horizontal(id="sweep-charts"):
                    yield SweepCurves(id="sweep-curves")
                    yield BestSoFar(id="sweep-best")
                yield Static("", id="sweep-importance")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.action_reload()
        self.set_interval(REFRESH_SECONDS, self.refresh_trials)

    # -- choosing a sweep ----------------------------------------------------------
    def action_reload(self) -> None:
        self.paths = sorted(self.sweeps_dir.glob("*.json")) if self.sweeps_dir.is_dir() else []
        files = self.query_one("#sweep-list", ListView)
        files.clear()
        files.extend(ListItem(Static(p.stem)) for p in self.paths)
        if not self.paths:
            self._status(f"no sweep files in {self.sweeps_dir}/ (docs/sweeps.md shows one)", "yellow")
        elif self.spec is None:
            files.index = 0
            self._choose(self.paths[0])

    @on(ListView.Highlighted, "#sweep-list")
    def _highlighted(self, event: ListView.Highlighted) -> None:
        if event.list_view.index is not None and event.list_view.index < len(self.paths):
            self._choose(self.paths[event.list_view.index])

    def _choose(self, path: Path) -> None:
        from resnet_tui.config import ConfigError
        from resnet_tui.sweep.spec import load_sweep
        from resnet_tui.sweep.study import default_storage

        if self.runner is not None:  # the running sweep stays in view
            return
        try:
            spec = load_sweep(path)
        except ConfigError as exc:
            self.spec, self.url = None, None
            self._status(f"✗ {exc}", "red")
            self._show([], None)
            return
        store = self.app.controller.store  # trials' runs go where this dashboard keeps runs
        self.spec = replace(spec, base_values={**spec.base_values, **store.path_values()})
        self.url = spec.storage or default_storage(store, spec.name)
        self.refresh_trials()

    # -- starting and stopping -------------------------------------------------------
    def action_start_sweep(self) -> None:
        if self.app.read_only:
            self.notify("Read-only dashboard: no sweep can start here", severity="warning")
        elif self.spec is None or self.url is None:
            self.notify("Pick a valid sweep file first", severity="warning")
        elif self.runner is not None:
            self.notify(f"Sweep {self.spec.name} is already running here", severity="warning")
        elif self.app.controller.training_here:
            self.notify("A run trains here: stop it (F7 on Training) before starting a sweep", severity="warning")
        else:
            from resnet_tui.sweep.study import SweepRunner, create_study

            self.runner = SweepRunner(self.spec, create_study(self.spec, self.url), self.app.controller.store,
                                      on_trial=lambda report: self.app.call_from_thread(self.refresh_trials))
            self.app.sweep_runner = self.runner
            self.run_worker(self._run_sweep, thread=True, group="sweep", name="sweep")
            self.notify(f"Sweep {self.spec.name} started: each trial is a run (F4 lists them)")
            self.refresh_trials()

    def _run_sweep(self) -> None:
        try:
            self.runner.run()
        finally:
            self.app.call_from_thread(self._sweep_ended)

    def _sweep_ended(self) -> None:
        self.runner = self.app.sweep_runner = None
        self.notify(f"Sweep {self.spec.name} ended", timeout=6)
        self.refresh_trials()

    def action_stop_sweep(self) -> None:
        if self.runner is None:
            self.notify("No sweep runs here", severity="warning")
            return
        self.runner.stop()
        self.notify("Stopping: the trial under way stops at its step and is saved; no new trial starts")

    # -- what it shows -----------------------------------------------------------------
    def refresh_trials(self) -> None:
        if self.spec is None or self.url is None:
            return
        import optuna

        try:
            study = optuna.load_study(study_name=self.spec.name, storage=self.url)
        except KeyError:  # nothing started yet
            self._status(f"{self.spec.name}: {len(self.spec.params)} keys, budget {self.spec.trials} trials; "
                         f"not started (F5)", "dim")
            self._show([], None)
            return
        trials = study.get_trials(deepcopy=False)
        best = self._best(study)
        self._show(trials, best, study)

    @staticmethod
    def _best(study: Any) -> int | None:
        try:
            return int(study.best_trial.number)
        except ValueError:
            return None

    def _show(self, trials: list[Any], best: int | None, study: Any = None) -> None:
        from resnet_tui.sweep.study import RUN_ATTR, counted, importances

        table = self.query_one("#sweep-trials", DataTable)
        table.clear(columns=True)
        self.query_one(SweepCurves).show(trials, best)
        self.query_one(BestSoFar).show(trials)
        if self.spec is None:
            return
        table.add_columns("#", "state", *(p.key.split(".")[-1] for p in self.spec.params), "best val", "epochs", "run")
        for trial in trials:
            reached = trial.value if trial.value is not None else (
                max(trial.intermediate_values.values()) if trial.intermediate_values else None)
            style = "bold green" if trial.number == best else ""
            cells = [str(trial.number), trial.state.name.lower(),
                     *(_short(trial.params.get(p.key, "")) for p in self.spec.params),
                     fmt.percent(reached), str(len(trial.intermediate_values)), str(trial.user_attrs.get(RUN_ATTR, ""))]
            table.add_row(*(Text(c, style=style) for c in cells))
        if study is None:
            return
        state = "running here" if self.runner is not None else "idle"
        head = f"{self.spec.name}: {counted(study)} of {self.spec.trials} trials counted · {state}"
        if best is not None:
            head += f" · best {fmt.percent(study.best_value)} (trial {best})"
        self._status(head, "bold")
        weights = importances(study)
        notes = [f"trial {t.number} {t.user_attrs['note']}" for t in trials
                 if t.state.name == "PRUNED" and t.user_attrs.get("note")]
        lines = ["what mattered: " + ", ".join(f"{k} {v:.0%}" for k, v in weights.items())] if weights else []
        self.query_one("#sweep-importance", Static).update(Text("\n".join(lines + notes[-2:]), style="dim"))

    def _status(self, text: str, style: str) -> None:
        self.query_one("#sweep-status", Static).update(Text(text, style=style))


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
