"""The learning-rate range test (Smith 2015, "Cyclical learning rates"; fastai's lr_find).

The config's model, from its initial weights, trains for a few hundred
iterations on the config's data while the learning rate grows exponentially
from ``start`` to ``end``; each batch's own loss is recorded (from the step
log, as a run's are) and smoothed (an exponential moving average, bias
corrected). It stops early once the smoothed loss passes 4x its minimum:
training has diverged and larger rates only say so again. Two suggestions
come with the curve, as marks for a person to judge, not as the answer:
the steepest descent of the smoothed loss (against log lr) and a tenth of
the rate at its minimum. Nothing is recorded as a run: the curve is kept in
one small JSON file (``ARTIFACT/lr_find/``) and the model is thrown away.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from resnet_tui.config import Config
from resnet_tui.machine.stderr import fd2_to

SMOOTHING = 0.98  # fastai's: a 50-batch memory
DIVERGED = 4.0  # the smoothed loss this many times its minimum: stop


@dataclass
class LrCurve:
    """The range test's points and its two suggestions (None until the curve allows one)."""

    config_name: str
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # each batch's own
    smoothed: list[float] = field(default_factory=list)
    stopped: str = ""  # why it ended early, if it did
    _average: float = field(default=0.0, repr=False)  # the moving average before bias correction

    def add(self, lr: float, loss: float) -> None:
        self.lrs.append(lr)
        self.losses.append(loss)
        self._average = SMOOTHING * self._average + (1 - SMOOTHING) * loss
        self.smoothed.append(self._average / (1 - SMOOTHING ** len(self.losses)))  # bias-corrected

    @property
    def steepest(self) -> float | None:
        """The rate where the smoothed loss falls fastest against log lr (skipping the noisy start)."""
        if len(self.smoothed) < 10:
            return None
        cut = len(self.smoothed) // 10
        slopes = np.gradient(np.asarray(self.smoothed[cut:]), np.log(np.asarray(self.lrs[cut:])))
        return float(self.lrs[cut + int(np.argmin(slopes))])

    @property
    def minimum_tenth(self) -> float | None:
        """A tenth of the rate at the smoothed loss's minimum: large, still short of where it blows up."""
        if len(self.smoothed) < 10:
            return None
        return float(self.lrs[int(np.argmin(self.smoothed))] / 10)

    def save(self, folder: Path) -> Path:
        from resnet_tui.store.atomic import write_json_atomic

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{self.config_name}.json"
        record = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        write_json_atomic(path, {**record, "steepest": self.steepest, "minimum_tenth": self.minimum_tenth})
        return path


def exponential_rates(start: float, end: float, iterations: int) -> np.ndarray:
    return start * (end / start) ** (np.arange(iterations) / max(iterations - 1, 1))


def find_lr(config: Config, start: float = 1e-5, end: float = 10.0, iterations: int = 200,
            on_point: Callable[[float, float, float], None] | None = None,
            cancel: threading.Event | None = None, curve: LrCurve | None = None) -> LrCurve:
    """The range test of ``config``: ``on_point(lr, loss, smoothed)`` after each iteration;
    ``cancel`` (set from another thread) ends it after the step under way. The points go into
    ``curve`` when given (a watcher reads it as it grows), else into a new one."""
    import keras

    from resnet_tui.data.batches import pipeline_callbacks, train_batches
    from resnet_tui.data.load import dispatch_load_dataset
    from resnet_tui.models.resnet import dispatch_build_model
    from resnet_tui.training import steplog
    from resnet_tui.training.compile import compile_model

    keras.utils.set_random_seed(config.SEED)
    dataset = dispatch_load_dataset(config.model_number, config)
    rates = exponential_rates(start, end, iterations)
    with fd2_to(os.devnull):  # TensorFlow's C++ lines as the model is built (cuInit without a GPU)
        model = dispatch_build_model(config.model_number, config)
    compile_model(model, config, keras.optimizers.schedules.PiecewiseConstantDecay(
        list(range(1, iterations)), [float(r) for r in rates]))
    curve = curve if curve is not None else LrCurve(config.name)
    data = train_batches(dataset, config.BATCH_SIZE, config.AUGMENT_MODE, config.SEED)
    steps_per_epoch = len(data) if hasattr(data, "__len__") else None

    class Record(keras.callbacks.Callback):
        def set_model(self, model):
            super().set_model(model)
            self.log = steplog.attach(model)

        def on_train_begin(self, logs=None):
            self.log.skip_to_now()
            self.sums = (0.0, 0.0)

        def on_epoch_begin(self, epoch, logs=None):
            self.sums = (0.0, 0.0)  # Keras resets its metrics each epoch

        def on_train_batch_end(self, batch, logs=None):
            for loss_total, loss_count, _, _ in self.log.take(logs).tolist():
                loss = (loss_total - self.sums[0]) / (loss_count - self.sums[1])
                self.sums = (loss_total, loss_count)
                lr = float(rates[min(len(curve.lrs), iterations - 1)])
                curve.add(lr, loss)
                if on_point is not None:
                    on_point(lr, loss, curve.smoothed[-1])
                best = min(curve.smoothed)
                if not math.isfinite(loss) or curve.smoothed[-1] > DIVERGED * best:
                    curve.stopped = f"diverged at lr {lr:.3g} (smoothed loss {DIVERGED:g}x its minimum)"
                    self.model.stop_training = True
                elif cancel is not None and cancel.is_set():
                    curve.stopped = "cancelled"
                    self.model.stop_training = True
                elif len(curve.lrs) >= iterations:
                    self.model.stop_training = True

    epochs = math.ceil(iterations / steps_per_epoch) if steps_per_epoch else 1
    model.fit(data, epochs=epochs, callbacks=[*pipeline_callbacks(data), Record()], verbose=0, shuffle=False)
    return curve
