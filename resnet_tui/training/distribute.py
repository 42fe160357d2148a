"""Training on several devices of one machine: ``tf.distribute.MirroredStrategy`` on TensorFlow,
``keras.distribution.DataParallel`` on JAX.

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
is not supported: keras-team/keras issue 20585); the config refuses it. On JAX,
``data_parallel`` spans several processes or machines once they have joined
(training/processes.py): its devices are then all of theirs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import keras

from resnet_tui import backend
from resnet_tui.config import MULTI_WORKER_REFUSAL, Config
from resnet_tui.training.devices import local_devices, short_name

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


@dataclass
class Distribution:
    """How a run places its model: the strategy, its replicas and devices."""

    mode: str  # "none" | "mirrored" (TensorFlow) | "data_parallel" (JAX)
    strategy: Any  # tf.distribute.Strategy (the default one for "none"), keras.distribution.DataParallel, or None
    devices: list[str]
    sync_batch_norm: bool = False
    messages: list[str] = field(default_factory=list)
    process: int = 0  # this process's index among ``processes`` (data_parallel over several)
    processes: int = 1

    @classmethod
    def from_config(cls, config: Config) -> Distribution:
        mode = config.get("DISTRIBUTE") or "none"
        wanted = {"mirrored": "tensorflow", "data_parallel": "jax"}.get(mode)
        if mode == "multi_worker":  # the config refuses it; this is for hand-made values
            raise DistributeError(f"DISTRIBUTE: {MULTI_WORKER_REFUSAL}")
        if mode not in ("none", "mirrored", "data_parallel"):
            raise DistributeError(f"DISTRIBUTE: unknown setting {mode!r}")
        if wanted and backend.current() != wanted:
            other = {"tensorflow": "data_parallel", "jax": "mirrored"}[wanted]
            raise DistributeError(f"DISTRIBUTE={mode} needs the {wanted} backend (this process runs on "
                                  f"{backend.current()}): use --backend {wanted}, or DISTRIBUTE={other} here")
        if mode == "mirrored":
            return cls._mirrored(config)
        if mode == "data_parallel":
            return cls._data_parallel(config)
        if backend.on_tensorflow():
            import tensorflow as tf

            return cls("none", tf.distribute.get_strategy(), local_devices()[:1])
        return cls("none", None, local_devices()[:1])

    @classmethod
    def _mirrored(cls, config: Config) -> Distribution:
        strategy = mirrored_strategy(mirrored_devices())
        devices = [short_name(d) for d in strategy.extended.worker_devices]
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

    @classmethod
    def _data_parallel(cls, config: Config) -> Distribution:
        """keras.distribution.DataParallel over every device (of every process, when several have
        joined): the variables replicated, each global batch split along its first axis, XLA's
        all-reduce of the gradients in the step. Several processes each feed their own shard of
        every batch (auto_shard_dataset is for tf.data pipelines only)."""
        import jax

        processes, process = jax.process_count(), jax.process_index()
        devices = local_devices() if processes == 1 else [f"{d.platform}:{d.id}" for d in jax.devices()]
        strategy = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
        strategy.auto_shard_dataset = False
        dist = cls("data_parallel", strategy, devices, process=process, processes=processes)
        text = (f"DISTRIBUTE=data_parallel: {len(devices)} device{'s' if len(devices) > 1 else ''} "
                f"({', '.join(devices)}); BATCH_SIZE {config.BATCH_SIZE} is the global batch"
                + (f" ({config.BATCH_SIZE // len(devices)} per device)" if len(devices) > 1 else ""))
        if processes > 1:
            text += f"; {processes} processes train it, this is process {process} (process 0 writes the run)"
        dist.messages.append(text)
        return dist

    @property
    def shard(self) -> tuple[int, int]:
        """Which slice of every global batch this process feeds: (its index, the process count)."""
        return self.process, self.processes

    @property
    def backend(self) -> str:
        return backend.current()

    def running(self):
        """Where fit and evaluate run: data_parallel's distribution is read by Keras there too
        (MirroredStrategy stays with the model it built)."""
        return self.strategy.scope() if self.mode == "data_parallel" else contextlib.nullcontext()

    @property
    def replicas(self) -> int:
        return len(self.devices)

    def scope(self):
        """Where the model, its optimizer and their variables must be created (and, for
        data_parallel, where fit and evaluate must run: Keras reads the distribution there)."""
        return self.strategy.scope() if self.mode != "none" else contextlib.nullcontext()

    def check_batches(self, batch_size: int, train_count: int) -> list[str]:
        """Refuse batches that cannot split across the replicas; warn about an epoch's odd last batch.

        Keras builds the model under a strategy from the first batch of each
        ``fit`` and ``evaluate`` (``_maybe_symbolic_build``) by averaging the
        replicas' slices elementwise: a first batch whose slices differ in
        size fails there. A slice of no images fails on some CPUs, so a last
        batch smaller than the replica count sits out its epoch
        (``data.images_per_epoch``). Later uneven batches run, but Keras
        averages the replicas' mean losses, which weights their images
        unevenly. (Validation and test batches are padded to split evenly:
        ``data.make_eval_dataset``.)
        """
        from resnet_tui.data.pipeline import images_per_epoch

        if self.processes > 1:
            return self._check_shards(batch_size, {"training": train_count})
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
        if images_per_epoch(train_count, batch_size, self.replicas) < train_count:
            return [f"the last batch of each epoch ({last} images) is smaller than the {self.replicas} replicas, "
                    f"so some replica would get no images: each epoch trains on "
                    f"{train_count - last} of the {train_count} images (a different {last} sit out each epoch)"]
        if last % self.replicas:
            return [f"the last batch of each epoch ({last} images) does not split evenly across {self.replicas} "
                    f"replicas: Keras averages the replicas' mean losses, so that one step weights its images "
                    f"slightly unevenly and its per-iteration loss and accuracy are approximate "
                    f"(epoch and evaluation values are exact)"]
        return []

    def _check_shards(self, batch_size: int, splits: dict[str, int]) -> list[str]:
        """Several processes: every batch, an epoch's last too, must split evenly across all the
        devices (a process's shard of it is one array, split evenly over its own devices)."""
        from resnet_tui.data.pipeline import images_per_epoch

        where = f"the {self.replicas} devices of {self.processes} processes"
        if batch_size % self.replicas:
            raise DistributeError(f"BATCH_SIZE {batch_size} does not split evenly across {where}; "
                                  f"BATCH_SIZE is the global batch: use a multiple of {self.replicas}")
        for name, count in splits.items():
            used = images_per_epoch(count, batch_size, self.replicas) if name == "training" else count
            last = used % batch_size
            if last % self.replicas:
                raise DistributeError(
                    f"the last batch of the {name} split ({last} of its {count} images) does not split evenly "
                    f"across {where}: with several processes every batch must. Use a BATCH_SIZE or a "
                    f"{name} split size that leaves a multiple of {self.replicas}")
        return []

    def check_evaluation(self, batch_size: int, validation_count: int, test_count: int) -> None:
        """Several processes: refuse validation and test splits whose last batch does not split
        evenly (see check_batches for training's)."""
        if self.processes > 1:
            self._check_shards(batch_size, {"validation": validation_count, "test": test_count})

    def record(self) -> dict:
        """What result.json keeps about the placement (and ``processes`` when several trained it)."""
        record = {"strategy": self.mode, "replicas": self.replicas, "devices": list(self.devices),
                  "sync_batch_norm": self.sync_batch_norm}
        return record | ({"processes": self.processes} if self.processes > 1 else {})

    def callbacks(self, train_ds: tf.data.Dataset) -> list:
        """Callbacks the strategy needs around ``fit(train_ds)``; they go first in the list."""
        if self.mode != "mirrored":  # data_parallel's batch norm statistics are one replicated variable
            return []
        callbacks = [AverageReplicaStatistics()] if self.replicas > 1 else []
        generator = getattr(train_ds, "seed_generator", None)
        if generator is not None:
            callbacks.append(RewindInputPipeline(generator))
        return callbacks


class AverageReplicaStatistics(keras.callbacks.Callback):
    """Give every replica the mean of the replicas' batch-norm moving statistics.

    Keras 3 creates BatchNormalization's moving mean and variance with no
    cross-replica aggregation: without SYNC_BATCH_NORM each replica updates
    its own copy from its own slices, so the replicas would validate with
    different statistics and the saved model (the first replica's copy) would
    not be the model that was evaluated. The update is linear
    (``m <- 0.9 m + 0.1 batch_mean``), so the mean of the copies is exactly
    what mean aggregation at every step (tf.keras 2's behaviour) gives. It is
    taken before each validation, at each epoch end (before the checkpoints
    save) and at the end of training (before the test set and the final save).
    """

    def _average(self) -> None:
        import tensorflow as tf

        for weight in self.model.non_trainable_weights:
            copies = list(getattr(weight.value, "values", ()))  # a MirroredVariable's per-device copies
            if len(copies) > 1:
                weight.assign(tf.add_n(copies) / len(copies))

    def on_test_begin(self, logs=None):
        self._average()

    def on_epoch_end(self, epoch, logs=None):
        self._average()

    def on_train_end(self, logs=None):
        self._average()


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
