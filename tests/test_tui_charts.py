"""Chart data: growable arrays, min/max decimation, debiased EMA, and 64,000 iterations through the UI."""

from __future__ import annotations

import math
import time

import numpy as np
from tui_support import make_app, tui_env  # noqa: F401

from resnet_tui.config import config_from_values
from resnet_tui.training.events import EpochEnd, IterationEnd, LogMessage, RunStarted
from resnet_tui.tui.history import GrowableArray, RunHistory, decimate_minmax, ema_debiased
from resnet_tui.tui.session import TrainingSession
from resnet_tui.tui.widgets.charts import ChartOptions
from resnet_tui.tui.widgets.metric_chart import MetricChart


def test_growable_array_keeps_everything_with_amortized_growth():
    array = GrowableArray(capacity=16)
    expected = []
    grows = 0
    for start in range(0, 10_000, 7):
        chunk = list(range(start, min(start + 7, 10_000)))
        before = array.capacity
        array.extend(chunk)
        grows += array.capacity != before
        expected += chunk
    assert np.array_equal(array.values, expected)
    assert array.capacity < 2 * len(array)
    assert grows <= math.ceil(math.log2(10_000 / 16))  # doubling: a handful of copies, not one per append


def test_decimation_keeps_extremes_and_steps_within_two_points_per_column():
    x = np.arange(1, 64_001, dtype=float)
    rng = np.random.default_rng(0)
    y = rng.normal(1.0, 0.1, len(x))
    y[12_345], y[50_000] = 9.0, -7.0  # one-batch spikes must survive
    xs, ys = decimate_minmax(x, y, 80)
    assert len(xs) <= 160
    assert ys.max() == 9.0 and ys.min() == -7.0
    assert np.all(np.diff(xs) >= 0)

    lr = np.where(x <= 32_000, 0.1, np.where(x <= 48_000, 0.01, 0.001))
    _, lrs = decimate_minmax(x, lr, 80)
    assert set(np.round(lrs, 6)) == {0.1, 0.01, 0.001}  # both step drops are drawn

    small_x, small_y = np.arange(10.0), np.arange(10.0)
    assert decimate_minmax(small_x, small_y, 80)[1].tolist() == small_y.tolist()


def test_debiased_ema_matches_the_formula():
    values = [2.0, 1.0, 3.0, float("nan"), 0.5]
    w = 0.6
    s, t, expected = 0.0, 0, []
    for v in values:
        if math.isnan(v):
            expected.append(v)
            continue
        s = w * s + (1 - w) * v
        t += 1
        expected.append(s / (1 - w ** t))
    out = ema_debiased(values, w)
    assert out[0] == 2.0  # debiased: no pull towards the zero start
    assert np.allclose(out, expected, equal_nan=True)
    assert np.allclose(ema_debiased([3.0, 1.0], 0.0), [3.0, 1.0])


def test_history_smoothing_is_incremental_and_axes_convert():
    history = RunHistory(steps_per_epoch=4)
    events = [IterationEnd(i, (i - 1) // 4 + 1, 1.0 / i, 0.1 * (i % 5), 0.1, 100.0, 0.0, 0.0, 2.0 * i)
              for i in range(1, 41)]
    history.add_iterations(events[:25])
    part = history.smoothed("loss", 0.9).copy()
    history.add_iterations(events[25:])
    full = history.smoothed("loss", 0.9)
    assert np.allclose(full[:25], part)
    assert np.allclose(full, ema_debiased([e.loss for e in events], 0.9))
    assert history.x_values("epoch")[3] == 1.0 and history.x_values("time")[-1] == 80.0
    epochs = [EpochEnd(k, 4 * k, 1.0, 0.5, None, None, 0.1, 1.0, 1.0) for k in (1, 2)]
    assert RunHistory.from_records([], epochs).steps_per_epoch == 4


def test_chart_options_cycle():
    options = ChartOptions()
    options.smoother(1)
    assert options.smoothing == 0.8
    for _ in range(10):
        options.smoother(-1)
    assert options.smoothing == 0.0
    assert [options.next_x_axis() or options.x_axis for _ in range(3)] == ["epoch", "time", "iteration"]


def lr_at(iteration: int) -> float:
    return 0.1 if iteration <= 32_000 else 0.01 if iteration <= 48_000 else 0.001


async def test_64k_iterations_through_the_ui_path_stay_bounded(tui_env):
    """A full run's event stream, drained the way the timer does, redraws at screen resolution."""
    app = make_app(tui_env)
    steps, total = 500, 64_000
    async with app.run_test(size=(160, 50)) as pilot:
        session = TrainingSession(config_from_values(tui_env.values, "m8_tiny"), tui_env.store)
        session.state = "running"
        app.session = session  # as action_start does, without a training thread
        await pilot.press("f3")
        screen = app.screen
        charts = list(screen.query(MetricChart))
        sink = session.buffer  # what the trainer calls, from its thread
        sink(RunStarted("run", "m8_tiny", {}, "summary", 274_042, steps, total, total // steps, 128,
                        45_000, 5_000, 10_000, time=0.0))
        drains = 0
        per_tick = 4000  # 16 timer ticks: what a fast GPU run would pile up between redraws, and then some
        for chunk in range(total // per_tick):
            for i in range(chunk * per_tick + 1, (chunk + 1) * per_tick + 1):
                loss = 2.0 * math.exp(-i / 20_000) + 0.05 * math.sin(i)
                sink(IterationEnd(i, (i - 1) // steps + 1, loss, 1 - loss / 2.2, lr_at(i), 5000.0, loss,
                                  1 - loss / 2.2, i / 40))
                if i % steps == 0:
                    sink(EpochEnd(i // steps, i, loss, 0.9, loss * 1.1, 0.88, lr_at(i), 12.5, i / 40))
            sink(LogMessage("warning", f"tick {chunk}"))
            app.drain()
            drains += 1
            await pilot.pause()
            assert len(sink) == 0  # every drain empties the buffer

        history = session.history
        assert len(history.iterations) == total and len(history.epochs) == total // steps
        # Memory: the arrays hold the run at most twice over, whatever the stream.
        assert history.nbytes <= 2 * 8 * (9 * total + 9 * total // steps) + 2 * 8 * 9 * 1024
        assert len(session.log) <= session.log.maxlen

        screen.redraw_charts()
        await pilot.pause()
        await pilot.pause()
        for chart in charts:
            assert chart.plotted, chart.title
            for label, points in chart.plotted.items():
                assert points <= 2 * chart.size.width, (chart.title, label, points)
            # Redraws follow the timer (and epochs), not the number of events.
            assert chart.renders <= 2 * drains + 5, (chart.title, chart.renders)
        _, lrs = charts[2].drawn["#0"]
        assert {0.1, 0.01, 0.001} <= set(np.round(lrs, 6))  # the step drops at 32k and 48k
        assert "iteration 64,000 / 64,000" in str(screen.query_one("#progress-line").content)


async def test_live_charts_pace_themselves_by_their_cost(tui_env):
    """The chart timer redraws at most once a second, and waits longer when a rebuild is slow."""
    from resnet_tui.tui.screens import train_screen

    app = make_app(tui_env)
    async with app.run_test(size=(160, 50)) as pilot:
        session = TrainingSession(config_from_values(tui_env.values, "m8_tiny"), tui_env.store)
        session.state = "running"
        app.session = session
        await pilot.press("f3")
        screen = app.screen
        session.buffer(RunStarted("run", "m8_tiny", {}, "summary", 274_042, 10, 100, 10, 128, 1280, 0, 0, time=0.0))

        def feed(first: int) -> None:
            for i in range(first, first + 5):
                session.buffer(IterationEnd(i, 1, 1.0 / i, 0.5, 0.1, 100.0, 1.0, 0.5, i / 10))
            app.drain()

        feed(1)  # the run's start: drawn at once
        await pilot.pause()
        feed(6)  # iterations only: drawn by the timer
        screen._charts_due = 0.0
        before = time.monotonic()
        screen._charts_tick()
        # Read the costs the tick paced itself by at once: a later repaint (after a pause,
        # on a busy machine) measures its own, and the wait keeps the tick's.
        charts = list(screen.query(MetricChart))
        assert all(chart.render_seconds > 0 for chart in charts)
        cost = sum(chart.render_seconds for chart in charts)
        assert screen._charts_due - before >= max(train_screen.CHART_SECONDS, cost / train_screen.CHART_BUDGET)
        await pilot.pause()
        renders = [chart.renders for chart in charts]
        feed(11)  # new data, but the charts are not due yet
        screen._charts_tick()
        await pilot.pause()
        assert [chart.renders for chart in charts] == renders
        screen._charts_due = 0.0  # due: the new points are drawn
        screen._charts_tick()
        await pilot.pause()
        assert all(chart.renders > before for chart, before in zip(charts, renders))
