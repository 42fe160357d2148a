"""A sweep as text: its trials, its best, and which keys mattered."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from resnet_tui.report import format as fmt
from resnet_tui.sweep.spec import SweepSpec
from resnet_tui.sweep.study import RUN_ATTR, counted, importances


def _value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def trials_table(spec: SweepSpec, study: Any) -> Table:
    """One row per trial: state, the searched values, best val acc, epochs run, its run, why it ended."""
    table = Table(title=f"sweep {spec.name}: {counted(study)} of {spec.trials or '∞'} trials counted")
    for column in ("#", "state", *(p.key.split(".")[-1] for p in spec.params), "best val", "epochs", "run", "note"):
        table.add_column(column, justify="right" if column in ("#", "best val", "epochs") else "left",
                         overflow="fold")
    best = _best_number(study)
    for trial in study.get_trials(deepcopy=False):
        value = trial.value if trial.value is not None else (max(trial.intermediate_values.values())
                                                              if trial.intermediate_values else None)
        row = [str(trial.number), trial.state.name.lower(),
               *(_value(trial.params.get(p.key, "")) for p in spec.params),
               "" if value is None else fmt.percent(value), str(trial.user_attrs.get("epochs", "")),
               str(trial.user_attrs.get(RUN_ATTR, "")), str(trial.user_attrs.get("note", ""))]
        table.add_row(*row, style="bold green" if trial.number == best else None)
    return table


def _best_number(study: Any) -> int | None:
    try:
        return int(study.best_trial.number)
    except ValueError:  # no completed trial yet
        return None


def summary_lines(spec: SweepSpec, study: Any) -> list[Text]:
    """The best trial and the keys that mattered, in a line each."""
    number = _best_number(study)
    if number is None:
        return [Text("no trial has completed yet", style="yellow")]
    best = study.best_trial
    values = ", ".join(f"{key}={_value(value)}" for key, value in best.params.items())
    lines = [Text(f"best: trial {number}, val acc {fmt.percent(best.value)} ({values}), "
                  f"run {best.user_attrs.get(RUN_ATTR, '?')}", style="bold")]
    weights = importances(study)
    if weights:
        lines.append(Text("what mattered: " + ", ".join(f"{key} {share:.0%}" for key, share in weights.items())))
    return lines
