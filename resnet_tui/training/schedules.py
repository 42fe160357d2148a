"""Learning-rate schedules counted in iterations: the paper's steps, cosine, one cycle.

Each has ``value_at(step)``, the rate the optimizer uses for the update after
``step`` earlier ones, computed in Python: the streaming callback reports it
per iteration without a device round trip.
"""

from __future__ import annotations

import bisect
import math
from typing import TYPE_CHECKING

import keras
from keras import ops

from resnet_tui.config import schedule_name

if TYPE_CHECKING:  # pragma: no cover
    from resnet_tui.config import Config


@keras.saving.register_keras_serializable(package="resnet_tui")
class IterationStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``initial * factor ** (number of boundaries already passed)``.

    ``step`` is the optimizer's iteration count *before* the update, so with
    boundaries (32000, 48000) updates 1..32000 use 0.1, updates 32001..48000
    use 0.01 and later ones 0.001: "divide by 10 at 32k and 48k iterations".
    This is Keras' PiecewiseConstantDecay with each boundary moved down by one
    (that class switches only once ``step > boundary``).
    """

    def __init__(self, initial_learning_rate: float, boundaries, factor: float = 0.1):
        super().__init__()
        self.initial_learning_rate = float(initial_learning_rate)
        self.boundaries = [int(b) for b in boundaries]
        self.factor = float(factor)

    def __call__(self, step):
        # JAX counts in int32 unless x64 is on (asking it for int64 only earns a warning per step).
        step = ops.cast(step, "int32" if keras.backend.backend() == "jax" else "int64")
        drops = ops.zeros((), dtype="float32")
        for boundary in self.boundaries:
            drops = drops + ops.cast(ops.greater_equal(step, boundary), "float32")
        return self.initial_learning_rate * ops.power(self.factor, drops)

    def value_at(self, step: int) -> float:
        """The same value computed in Python (no device round trip)."""
        return self.initial_learning_rate * self.factor ** bisect.bisect_right(self.boundaries, step)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "boundaries": self.boundaries, "factor": self.factor}


@keras.saving.register_keras_serializable(package="resnet_tui")
class WarmupCosineDecay(keras.optimizers.schedules.CosineDecay):
    """Keras' CosineDecay (with its optional linear warmup), plus :meth:`value_at`."""

    def value_at(self, step: int) -> float:
        """What ``CosineDecay.__call__`` computes, in Python: the warmup climbs linearly from
        initial_learning_rate to warmup_target, then the cosine falls to alpha times its start."""
        if self.warmup_target is None:
            return self._cosine(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            start = self.initial_learning_rate
            return (self.warmup_target - start) * (step / self.warmup_steps) + start
        return self._cosine(step - self.warmup_steps, self.warmup_target)

    def _cosine(self, step: float, start: float) -> float:
        decayed = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return start * ((1 - self.alpha) * decayed + self.alpha)


@keras.saving.register_keras_serializable(package="resnet_tui")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear from ``initial`` up to ``peak`` over ``warmup_steps`` updates, then linear down to
    ``final`` at ``total_steps``, held there after (Smith's one cycle, without its momentum cycle)."""

    def __init__(self, initial_learning_rate: float, peak_learning_rate: float, warmup_steps: int,
                 total_steps: int, final_learning_rate: float):
        super().__init__()
        self.initial_learning_rate = float(initial_learning_rate)
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.final_learning_rate = float(final_learning_rate)

    def __call__(self, step):
        step = ops.minimum(ops.cast(step, "float32"), float(self.total_steps))
        climb = self.initial_learning_rate + (self.peak_learning_rate - self.initial_learning_rate) * (
            step / self.warmup_steps)
        fall = self.peak_learning_rate + (self.final_learning_rate - self.peak_learning_rate) * (
            (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return ops.where(step < self.warmup_steps, climb, fall)

    def value_at(self, step: int) -> float:
        step = min(step, self.total_steps)
        if step < self.warmup_steps:
            start, end, fraction = self.initial_learning_rate, self.peak_learning_rate, step / self.warmup_steps
        else:
            start, end = self.peak_learning_rate, self.final_learning_rate
            fraction = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return start + (end - start) * fraction

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "peak_learning_rate": self.peak_learning_rate,
                "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "final_learning_rate": self.final_learning_rate}


def make_schedule(config: Config, total_iterations: int):
    """The learning-rate schedule ``config`` chooses, with lengths of 0 meaning "to the run's last
    iteration" (``total_iterations``), or None for a constant rate or the plateau schedule (a callback)."""
    name, lr = schedule_name(config.values), config.OPTIMIZER["learning_rate"]
    if name == "step":
        step = config.STEP_SCHEDULE
        return IterationStepDecay(lr, step["boundaries"], step["factor"])
    if name == "cosine":
        cosine = config.COSINE_SCHEDULE
        warmup = cosine["warmup_steps"]
        decay = cosine["decay_steps"] or max(total_iterations - warmup, 1)
        return WarmupCosineDecay(lr, decay, alpha=cosine["alpha"], warmup_steps=warmup,
                                 warmup_target=cosine["warmup_target"] if warmup else None)
    if name == "one_cycle":
        cycle = config.ONE_CYCLE_SCHEDULE
        warmup = cycle["warmup_steps"]
        total = cycle["total_steps"] or max(total_iterations, warmup + 1)
        return OneCycle(lr, cycle["peak_learning_rate"], warmup, total, cycle["final_learning_rate"])
    return None
