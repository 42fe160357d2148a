"""The maths of a chart's axes, as pure functions: robust y range, tick positions and labels.

Kept apart from the widgets so each rule can be tested without a screen:

- :func:`robust_range` scales the y axis to the data that matters (TensorBoard's
  "ignore outliers in chart scaling"): one validation loss of 93.6 among train
  losses around 2.3 does not flatten them; the points outside are clipped to
  the edge and counted (:func:`count_outside`).
- :func:`linear_ticks`, :func:`log_ticks`, :func:`time_ticks` put ticks at round
  values (1-2-5 steps; powers of ten on a log axis) and :func:`tick_labels`
  writes them as the rest of the dashboard does (integers, %, s / min / h).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The robust range: these percentiles of every visible point (and each series' median),
# widened to take in the points within REACH times its span (an early loss), so only
# what lies far off is clipped; then PAD of the span on each side.
QUANTILES = (2.0, 98.0)
REACH = 1.0
KEEP = 3.0  # a series whose median lies within this many core spans stays in range
PAD = 0.05


@dataclass(frozen=True)
class AxisRange:
    low: float
    high: float


def _finite(series: Sequence[np.ndarray]) -> np.ndarray:
    parts = [np.asarray(s, dtype=float).ravel() for s in series]
    values = np.concatenate(parts) if parts else np.empty(0)
    return values[np.isfinite(values)]


def _padded(low: float, high: float, pad: float) -> AxisRange:
    span = high - low
    if span <= 0:  # a constant series: some height around it
        span = abs(low) * 0.2 or 2.0
        return AxisRange(low - span / 2, high + span / 2)
    return AxisRange(low - pad * span, high + pad * span)


def full_range(series: Sequence[np.ndarray], pad: float = PAD) -> AxisRange | None:
    """Every finite point, padded; None without any."""
    values = _finite(series)
    if not len(values):
        return None
    return _padded(float(values.min()), float(values.max()), pad)


def robust_range(series: Sequence[np.ndarray], quantiles: tuple[float, float] = QUANTILES,
                 reach: float = REACH, pad: float = PAD) -> AxisRange | None:
    """A y range that ignores outliers. None without any point.

    The core is the ``quantiles`` of the dense series pooled (those with at least a quarter
    of the most points: per-iteration curves, not a few per-epoch values), widened to each
    series' median when that lies within KEEP core spans (a val curve just above the train
    curve is data, not noise; one a hundred times higher would flatten the train curve, so
    it is clipped); the range takes in every point within ``reach`` spans of that, padded.

    Pass log10 values for a log axis. Points outside the result are outliers: draw them
    at its edge and say how many (:func:`count_outside`).
    """
    values = _finite(series)
    if not len(values):
        return None
    each = [v for v in (_finite([s]) for s in series) if len(v)]
    most = max(len(v) for v in each)
    dense = np.concatenate([v for v in each if len(v) >= most / 4])
    low, high = (float(q) for q in np.percentile(dense, quantiles))
    span = _span(low, high)
    medians = [float(np.median(v)) for v in each]
    near_core = [m for m in medians if low - KEEP * span <= m <= high + KEEP * span]
    low, high = min(low, *near_core), max(high, *near_core)
    span = _span(low, high)
    near = values[(values >= low - reach * span) & (values <= high + reach * span)]
    return _padded(float(near.min()), float(near.max()), pad)


def _span(low: float, high: float) -> float:
    """high - low, or some height for a flat range."""
    return high - low if high > low else abs(high) * 0.1 or 1.0


def count_outside(series: Sequence[np.ndarray], axis: AxisRange) -> tuple[int, int]:
    """How many finite points lie below and above ``axis``."""
    values = _finite(series)
    return int(np.count_nonzero(values < axis.low)), int(np.count_nonzero(values > axis.high))


def clipped_note(below: int, above: int) -> str:
    """'1 point above the range', '3 points below and 1 above the range', or ''."""
    def points(n: int) -> str:
        return f"{n} point{'s' if n != 1 else ''}"
    if below and above:
        return f"{points(below)} below and {above} above the range"
    if above:
        return f"{points(above)} above the range"
    if below:
        return f"{points(below)} below the range"
    return ""


# -- ticks -----------------------------------------------------------------------------

def nice_step(low: float, high: float, max_ticks: int, integer: bool = False) -> float:
    """The smallest 1, 2 or 5 x 10^k step (a whole number when ``integer``) whose
    multiples put at most ``max_ticks`` ticks in [low, high]."""
    max_ticks = max(2, int(max_ticks))
    span = high - low
    if not span > 0 or not math.isfinite(span):
        return 1.0
    power = 10.0 ** math.floor(math.log10(span / max_ticks))
    while True:
        for factor in (1.0, 2.0, 5.0):
            step = factor * power
            if integer and step < 1:
                continue
            if _count(low, high, step) <= max_ticks:
                return step
        power *= 10.0


def _count(low: float, high: float, step: float) -> int:
    return math.floor(high / step + 1e-9) - math.ceil(low / step - 1e-9) + 1


def linear_ticks(low: float, high: float, max_ticks: int = 5, integer: bool = False) -> list[float]:
    """Multiples of a 1-2-5 step inside [low, high]; whole numbers only when ``integer``."""
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        return []
    step = nice_step(low, high, max_ticks, integer)
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    # round away float noise (0.30000000000000004) at the step's precision
    digits = max(0, -math.floor(math.log10(step)) + 1)
    return [round(k * step, digits) + 0.0 for k in range(first, last + 1)]


def log_ticks(low: float, high: float, max_ticks: int = 5) -> list[float]:
    """Ticks of a log axis from ``low`` to ``high`` (data units, both > 0): powers of
    ten (every other one, or fewer, when there are too many); 1-2-5 values within a
    decade when fewer than two powers of ten fall in the range."""
    if not (low > 0 and high >= low):
        return []
    max_ticks = max(2, int(max_ticks))
    first, last = math.ceil(math.log10(low) - 1e-9), math.floor(math.log10(high) + 1e-9)
    powers = list(range(first, last + 1))
    if len(powers) >= 2:
        every = math.ceil(len(powers) / max_ticks)
        return [_power(p) for p in powers[::-1][::every][::-1]]
    ticks = [m * _power(p) for p in range(first - 1, last + 1) for m in (1, 2, 5)]
    ticks = [t for t in ticks if low * (1 - 1e-9) <= t <= high * (1 + 1e-9)]
    if len(ticks) < 2:  # less than a 1-2-5 step: round linear ticks
        return [t for t in linear_ticks(low, high, max_ticks) if t > 0]
    return ticks[-max_ticks:] if len(ticks) > max_ticks else ticks


def _power(p: int) -> float:
    return float(f"1e{p}")  # exact decimal (10.0 ** -3 is 0.0010000000000000002)


TIME_UNITS = (("s", 1.0), ("min", 60.0), ("h", 3600.0))


def time_unit(span_seconds: float) -> tuple[str, float]:
    """s up to 2 minutes, min up to 2 hours, then h: (name, seconds per unit)."""
    if span_seconds < 120:
        return TIME_UNITS[0]
    if span_seconds < 7200:
        return TIME_UNITS[1]
    return TIME_UNITS[2]


def time_ticks(low: float, high: float, max_ticks: int = 5) -> tuple[list[float], list[str]]:
    """Ticks of a wall-time axis in seconds at round values of the unit that fits the
    span, labelled with it: ``0 30s 60s 90s``, ``0 10min 20min``, ``0 1h 2h``."""
    name, size = time_unit(high - low)
    ticks = [t * size for t in linear_ticks(low / size, high / size, max_ticks)]
    labels = [f"{_number(t / size)}{name}" if t else "0" for t in ticks]
    return ticks, labels


def x_ticks(quantity: str, low: float, high: float, max_ticks: int, log: bool = False) -> tuple[list[float], list[str]]:
    """Ticks and labels of an x axis of ``quantity`` (iteration, epoch, time or images) from ``low``
    to ``high``: whole numbers while the span allows, wall time in its unit, images as 10k / 1.5M."""
    if log:
        ticks = log_ticks(low, high, max_ticks)
        if quantity == "time":
            return ticks, [f"{_number(t)}s" for t in ticks]
        return ticks, [count_label(t) if t >= 1 else f"{t:g}" for t in ticks]
    if quantity == "time":
        return time_ticks(low, high, max_ticks)
    whole = quantity != "epoch" or high - low >= 2  # zoomed into an epoch or two: ticks between epochs
    ticks = linear_ticks(low, high, max_ticks, integer=whole)
    if quantity == "images":
        return ticks, [count_label(t) for t in ticks]
    return ticks, tick_labels(ticks, "integer" if whole else "number")


def count_label(value: float) -> str:
    """A count written short: 500, 10k, 1.5M, 2G."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def _number(value: float) -> str:
    text = f"{value:.6g}"
    return text


def tick_labels(ticks: Sequence[float], kind: str = "number") -> list[str]:
    """Labels for ticks: ``integer`` (1,000), ``percent`` (fractions as 40%), ``log``
    (0.1 0.01 1e-05) or ``number`` (as few decimals as tell the ticks apart)."""
    if kind == "integer":
        return [f"{round(t):,}" for t in ticks]
    if kind == "log":
        return [f"{t:g}" for t in ticks]
    if kind == "percent":
        values = [100.0 * t for t in ticks]
        return [f"{v:.{_decimals(values)}f}%" for v in values]
    return [f"{t:.{_decimals(ticks)}f}" for t in ticks]


def _decimals(values: Sequence[float]) -> int:
    """The fewest decimals (up to 6) that write every value as exactly as its step."""
    for digits in range(7):
        if all(abs(v - round(v, digits)) < 1e-9 * max(1.0, abs(v)) for v in values):
            return digits
    return 6
