"""The paper's step schedule, counted in iterations."""

from __future__ import annotations

import bisect

import keras
from keras import ops


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
        step = ops.cast(step, "int64")
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
