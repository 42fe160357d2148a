"""Chart data: growable arrays, min/max decimation, debiased EMA, and 64,000 iterations through the UI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tui_support import MessageLog, make_app, screen_text, wait_for

from resnet_tui.config import config_from_values
from resnet_tui.events import EpochEnd, IterationEnd, LogMessage, RunStarted
from resnet_tui.tui.history import GrowableArray, RunHistory, decimate_minmax, ema_debiased
from resnet_tui.tui.session import TrainingSession
from resnet_tui.tui.widgets.axes import (
    clipped_note,
    count_label,
    count_outside,
    full_range,
    linear_ticks,
    log_ticks,
    robust_range,
    tick_labels,
    time_ticks,
    time_unit,
    x_ticks,
)
from resnet_tui.tui.widgets.charts import MAX_ZOOM, ChartOptions, shared_x_range, short_labels, view_range
from resnet_tui.tui.widgets.metric_chart import MetricChart, Trace


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
    assert [options.next_x_axis() or options.x_axis for _ in range(4)] == ["epoch", "time", "images", "iteration"]


def test_zoom_and_pan_keep_the_view_inside_the_x_range():
    options = ChartOptions()
    options.zoom_by(2)
    assert options.view == (0.25, 0.75) and options.zoom == 2  # the middle half
    options.pan(1)
    assert options.view == (0.375, 0.875)  # a quarter of its width to the right
    for _ in range(5):
        options.pan(1)
    assert options.view == (0.5, 1.0)  # stops at the end
    options.zoom_by(0.5)
    assert options.view == (0.0, 1.0)  # zooming out past the whole range shows the whole range
    for _ in range(20):
        options.zoom_by(2)
    assert options.zoom == MAX_ZOOM
    options.reset_view()
    assert options.view == (0.0, 1.0) and "zoom 1x" in options.describe()


def test_a_view_of_a_log_axis_is_a_share_of_its_decades():
    assert view_range((0.0, 400.0), (0.25, 0.5)) == (100.0, 200.0)
    low, high = view_range((1.0, 10_000.0), (0.5, 1.0), log=True)  # the upper two of four decades
    assert low == pytest.approx(100.0) and high == pytest.approx(10_000.0)
    traces = [Trace(None, np.array([0.0, 2.0, 50.0]), np.ones(3)), Trace(None, np.array([5.0, 80.0]), np.ones(2))]
    assert shared_x_range(traces) == (0.0, 80.0)
    assert shared_x_range(traces, log=True) == (2.0, 80.0)  # 0 has no place on a log axis


def test_x_ticks_name_each_quantity_in_its_units():
    assert x_ticks("images", 0, 2_560_000, 4) == ([0.0, 1_000_000.0, 2_000_000.0], ["0", "1M", "2M"])
    assert x_ticks("iteration", 1, 64_000, 6, log=True)[1] == ["1", "10", "100", "1k", "10k"]
    assert x_ticks("time", 1, 1_000, 6, log=True)[1] == ["1s", "10s", "100s", "1000s"]
    assert x_ticks("epoch", 3.0, 4.0, 6)[1] == ["3.0", "3.2", "3.4", "3.6", "3.8", "4.0"]  # zoomed into an epoch
    assert x_ticks("epoch", 0, 200, 5)[1] == ["0", "50", "100", "150", "200"]
    assert count_label(1_500_000) == "1.5M" and count_label(12_500) == "12.5k" and count_label(640) == "640"


def rebuilds(log: MessageLog, chart: MetricChart) -> int:
    """How many times ``chart`` rebuilt its plot (the Rendered messages it posted)."""
    return sum(message.chart is chart for message in log.of(MetricChart.Rendered))


def lr_at(iteration: int) -> float:
    return 0.1 if iteration <= 32_000 else 0.01 if iteration <= 48_000 else 0.001


async def test_64k_iterations_through_the_ui_path_stay_bounded(tui_env):
    """A full run's event stream, drained the way the timer does, redraws at screen resolution."""
    app = make_app(tui_env)
    steps, total = 500, 64_000
    log = MessageLog()
    async with app.run_test(size=(160, 50), message_hook=log) as pilot:
        session = TrainingSession(config_from_values(tui_env.values, "tiny"), tui_env.store)
        session.state = "running"
        app.session = session  # as action_start does, without a training thread
        await pilot.press("f3")
        screen = app.screen
        charts = list(screen.query(MetricChart))
        sink = session.buffer  # what the trainer calls, from its thread
        sink(RunStarted("run", "tiny", {}, "summary", 274_042, steps, total, total // steps, 128,
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
            renders = rebuilds(log, chart)
            assert renders <= 2 * drains + 5, (chart.title, renders)
        _, lrs = charts[2].drawn["#0"]
        assert {0.1, 0.01, 0.001} <= set(np.round(lrs, 6))  # the step drops at 32k and 48k
        assert "iteration 64,000 / 64,000" in str(screen.query_one("#progress-line").content)


def test_chart_pace_waits_a_second_or_longer_when_a_redraw_is_slow():
    from resnet_tui.tui.screens.train_screen import CHART_BUDGET, CHART_SECONDS, ChartPace

    pace = ChartPace(clock=lambda: 0.0)
    assert pace.ready(0.0)  # nothing drawn yet
    pace.drawn(100.0, cost=0.001)  # a cheap redraw: once a second
    assert not pace.ready(100.0 + CHART_SECONDS - 0.01) and pace.ready(100.0 + CHART_SECONDS)
    pace.drawn(200.0, cost=0.3)  # a slow one: it takes at most CHART_BUDGET of the time
    assert pace.due == 200.0 + 0.3 / CHART_BUDGET > 200.0 + CHART_SECONDS
    assert not pace.ready(209.9) and pace.ready(210.0)


async def test_live_charts_pace_themselves_by_their_cost(tui_env):
    """The chart timer draws new iterations when the pace says so, not before: the charts show
    the last iteration they were given until they are due. The screen's pace runs on a clock
    the test moves."""
    from resnet_tui.tui.screens import train_screen

    app = make_app(tui_env)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("f3")
        screen = app.screen
        now = [1000.0]
        screen.chart_pace.clock = lambda: now[0]
        session = TrainingSession(config_from_values(tui_env.values, "tiny"), tui_env.store)
        session.state = "running"
        app.session = session  # as the app's start does, without a training thread
        session.buffer(RunStarted("run", "tiny", {}, "summary", 274_042, 10, 100, 10, 128, 1280, 0, 0, time=0.0))
        charts = [chart for chart in screen.query(MetricChart) if chart.display]

        def feed(first: int) -> None:
            for i in range(first, first + 5):
                session.buffer(IterationEnd(i, 1, 1.0 / i, 0.5, 0.1, 100.0, 1.0, 0.5, i / 10))
            app.drain()

        def last_drawn() -> set[float]:
            """The last iteration each chart shows (its curve's last x)."""
            return {max((xs.max() for xs, _ in chart.drawn.values() if len(xs)), default=0.0) for chart in charts}

        feed(1)  # the run's start: drawn at once
        await wait_for(pilot, lambda: last_drawn() == {5.0}, 10, "the charts of the run's start")
        feed(6)  # iterations only: drawn by the timer, which is due
        await wait_for(pilot, lambda: last_drawn() == {10.0}, 10, "the timer's redraw")
        assert screen.chart_pace.due >= now[0] + train_screen.CHART_SECONDS  # and it paced itself
        assert all(chart.render_seconds > 0 for chart in charts)

        feed(11)  # new data, but the charts are not due yet
        await pilot.pause(train_screen.CHART_SECONDS + 0.2)  # the timer ticks four times a second
        await pilot.pause()
        assert last_drawn() == {10.0}
        now[0] = screen.chart_pace.due  # due: the new points are drawn
        await wait_for(pilot, lambda: last_drawn() == {15.0}, 10, "the due redraw")


# -- readable charts: robust y range, ticks, shared x axis, legend (issue 12, section 2) ---------

def demo_losses() -> tuple[np.ndarray, np.ndarray]:
    """The demo config's first epochs: train losses around 2.3 and one val loss of 93.6."""
    rng = np.random.default_rng(12)
    return 2.3 + 0.05 * rng.standard_normal(90), np.array([93.6, 2.41, 2.35, 2.31, 2.28, 2.26])


def test_robust_range_excludes_the_demo_outlier_and_reports_it_clipped():
    train, val = demo_losses()
    axis = robust_range([train, val])
    assert axis.low <= train.min() and axis.high >= val[1:].max()  # every other point is inside
    assert axis.high < 3.0  # 93.6 does not set the range
    assert count_outside([train, val], axis) == (0, 1)
    assert clipped_note(*count_outside([train, val], axis)) == "1 point above the range"
    # Without outlier scaling the range is every point's.
    assert full_range([train, val]).high >= 93.6


def test_robust_range_keeps_a_val_curve_above_the_train_curve_and_an_early_high_loss():
    """Only what lies far off is clipped: overfitting's higher val loss stays in range
    though it is 4 points among 1000 train points, and so do the first iterations' losses
    unless they are far above everything else."""
    train = np.r_[3.0, 1.5, 1.2, np.linspace(0.6, 0.4, 997)]
    val = np.array([0.9, 0.95, 1.0, 1.1])
    axis = robust_range([train, val])
    assert count_outside([train, val], axis) == (0, 1)  # only the 3.0
    assert axis.low <= 0.4 and 1.5 <= axis.high < 3.0
    # A tiny run's val loss a hundred times the train loss: clipped, the train curve readable.
    train, val = np.linspace(2.4, 1.4, 24), np.array([60.0, 110.0, 926.0])
    axis = robust_range([train, val])
    assert count_outside([train, val], axis) == (0, 3) and axis.high < 3.0
    flat = robust_range([np.full(50, 0.1)])  # a constant series gets some height
    assert flat.low < 0.1 < flat.high
    assert robust_range([np.array([np.nan, np.inf])]) is None


def test_tick_positions_and_labels():
    assert linear_ticks(1, 150, 5, integer=True) == [50, 100, 150]
    assert linear_ticks(0, 150, 5, integer=True) == [0, 50, 100, 150]
    assert tick_labels(linear_ticks(0, 64_000, 5, integer=True), "integer") == ["0", "20,000", "40,000", "60,000"]
    assert linear_ticks(0, 3, 8, integer=True) == [0, 1, 2, 3]  # never 0.5 of an epoch
    ticks = linear_ticks(0.1, 0.95, 5)
    assert ticks == [0.2, 0.4, 0.6, 0.8]
    assert tick_labels(ticks, "percent") == ["20%", "40%", "60%", "80%"]
    assert tick_labels([0.905, 0.91], "percent") == ["90.5%", "91.0%"]
    assert tick_labels(linear_ticks(1.9, 2.65, 5)) == ["2.0", "2.2", "2.4", "2.6"]
    for low, high, most in ((0, 1e5, 5), (0.001, 0.002, 4), (3, 1000, 7)):
        assert 2 <= len(linear_ticks(low, high, most)) <= most


def test_log_ticks_sit_at_powers_of_ten():
    assert log_ticks(0.0009, 0.11) == [0.001, 0.01, 0.1]
    assert tick_labels(log_ticks(0.0009, 0.11), "log") == ["0.001", "0.01", "0.1"]
    assert log_ticks(1e-6, 1.0, 4) == [1e-6, 1e-4, 1e-2, 1.0]  # too many decades: every other one
    assert log_ticks(0.004, 0.11) == [0.01, 0.1]
    assert log_ticks(0.04, 0.11) == [0.05, 0.1]  # within a decade: 1-2-5 values
    assert log_ticks(0.3, 3.0) == [0.5, 1.0, 2.0]


def test_time_ticks_have_units():
    assert time_ticks(0, 45) == ([0, 10, 20, 30, 40], ["0", "10s", "20s", "30s", "40s"])
    assert time_ticks(0, 1500)[1] == ["0", "10min", "20min"]
    assert time_ticks(0, 11 * 3600)[1] == ["0", "5h", "10h"]
    assert [time_unit(s)[0] for s in (90, 600, 36_000)] == ["s", "min", "h"]


def test_overlay_legend_names_runs_by_their_shortest_distinct_tail():
    assert short_labels(["20250101-120000-m8_demo", "20250104-100000-m8_lr05"]) == ["m8_demo", "m8_lr05"]
    assert short_labels(["20250101-120000-m8_demo", "20250103-080000-m8_demo"]) == ["120000-m8_demo",
                                                                                   "080000-m8_demo"]


def demo_history(steps: int = 15, epochs: int = 6) -> RunHistory:
    """The demo config's curves: train loss near 2.3, val loss 93.6 after epoch 1."""
    history = RunHistory(steps_per_epoch=steps)
    rng = np.random.default_rng(3)
    events, epoch_events = [], []
    for i in range(1, steps * epochs + 1):
        loss = 2.35 - 0.3 * i / (steps * epochs) + 0.03 * rng.standard_normal()
        events.append(IterationEnd(i, (i - 1) // steps + 1, loss, 0.1 + 0.3 * i / (steps * epochs), 0.1 if i < 60
                                   else 0.01, 500.0, loss, 0.2, 0.8 * i))
        if i % steps == 0:
            k = i // steps
            epoch_events.append(EpochEnd(k, i, loss, 0.2, 93.6 if k == 1 else loss + 0.05, 0.1 + 0.05 * k,
                                         0.1, 12.0, 0.8 * i))
    history.add_iterations(events)
    history.add_epochs(epoch_events)
    return history


async def test_demo_outlier_is_clipped_marked_and_toggled_with_o(tui_env):
    """The loss chart scales to the train loss, draws 93.6 at the top edge with ▲ and says so;
    o shows the whole range; ticks are integers, %, powers of ten; one x range on every chart."""
    app = make_app(tui_env)
    async with app.run_test(size=(160, 50)) as pilot:
        session = TrainingSession(config_from_values(tui_env.values, "tiny"), tui_env.store)
        session.history = demo_history()
        app.session = session
        await pilot.press("f3")
        screen = app.screen
        screen.redraw_charts(force=True)
        await pilot.pause()
        loss, accuracy, lr = (screen.query_one(f"#chart-{n}", MetricChart) for n in ("loss", "accuracy", "lr"))
        assert loss.clipped == (0, 1) and loss.y_range.high < 3.0
        assert "1 point above the range" in loss.header and "train" in loss.header and "val" in loss.header
        assert "▲" in screen_text(app)
        assert all(label.replace(",", "").isdigit() for label in loss.ticks["x"])  # 0 20 40 60 80, no 37.5
        assert all(label.endswith("%") for label in accuracy.ticks["y"])
        assert lr.ticks["y"] == ["0.01", "0.1"]
        assert loss.x_range == accuracy.x_range == lr.x_range == (0.0, 90.0)
        assert "outliers clipped (o)" in str(screen.query_one("#chart-options").content)

        await pilot.press("o")
        await pilot.pause()
        assert not app.chart_options.ignore_outliers
        assert loss.clipped == (0, 0) and loss.y_range.high >= 93.6 and "above the range" not in loss.header
        assert "outliers shown (o)" in str(screen.query_one("#chart-options").content)

        await pilot.press("a", "a")  # wall time: ticks with units
        await pilot.pause()
        assert loss.x_axis == "time" and loss.ticks["x"][-1].endswith("s")
        await pilot.press("a")
        await pilot.pause()
        assert screen.active_bindings["o"].binding.action == "app.toggle_outliers"
