"""One prepared check of m8 on a GPU with Keras on JAX: is it fast, and does it learn?

Made for one H100 with JAX (CUDA 13) and no network, done in under 8 minutes:

    python benchmarks/gpu_check.py [--budget 420] [--data ../shared/data/cifar10-sample.npz]
    python benchmarks/gpu_check.py --cpu      # the same check as a dry run on the CPU, tiny sizes (~1 min on 2 cores)

Keras, optree, namex, textual and tensorboardX are carried to such a machine as
wheels (benchmarks/fetch_gpu_wheels.sh says how). It prints, one function each:

1. the device (``jax.devices()``, the GPU's name from NVML) and versions;
2. XLA's compile time: plain ``model.fit``'s first step against its later ones;
3. ms per iteration and img/s at batch 128 of plain ``model.fit`` (no callbacks)
   and of the project's trainer path (a real ``Trainer.run`` on a synthetic
   dataset config: streaming, recording, the machine sampler), taking turns
   epoch by epoch inside one run; medians of the rounds, and the target: at most
   3 ms/iteration (64,000 iterations in 3.2 min), the trainer within 5% of plain fit;
4. the input pipeline's cost: fit with AUGMENT_MODE on against off, paired
   (target: within 5%), and the pipeline alone in img/s;
5. a learning check: the 10k CIFAR-10 sample (DATASET.source "npz") trained
   through Trainer for as many epochs (up to ``--learn-epochs``) as the budget
   leaves, validation accuracy per epoch;
6. float32 against MIXED_PRECISION mixed_bfloat16, paired;
7. JIT_COMPILE false, the config's default: Keras on JAX then runs the step op by op;
8. NVML's GPU utilization and memory, sampled in a thread during each of these.

Every measurement but the learning check uses JIT_COMPILE true (XLA). Each one
estimates its cost first from what was measured before; what would not fit in
``--budget`` seconds (counted from the start) is skipped and named.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FULL_RUN = 64000  # the paper's iterations
TARGET_MS = 3.0  # per iteration, trainer path: 64,000 iterations in 3.2 minutes
TARGET_SPEED = 0.95  # trainer against plain fit, augmentation on against off
SAMPLE = ROOT.parent / "shared" / "data" / "cifar10-sample.npz"  # beside the checkout (it does not travel)
SAMPLE_CARRIED = ROOT / "wheels" / "cifar10-sample.npz"  # where fetch_gpu_wheels.sh puts a copy to carry


@dataclass(frozen=True)
class Sizes:
    batch: int
    steps: int  # iterations per timed epoch; the synthetic set holds batch * steps images
    rounds: int  # paired rounds, after a warm-up
    budget: float  # seconds, from the start
    learn_epochs: int  # the learning check's most epochs
    learn_slice: int | None  # the learning check's training images (None: all of the sample)
    eager_steps: int  # steps timed with JIT_COMPILE false
    first_compile: float  # seconds guessed for a compile before one was measured


# 352 steps: one epoch of the paper's 45k training split at batch 128, so the
# trainer's per-epoch work (records, checkpoint) weighs what it weighs in a real run.
GPU = Sizes(batch=128, steps=352, rounds=5, budget=420, learn_epochs=40, learn_slice=None, eager_steps=20,
            first_compile=60)
# --cpu: a budget that a slow CI machine does not reach, so the dry run always runs everything.
CPU = Sizes(batch=32, steps=3, rounds=1, budget=600, learn_epochs=1, learn_slice=512, eager_steps=2,
            first_compile=15)


class Budget:
    """Seconds left of ``--budget``; a measurement that would not fit is skipped, and said so."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.began = time.perf_counter()
        self.skipped: list[str] = []

    def spent(self) -> float:
        return time.perf_counter() - self.began

    def left(self) -> float:
        return self.seconds - self.spent()

    def fits(self, what: str, estimate: float) -> bool:
        if estimate <= self.left():
            return True
        self.skipped.append(what)
        print(f"{what}: skipped: needs about {estimate:.0f} s, {max(self.left(), 0):.0f} s of the "
              f"{self.seconds:.0f} s budget left", flush=True)
        return False


@dataclass
class Figures:
    """What the measurements found, for the estimates of the later ones and the summary."""

    compile_s: float  # plain fit's first step (trace + XLA compile)
    step_s: float  # plain fit's later steps, synced one by one
    lines: list[str]  # the summary's lines
    trainer_step_s: float | None = None  # the trainer path's iteration
    trainer_overhead_s: float | None = None  # a Trainer run's time outside its epochs: load, compiles, final evaluation


# The GPU, as NVML sees it ----------------------------------------------------

class GpuMonitor:
    """NVML's utilization and memory of every NVIDIA GPU, sampled in a thread, kept per phase.

    NVML's memory is what every process holds: JAX reserves 75% of the GPU at
    its start (XLA_PYTHON_CLIENT_PREALLOCATE), so what m8 needs is JAX's own
    peak (:func:`jax_memory`).
    """

    def __init__(self, interval: float = 0.2):
        from resnet_tui.machine.sampler import sample_gpus

        self.sample_gpus = sample_gpus
        self.interval = interval
        self.available = bool(sample_gpus())
        self.label = "setup"
        self.samples: dict[str, list[Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gpu-check-nvml", daemon=True)

    def start(self) -> GpuMonitor:
        if self.available:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            for sample in self.sample_gpus():
                self.samples.setdefault(self.label, []).append(sample)

    @contextlib.contextmanager
    def phase(self, label: str) -> Iterator[None]:
        saved, self.label = self.label, label
        try:
            yield
        finally:
            self.label = saved
            print(f"  {self.line(label)}", flush=True)

    def line(self, label: str) -> str:
        if not self.available:
            return f"GPU during {label}: no NVIDIA GPU seen by NVML"
        samples = self.samples.get(label, [])
        if not samples:
            return f"GPU during {label}: no NVML sample (shorter than {self.interval} s)"
        busy = [s.utilization for s in samples]
        used, total = max(s.memory_used for s in samples), samples[0].memory_total
        return (f"GPU during {label}: utilization mean {statistics.mean(busy):.0f}% (min {min(busy):.0f}%, "
                f"max {max(busy):.0f}%, {len(samples)} samples), memory used up to {used / 2**30:.1f} of "
                f"{total / 2**30:.1f} GiB (NVML, every process)")


def nvml_gpus() -> list[str]:
    """Each NVIDIA GPU as 'name, memory, driver' from NVML; [] without a driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        driver = pynvml.nvmlSystemGetDriverVersion()
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total
            gpus.append(f"{name.decode() if isinstance(name, bytes) else name}, {memory / 2**30:.0f} GiB, "
                        f"driver {driver.decode() if isinstance(driver, bytes) else driver}")
        return gpus
    except Exception:  # no nvidia-ml-py, no driver: no GPU
        return []


def jax_memory() -> str:
    """JAX's peak memory in use on its first device, or why it cannot say."""
    import jax

    stats = jax.local_devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" not in stats:
        return "JAX: no memory figures for this device"
    limit = stats.get("bytes_limit")
    return (f"JAX: peak {stats['peak_bytes_in_use'] / 2**20:,.0f} MiB in use"
            + (f" of a {limit / 2**30:.1f} GiB pool" if limit else ""))


# 1. The device -------------------------------------------------------------------

def print_device() -> None:
    import jax
    import keras

    from resnet_tui.machine.info import cpu_line

    nvml = "; ".join(f"NVML: {gpu}" for gpu in nvml_gpus()) or "NVML: no NVIDIA GPU"
    print(f"device: jax.devices() = {jax.devices()}; {nvml}")
    print(f"versions: JAX {jax.__version__}, Keras {keras.__version__} on {keras.backend.backend()}, "
          f"Python {sys.version.split()[0]}; CPU: {cpu_line()}", flush=True)


# Shared pieces ------------------------------------------------------------------

def base_config(work: Path, sizes: Sizes, **changes: Any):
    """m8 on the synthetic source (batch * steps training images, no validation), XLA on."""
    from resnet_tui.config import PATH_KEYS, config_from_values, default_values, set_dotted

    values = default_values()
    for key in PATH_KEYS:
        values[key] = str(work / key.lower())
    for key, value in {"DATASET.source": "synthetic", "DATASET.synthetic_train_count": sizes.batch * sizes.steps,
                       "DATASET.synthetic_test_count": sizes.batch * 2, "DATASET.validation_count": 0,
                       "BATCH_SIZE": sizes.batch, "JIT_COMPILE": True, "MAX_ITERATIONS": 0,
                       "EPOCHS_COUNT": 1, **changes}.items():
        set_dotted(values, key, value)
    return config_from_values(values, "m8_gpu_check")


def settle(model) -> None:
    """Wait for the device to finish what was dispatched (JAX returns before the GPU is done)."""
    import jax

    jax.block_until_ready([variable.value for variable in model.variables])


class StepClock:
    """A callback's clock: when fit began, and when each step ended (synced)."""

    def __init__(self):
        import jax
        import keras

        clock = self

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                jax.block_until_ready(logs)
                clock.ends.append(time.perf_counter())

        self.callback = Callback()
        self.start = time.perf_counter()
        self.ends: list[float] = []

    def first_and_later(self) -> tuple[float, list[float]]:
        marks = [self.start, *self.ends]
        return marks[1] - marks[0], [b - a for a, b in zip(marks[1:], marks[2:])]


class PlainFit:
    """m8 compiled from ``config``, trained by ``model.fit`` with no callbacks, one epoch per call."""

    def __init__(self, config, data):
        import keras

        from resnet_tui.data.batches import train_batches
        from resnet_tui.models.resnet import dispatch_build_model
        from resnet_tui.training.compile import compile_model
        from resnet_tui.training.schedules import make_schedule

        keras.utils.set_random_seed(config.SEED)
        self.config = config
        self.model = dispatch_build_model(8, config)
        compile_model(self.model, config, make_schedule(config, FULL_RUN) or config.OPTIMIZER["learning_rate"])
        self.batches = train_batches(data, config.BATCH_SIZE, config.AUGMENT_MODE, config.SEED)

    def warm_up(self, steps: int | None = None) -> tuple[float, list[float]]:
        """The first epoch (or ``steps``), each step synced: (first step's seconds, the later steps')."""
        clock = StepClock()
        self.model.fit(self.batches, epochs=1, steps_per_epoch=steps, callbacks=[clock.callback], verbose=0,
                       shuffle=False)
        return clock.first_and_later()

    def epoch(self, batches: Any = None) -> float:
        """Seconds of one epoch of ``batches`` (default: its own), until the device is done.

        Timed from fit's epoch start to its end, as the trainer's epochs are, by a
        callback with only those two hooks: fit's own start (its data adapter, its
        peek at a batch) is left out, as it is once per run, not once per epoch."""
        import keras

        marks: list[float] = []
        model = self.model

        class EpochClock(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                marks.append(time.perf_counter())

            def on_epoch_end(self, epoch, logs=None):
                settle(model)
                marks.append(time.perf_counter())

        model.fit(batches if batches is not None else self.batches, epochs=1, callbacks=[EpochClock()], verbose=0,
                  shuffle=False)
        return marks[1] - marks[0]


def paired(rounds: int, a: Callable[[], float], b: Callable[[], float]) -> tuple[list[float], list[float]]:
    """``rounds`` of one call of each, the order swapped every round: (a's seconds, b's)."""
    times_a, times_b = [], []
    for round_ in range(rounds):
        if round_ % 2 == 0:
            times_a.append(a())
            times_b.append(b())
        else:
            times_b.append(b())
            times_a.append(a())
    return times_a, times_b


def speed(label: str, seconds: list[float], steps: int, batch: int) -> tuple[str, float]:
    """A figure's line (ms/iteration, img/s, 64k projection, every round) and its ms/iteration."""
    per_iteration = statistics.median(seconds) / steps
    line = (f"{label:<44} {per_iteration * 1e3:8.2f} ms/iteration {batch / per_iteration:9,.0f} img/s  "
            f"64,000 iterations in {per_iteration * FULL_RUN / 60:5.1f} min  "
            f"(rounds: {', '.join(f'{s / steps * 1e3:.2f}' for s in seconds)} ms)")
    return line, per_iteration * 1e3


def ratio(a: list[float], b: list[float]) -> float:
    """Median over the rounds of b's seconds / a's: a's speed relative to b's."""
    return statistics.median(tb / ta for ta, tb in zip(a, b))


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


# 2. XLA compile: first step against later ones -------------------------------------

def measure_compile(config, data, sizes: Sizes, budget: Budget, gpu: GpuMonitor) -> tuple[PlainFit, Figures] | None:
    if not budget.fits("XLA compile", sizes.first_compile * 1.5 + 10):
        return None
    with gpu.phase("compile"):
        start = time.perf_counter()
        plain = PlainFit(config, data)
        built = time.perf_counter() - start
        first, later = plain.warm_up()
    step = statistics.median(later) if later else first
    print(f"XLA compile (plain fit, float32): first step {first:.1f} s (trace + compile; m8 built and compiled "
          f"in {built:.1f} s before it), later steps {step * 1e3:.2f} ms (median of {len(later)}, each synced)",
          flush=True)
    return plain, Figures(first, step, [f"XLA compile: first step {first:.1f} s, later steps {step * 1e3:.2f} ms"])


# 3. Plain fit against the trainer path ----------------------------------------------

def measure_trainer(config, plain: PlainFit, sizes: Sizes, budget: Budget, gpu: GpuMonitor, figures: Figures) -> None:
    """One Trainer run of rounds + 1 epochs; before each of its epochs after the first, one
    epoch of plain fit (a callback runs it), so the two take turns and share the GPU's state."""
    import keras

    from resnet_tui.events import EpochEnd, LogMessage
    from resnet_tui.training.trainer import Trainer

    epoch_s = sizes.steps * figures.step_s
    estimate = 3 * figures.compile_s + (2 * sizes.rounds + 1) * epoch_s * 1.5 + 10
    if not budget.fits("trainer path vs plain fit", estimate):
        return

    class TakeTurns(keras.callbacks.Callback):
        """Times the trainer's epochs (its batches; its whole epoch, end included) with plain fit's between."""

        def __init__(self):
            super().__init__()
            self.plain: list[float] = []
            self.batches: list[float] = []
            self.epochs: list[float] = []
            self.began: float | None = None

        def on_epoch_begin(self, epoch, logs=None):
            if self.began is not None:
                self.epochs.append(time.perf_counter() - self.began)
            if epoch > 0:
                self.plain.append(plain.epoch())
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.batches.append(time.perf_counter() - self.began)

        def on_train_end(self, logs=None):
            self.epochs.append(time.perf_counter() - self.began)

    turns = TakeTurns()
    problems: list[str] = []

    def sink(event: Any) -> None:
        if isinstance(event, LogMessage) and event.level != "info":
            problems.append(f"{event.level}: {event.text}")
        elif isinstance(event, EpochEnd) and event.epoch == 1:
            print(f"  trainer: first epoch {event.duration:.1f} s (its compile included)", flush=True)

    trainer = Trainer(config.with_values({"EPOCHS_COUNT": sizes.rounds + 1}), sink=sink, extra_callbacks=[turns])
    start = time.perf_counter()
    with gpu.phase("trainer vs plain fit"):
        result = trainer.run()
    wall = time.perf_counter() - start
    for problem in problems:
        print(f"  trainer {problem}")
    if result.status != "completed" or len(turns.batches) < 2:
        print(f"trainer path: the run ended {result.status}: {result.error or result.stop_reason}", flush=True)
        return
    trainer_batches, trainer_epochs, plain_s = turns.batches[1:], turns.epochs[1:], turns.plain
    line_plain, plain_ms = speed("plain fit (no callbacks)", plain_s, sizes.steps, sizes.batch)
    line_trainer, trainer_ms = speed("trainer path (fit's batches)", trainer_batches, sizes.steps, sizes.batch)
    line_whole, _ = speed("trainer path (whole epoch: records, checkpoint)", trainer_epochs, sizes.steps, sizes.batch)
    relative = ratio(trainer_batches, plain_s)
    relative_whole = ratio(trainer_epochs, plain_s)
    figures.trainer_step_s = trainer_ms / 1e3
    figures.trainer_overhead_s = wall - sum(turns.epochs) - sum(plain_s) + turns.epochs[0] - sum(trainer_epochs) / len(
        trainer_epochs)  # the first epoch's compile counted as overhead
    print(f"  trainer run: {wall:.1f} s, of which {figures.trainer_overhead_s:.1f} s outside its timed epochs (data, "
          f"build, compiles, final save and evaluation)")
    print(f"{line_plain}\n{line_trainer}   target <= {TARGET_MS:.0f} ms: {verdict(trainer_ms <= TARGET_MS)}\n{line_whole}")
    print(f"trainer path / plain fit speed: {relative:.3f} (whole epoch {relative_whole:.3f}), median of "
          f"{len(plain_s)} paired rounds   target >= {TARGET_SPEED}: {verdict(relative >= TARGET_SPEED)}", flush=True)
    figures.lines += [f"plain fit: {plain_ms:.2f} ms/iteration, {sizes.batch / plain_ms * 1e3:,.0f} img/s",
                      f"trainer path: {trainer_ms:.2f} ms/iteration, {sizes.batch / trainer_ms * 1e3:,.0f} img/s, "
                      f"64,000 iterations in {trainer_ms * FULL_RUN / 6e4:.1f} min; target <= {TARGET_MS:.0f} ms: "
                      f"{verdict(trainer_ms <= TARGET_MS)}",
                      f"trainer / plain fit speed: {relative:.3f} (whole epoch {relative_whole:.3f}); "
                      f"target >= {TARGET_SPEED}: {verdict(relative >= TARGET_SPEED)}"]


# 4. The input pipeline --------------------------------------------------------------

def measure_pipeline(config, data, plain: PlainFit, sizes: Sizes, budget: Budget, gpu: GpuMonitor,
                     figures: Figures) -> None:
    from resnet_tui.data.batches import train_batches

    if not budget.fits("input pipeline", 2 * sizes.rounds * sizes.steps * figures.step_s * 1.5 + 5):
        return
    plain_off = train_batches(data, config.BATCH_SIZE, False, config.SEED)
    with gpu.phase("pipeline"):
        plain.epoch(plain_off)  # its first fit: the pipeline's own start-up, not timed
        on, off = paired(sizes.rounds, plain.epoch, lambda: plain.epoch(plain_off))
        alone = pipeline_alone(plain.batches)
    line_on, _ = speed("plain fit, AUGMENT_MODE on", on, sizes.steps, sizes.batch)
    line_off, _ = speed("plain fit, AUGMENT_MODE off", off, sizes.steps, sizes.batch)
    relative = ratio(on, off)
    trained = sizes.batch * sizes.steps / statistics.median(on)
    print(f"{line_on}\n{line_off}\naugmentation on / off speed: {relative:.3f}, median of {len(on)} paired rounds   "
          f"target >= {TARGET_SPEED}: {verdict(relative >= TARGET_SPEED)}")
    print(f"input pipeline alone (augmented, its read-ahead threads): {alone:,.0f} img/s = {alone / trained:.1f}x "
          f"what training takes", flush=True)
    figures.lines.append(f"augmentation on / off speed: {relative:.3f}; target >= {TARGET_SPEED}: "
                         f"{verdict(relative >= TARGET_SPEED)}; pipeline alone {alone:,.0f} img/s")


def pipeline_alone(batches: Any) -> float:
    """Images per second of reading one epoch of ``batches`` with nothing training."""
    start, images = time.perf_counter(), 0
    for index in range(len(batches)):
        images += len(batches[index][1])
    return images / (time.perf_counter() - start)


# 6. float32 against mixed_bfloat16 ----------------------------------------------------

def measure_precision(config, data, plain: PlainFit, sizes: Sizes, budget: Budget, gpu: GpuMonitor,
                      figures: Figures) -> None:
    epoch_s = sizes.steps * figures.step_s
    if not budget.fits("float32 vs mixed_bfloat16", figures.compile_s * 1.5 + 2 * sizes.rounds * epoch_s * 1.5 + 5):
        return
    with gpu.phase("float32 vs mixed_bfloat16"):
        bf16 = PlainFit(config.with_values({"MIXED_PRECISION": "mixed_bfloat16"}), data)
        first, _ = bf16.warm_up()
        f32, b16 = paired(sizes.rounds, plain.epoch, bf16.epoch)
    line_f32, _ = speed("plain fit, float32", f32, sizes.steps, sizes.batch)
    line_b16, _ = speed("plain fit, mixed_bfloat16", b16, sizes.steps, sizes.batch)
    relative = ratio(b16, f32)
    print(f"mixed_bfloat16: first step {first:.1f} s (its compile)\n{line_f32}\n{line_b16}\n"
          f"mixed_bfloat16 / float32 speed: {relative:.3f}, median of {len(f32)} paired rounds", flush=True)
    figures.lines.append(f"mixed_bfloat16 / float32 speed: {relative:.3f}")


# 5. The learning check --------------------------------------------------------------

def learning_check(path: Path, sizes: Sizes, work: Path, budget: Budget, gpu: GpuMonitor, figures: Figures) -> None:
    """Trainer on the 10k CIFAR-10 sample: validation accuracy per epoch, as many epochs as fit."""
    import numpy as np

    from resnet_tui.events import EpochEnd, LogMessage
    from resnet_tui.training.trainer import Trainer

    if not path.is_file():
        print(f"learning check: skipped: {path} is absent (the 10k CIFAR-10 sample; --data names another)")
        figures.lines.append("learning check: skipped, no sample")
        return
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    if sizes.learn_slice:
        n = sizes.learn_slice
        arrays = {"x_train": arrays["x_train"][:n], "y_train": arrays["y_train"][:n],
                  "x_val": arrays["x_val"][:n // 4], "y_val": arrays["y_val"][:n // 4]}
        path = work / "sample-slice.npz"
        np.savez(path, **arrays)
    train, val = len(arrays["y_train"]), len(arrays.get("y_val", ()))
    steps = math.ceil(train / sizes.batch)
    step_s = figures.trainer_step_s or figures.step_s
    epoch_s = (steps + math.ceil(val / sizes.batch) / 3) * step_s * 1.3 + 0.2
    # A Trainer run's overhead as the timed run showed it, plus the validation's compile; else 4 compiles
    # (training, validation, the final evaluate and predict)
    compiles = (figures.trainer_overhead_s + figures.compile_s if figures.trainer_overhead_s is not None
                else 4 * figures.compile_s)
    epochs = min(sizes.learn_epochs, int((budget.left() - compiles - 10) / epoch_s))
    if epochs < min(3, sizes.learn_epochs):
        budget.fits("learning check", compiles + 10 + min(3, sizes.learn_epochs) * epoch_s)
        return
    total = steps * epochs
    config = base_config(work, sizes, **{
        "DATASET.source": "npz", "DATA_PATH": str(path.resolve()), "DATASET.validation_count": 1000,
        "EPOCHS_COUNT": epochs, "AUGMENT_MODE": True,
        "STEP_SCHEDULE.boundaries": [max(1, total // 2), max(2, total * 3 // 4)]})
    print(f"learning check: {path.name}, {train} training / {val} validation images, {epochs} epochs of {steps} "
          f"iterations, learning rate 0.1 divided by 10 after iterations {total // 2} and {total * 3 // 4}", flush=True)
    best = [0.0, 0]

    def sink(event: Any) -> None:
        if isinstance(event, EpochEnd):
            accuracy = event.val_accuracy if event.val_accuracy is not None else float("nan")
            if accuracy > best[0]:
                best[:] = [accuracy, event.epoch]
            print(f"learning check: epoch {event.epoch:3d}/{epochs}  val_accuracy {accuracy:.4f}  "
                  f"loss {event.loss:.3f}  accuracy {event.accuracy:.4f}  {event.duration:5.1f} s", flush=True)
        elif isinstance(event, LogMessage) and event.level != "info":
            print(f"learning check: {event.level}: {event.text}", flush=True)

    start = time.perf_counter()
    with gpu.phase("learning check"):
        result = Trainer(config, sink=sink).run()
    took = time.perf_counter() - start
    if result.status != "completed":
        print(f"learning check: the run ended {result.status}: {result.error or result.stop_reason}", flush=True)
        figures.lines.append(f"learning check: {result.status}")
        return
    line = (f"learning check: best val_accuracy {best[0]:.4f} at epoch {best[1]} of {epochs}; final evaluation "
            f"{result.test_accuracy:.4f}; {took:.0f} s in all")
    print(line, flush=True)
    figures.lines.append(line)


# 7. JIT_COMPILE false ----------------------------------------------------------------

def measure_jit_off(config, data, sizes: Sizes, budget: Budget, gpu: GpuMonitor, figures: Figures) -> None:
    """The config's default, JIT_COMPILE false: Keras on JAX runs the step op by op (no jax.jit)."""
    if not budget.fits("JIT_COMPILE false", figures.compile_s + sizes.eager_steps * 0.2 + 10):
        return
    with gpu.phase("JIT_COMPILE false"):
        eager = PlainFit(config.with_values({"JIT_COMPILE": False}), data)
        first, later = eager.warm_up(steps=sizes.eager_steps + 1)
    step = statistics.median(later) if later else first
    line = (f"JIT_COMPILE false (the config's default; Keras on JAX runs the step op by op): first step {first:.1f} s, "
            f"later {step * 1e3:.1f} ms/iteration (median of {len(later)}) = {step / figures.step_s:.1f}x the XLA step")
    print(line, flush=True)
    figures.lines.append(line)


# The check -------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="dry run on the CPU with tiny sizes (CI proves the script)")
    parser.add_argument("--budget", type=float, help=f"seconds (default {GPU.budget:.0f}; --cpu {CPU.budget:.0f}); "
                        "what would not fit is skipped")
    parser.add_argument("--steps", type=int, help=f"iterations per timed epoch (default {GPU.steps}; --cpu {CPU.steps})")
    parser.add_argument("--rounds", type=int, help=f"paired rounds (default {GPU.rounds}; --cpu {CPU.rounds})")
    parser.add_argument("--learn-epochs", type=int, help=f"the learning check's most epochs (default {GPU.learn_epochs})")
    parser.add_argument("--data", type=Path, help="the 10k CIFAR-10 sample (default ../shared/data/cifar10-sample.npz "
                        "from the repository, else wheels/cifar10-sample.npz)")
    args = parser.parse_args(argv)
    sizes = CPU if args.cpu else GPU
    changes = {"budget": args.budget, "steps": args.steps, "rounds": args.rounds, "learn_epochs": args.learn_epochs}
    sizes = replace(sizes, **{key: value for key, value in changes.items() if value is not None})
    if args.data is None:
        args.data = SAMPLE if SAMPLE.is_file() or not SAMPLE_CARRIED.is_file() else SAMPLE_CARRIED
    return args, sizes


def main(argv: list[str] | None = None) -> int:
    args, sizes = parse_args(argv)
    budget = Budget(sizes.budget)
    if args.cpu:
        os.environ["JAX_PLATFORMS"] = "cpu"
    from resnet_tui import backend

    backend.choose("jax")  # before Keras is imported
    print_device()
    import jax

    if not args.cpu and not any(device.platform == "gpu" for device in jax.devices()):
        print(f"no GPU: JAX sees {jax.devices()} (is jax[cuda13] installed?); --cpu runs the dry run", flush=True)
        return 2
    print(f"sizes: batch {sizes.batch}, {sizes.steps} iterations per timed epoch, {sizes.rounds} paired rounds, "
          f"budget {sizes.budget:.0f} s{' (--cpu: a dry run)' if args.cpu else ''}", flush=True)

    from resnet_tui.data.load import dispatch_load_dataset

    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    gpu = GpuMonitor().start()
    config = base_config(work, sizes)
    data = dispatch_load_dataset(8, config)
    print(f"data: {data.description}", flush=True)
    failed: list[str] = []

    def guarded(measurement: Callable[..., Any], *arguments: Any) -> Any:
        """``measurement(*arguments)``; a failure is printed and counted, and the check goes on."""
        try:
            return measurement(*arguments)
        except Exception as exc:
            failed.append(measurement.__name__)
            print(f"{measurement.__name__}: failed: {type(exc).__name__}: {str(exc)[:500]}", flush=True)
            traceback.print_exc()
            return None

    try:
        compiled = guarded(measure_compile, config, data, sizes, budget, gpu)
        if compiled is None:
            return 1
        plain, figures = compiled
        guarded(measure_trainer, config, plain, sizes, budget, gpu, figures)
        guarded(measure_pipeline, config, data, plain, sizes, budget, gpu, figures)
        guarded(learning_check, args.data, sizes, work, budget, gpu, figures)
        guarded(measure_precision, config, data, plain, sizes, budget, gpu, figures)
        guarded(measure_jit_off, config, data, sizes, budget, gpu, figures)
    finally:
        gpu.stop()
        shutil.rmtree(work, ignore_errors=True)
    gpus = nvml_gpus()
    print(f"\nsummary (batch {sizes.batch}; {gpus[0] if gpus else 'no NVIDIA GPU'}):")
    for line in figures.lines:
        print(f"  {line}")
    print(f"  {jax_memory()}")
    for what in budget.skipped:
        print(f"  skipped (over the budget): {what}")
    for name in failed:
        print(f"  failed: {name}")
    print(f"total {budget.spent():.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
