"""The Sweeps screen (F8): pick a sweep file, F5 runs its trials (real runs), the table and curves follow
the study; a broken file says what is wrong and starts nothing. Snapshots of a fixed study."""

from __future__ import annotations

import json

import optuna
import pytest
from textual.widgets import DataTable
from tui_support import make_app, text_of, wait_for

from resnet_tui.sweep.spec import load_sweep
from resnet_tui.sweep.study import create_study, default_storage


def write_sweep(env, name: str = "tiny_lr", **changes) -> None:
    sweeps = env.root / "sweeps"
    sweeps.mkdir(exist_ok=True)
    sweep = {"base": "tiny.json", "params": {"OPTIMIZER.learning_rate": {"low": 0.01, "high": 0.5, "log": True}},
             "trials": 2, "seed": 3, "pruner": "none", **changes}
    (sweeps / f"{name}.json").write_text(json.dumps(sweep), encoding="utf-8")


def rows(table: DataTable) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def test_f5_on_the_sweeps_screen_runs_the_trials_as_runs_and_shows_them(tui_env):
    write_sweep(tui_env)
    app = make_app(tui_env)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("f8")
        screen = app.get_screen("sweeps")
        assert app.screen is screen
        status = screen.query_one("#sweep-status")
        assert "tiny_lr: 1 keys, budget 2 trials; not started (F5)" in text_of(status)
        await pilot.press("f5")
        await wait_for(pilot, lambda: app.sweep_runner is not None, 10, "the sweep to start")
        await wait_for(pilot, lambda: app.sweep_runner is None, 240, "the sweep to end")
        await pilot.pause(0.3)
        table = screen.query_one("#sweep-trials", DataTable)
        shown = rows(table)
        assert [r[:2] for r in shown] == [["0", "complete"], ["1", "complete"]]
        runs = {info.run_id: info for info in tui_env.store.list_runs()}
        assert {r[-1] for r in shown} <= set(runs) and len(runs) == 2  # each trial a run in the store, listed
        assert "2 of 2 trials counted · idle · best" in text_of(status)


async def test_a_broken_sweep_file_says_what_is_wrong_and_f5_starts_nothing(tui_env):
    write_sweep(tui_env, params={"OPTIMIZER.learning_rate": {"low": 0.01, "high": 50}})
    app = make_app(tui_env)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f8")
        screen = app.get_screen("sweeps")
        status = text_of(screen.query_one("#sweep-status"))
        assert "✗" in status and "params.OPTIMIZER.learning_rate.high: got 50, expected a number > 0 and <= 10" in status
        await pilot.press("f5")
        await pilot.pause()
        assert app.sweep_runner is None
        assert any("Pick a valid sweep file first" in str(n.message) for n in app._notifications)


def fixed_study(env) -> None:
    """A finished study with made-up trials: complete, pruned and failed, and their epochs."""
    write_sweep(env, trials=4, pruner="median")
    spec = load_sweep(env.root / "sweeps" / "tiny_lr.json")
    study = create_study(spec, default_storage(env.store, spec.name))
    lr = {"OPTIMIZER.learning_rate": optuna.distributions.FloatDistribution(0.01, 0.5, log=True)}
    made = [(0.05, [0.20, 0.35, 0.41], optuna.trial.TrialState.COMPLETE),
            (0.3, [0.25, 0.44, 0.52], optuna.trial.TrialState.COMPLETE),
            (0.012, [0.12, 0.15], optuna.trial.TrialState.PRUNED),
            (0.1, [0.22, 0.40, 0.47], optuna.trial.TrialState.COMPLETE)]
    for number, (rate, curve, state) in enumerate(made):
        note = "pruned at epoch 2 by the MedianPruner: val acc 15.00% against the other trials at that epoch"
        study.add_trial(optuna.trial.create_trial(
            params={"OPTIMIZER.learning_rate": rate}, distributions=lr, state=state,
            value=max(curve) if state == optuna.trial.TrialState.COMPLETE else None,
            intermediate_values=dict(enumerate(curve, start=1)),
            user_attrs={"run_id": f"20260101-12000{number}-tiny", "epochs": len(curve),
                        **({"note": note} if state == optuna.trial.TrialState.PRUNED else {})}))


@pytest.mark.parametrize("size", [(160, 50), (80, 24)], ids=["160x50", "80x24"])
def test_sweeps_screen(tui_env, snap_compare, size):
    fixed_study(tui_env)

    async def show(pilot):
        await pilot.press("f8")
        await pilot.pause(0.3)

    assert snap_compare(make_app(tui_env), terminal_size=size, run_before=show)
