"""Training on several devices of one machine: ``tf.distribute.MirroredStrategy``.

``DISTRIBUTE = "mirrored"`` builds and compiles the model under a
MirroredStrategy scope; Keras' ``fit`` then does the rest itself:

- it distributes the ``tf.data`` pipelines (``experimental_distribute_dataset``),
  splitting each global batch of ``BATCH_SIZE`` images into one slice per
  replica, for training, validation and test alike;
- it scales each replica's mean loss (and the L2 penalty) by
  ``1 / replicas`` and the optimizer all-reduces (sums) the gradients, so one
  update equals the single-device update on the same global batch;
- one ``train_function`` call is one global step, so callbacks (the streaming
  callback included) see one batch end per global iteration. Batch logs are
  the mean of the replicas' running means, epoch and evaluation logs the exact
  global means.

Keras 3 on TensorFlow has no multi-machine path (``MultiWorkerMirroredStrategy``
is not supported: keras-team/keras issue 20585); the config refuses it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import keras

from resnet_tui.config import MULTI_WORKER_REFUSAL, Config

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf


class DistributeError(ValueError):
    """A setting the devices found cannot honour; ``str()`` is one message for a user."""


def mirrored_devices() -> list[str] | None:
    """The devices MirroredStrategy should mirror over.

    Every GPU when there is one; otherwise every logical CPU when there are
    several (MirroredStrategy itself never picks more than one CPU); otherwise
    None, MirroredStrategy's own default (one replica).
    """
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return [d.name for d in gpus]
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) > 1:
        return [d.name for d in cpus]
    return None


_STRATEGIES: dict = {}  # device tuple -> MirroredStrategy, one per process


def mirrored_strategy(devices: list[str] | None):
    """One MirroredStrategy per device set for the whole process.

    Every run in a process (the dashboard trains many) reuses it: separate
    strategies over the same devices share TensorFlow's collective instance
    keys, and a later strategy's all-reduce can collide with an earlier one's
    ("Collective instance N expected ... data_type ..."). Seen on CPU.
    """
    import tensorflow as tf

    key = tuple(devices) if devices else None
    if key not in _STRATEGIES:
        _STRATEGIES[key] = tf.distribute.MirroredStrategy(devices=devices)
    return _STRATEGIES[key]


def _short(device: str) -> str:
    """'/job:localhost/replica:0/task:0/device:GPU:0' -> '/device:GPU:0'."""
    cut = device.find("/device:")
    return device[cut:] if cut >= 0 else device


@dataclass
class Distribution:
    """How a run places its model: the strategy, its replicas and devices."""

    mode: str  # "none" | "mirrored"
    strategy: Any  # tf.distribute.Strategy; the default strategy for "none"
    devices: list[str]
    sync_batch_norm: bool = False
    messages: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: Config) -> "Distribution":
        import tensorflow as tf

        mode = config.get("DISTRIBUTE") or "none"
        if mode == "none":
            gpus = tf.config.list_logical_devices("GPU")
            device = (gpus or tf.config.list_logical_devices("CPU"))[0].name
            return cls("none", tf.distribute.get_strategy(), [_short(device)])
        if mode != "mirrored":  # the config refuses anything else; this is for hand-made values
            raise DistributeError(f"DISTRIBUTE: {MULTI_WORKER_REFUSAL}" if mode == "multi_worker"
                                  else f"DISTRIBUTE: unknown setting {mode!r}")
        strategy = mirrored_strategy(mirrored_devices())
        devices = [_short(d) for d in strategy.extended.worker_devices]
        sync = bool(config.get("SYNC_BATCH_NORM"))
        dist = cls("mirrored", strategy, devices, sync)
        if len(devices) == 1:
            dist.messages.append(f"DISTRIBUTE=mirrored: only one device is visible ({devices[0]}), "
                                 f"so MirroredStrategy trains on one replica")
        else:
            dist.messages.append(
                f"DISTRIBUTE=mirrored: {len(devices)} replicas on {', '.join(devices)}; BATCH_SIZE "
                f"{config.BATCH_SIZE} is the global batch ({config.BATCH_SIZE // len(devices)} per replica)"
                + ("; synchronized batch norm" if sync else ""))
        return dist

    @property
    def replicas(self) -> int:
        return len(self.devices)

    def scope(self):
        """Where the model, its optimizer and their variables must be created."""
        return self.strategy.scope() if self.mode != "none" else contextlib.nullcontext()

    def check_batches(self, batch_size: int, train_count: int) -> list[str]:
        """Refuse a global batch that does not split evenly; warn about an uneven last batch.

        Keras builds the model under a strategy from the first batch of each
        ``fit`` and ``evaluate`` (``_maybe_symbolic_build``) by averaging the
        replicas' slices elementwise: a first batch whose slices differ in
        size fails there. Later uneven batches run, but Keras averages the
        replicas' mean losses, which weights their images unevenly.
        """
        if self.replicas == 1:
            return []
        if batch_size % self.replicas:
            raise DistributeError(
                f"BATCH_SIZE {batch_size} does not split evenly across {self.replicas} replicas "
                f"({', '.join(self.devices)}); BATCH_SIZE is the global batch: use a multiple of {self.replicas}")
        if train_count < batch_size and train_count % self.replicas:
            raise DistributeError(
                f"the training split ({train_count} images) is smaller than BATCH_SIZE and does not split "
                f"evenly across {self.replicas} replicas; use a multiple of {self.replicas} images")
        last = train_count % batch_size
        if last and last % self.replicas:
            return [f"the last batch of each epoch ({last} images) does not split evenly across {self.replicas} "
                    f"replicas: Keras averages the replicas' mean losses, so that one step weights its images "
                    f"slightly unevenly and its per-iteration loss and accuracy are approximate "
                    f"(epoch and evaluation values are exact)"]
        return []

    def eval_batch_size(self, batch_size: int, count: int, what: str = "evaluation") -> int:
        """A batch size for evaluating ``count`` images whose first batch splits evenly.

        Evaluation results are exact whatever the batch size (Keras sums the
        metrics' totals and counts across replicas), so a split smaller than
        the batch is evaluated in a first batch of the largest multiple of the
        replica count and a remainder.
        """
        if self.replicas == 1 or count >= batch_size or count % self.replicas == 0:
            return batch_size
        if count < self.replicas:
            raise DistributeError(f"the {what} split has {count} images, fewer than the {self.replicas} replicas")
        return count - count % self.replicas

    def record(self) -> dict:
        """What result.json keeps about the placement."""
        return {"strategy": self.mode, "replicas": self.replicas, "devices": list(self.devices),
                "sync_batch_norm": self.sync_batch_norm}

    def callbacks(self, train_ds: "tf.data.Dataset") -> list:
        """Callbacks the strategy needs around ``fit(train_ds)``."""
        generator = getattr(train_ds, "seed_generator", None)
        if self.mode == "none" or generator is None:
            return []
        return [RewindInputPipeline(generator)]


class RewindInputPipeline(keras.callbacks.Callback):
    """Undo the pass Keras starts to build the model before training.

    Under a strategy, ``fit`` pulls one batch from a fresh pass of the training
    data to build the model symbolically (``_maybe_symbolic_build``); that pass
    draws the pipeline's next epoch of shuffling and augmentation seeds.
    Restoring the generator's state at ``on_train_begin`` (which runs after
    that build) gives epoch 1 the seeded draws a DISTRIBUTE=none run gets, and
    a resumed run the draws of an uninterrupted one.
    """

    def __init__(self, generator):
        super().__init__()
        self.generator = generator
        self.saved = generator.state.numpy().copy()  # before fit starts any pass

    def on_train_begin(self, logs=None):
        self.generator.state.assign(self.saved)
