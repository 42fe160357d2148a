"""Plain event objects: the whole contract between the trainer and its watchers.

The trainer emits them through a *sink* (any callable taking one event) from the
thread that trains, except MachineSample, which comes from the machine
sampler's thread (machine/sampler.py), about once a second. Sinks must be quick,
thread-safe and must not touch a UI directly: the dashboard puts them in a
thread-safe buffer and drains it on a timer.

Per-iteration numbers come in two flavours, labelled by name:
``loss``/``accuracy`` are the value for that one batch (derived exactly from
Keras' running sums after each step, see ``steplog.py``), ``epoch_loss``/
``epoch_accuracy`` are Keras' running means over the epoch so far. Losses
include the L2 penalty, as Keras reports. There is one IterationEnd per
iteration, in order, whatever STEPS_PER_EXECUTION is.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    """A run's status, as result.json records it and every listing shows it."""

    COMPLETED = "completed"  # ended by its plan: epochs, iteration cap or early stopping
    STOPPED = "stopped"  # a person stopped it; it can be resumed
    FAILED = "failed"  # an error or divergence ended it
    RUNNING = "running"  # a live process writes it (never in result.json)
    INTERRUPTED = "interrupted"  # its process ended without a result
    CORRUPT = "corrupt"  # its files cannot be read

    @property
    def finished(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.FAILED)


class StopReason(StrEnum):
    """What ended a run; result.json's ``stop_reason`` starts with one and may add details."""

    EPOCH_LIMIT = "epoch limit"
    ITERATION_CAP = "iteration cap"
    EARLY_STOPPING = "early stopping"
    USER = "stopped by user"
    DIVERGED = "training diverged"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    config_name: str
    config: dict[str, Any]
    model_summary: str
    param_count: int
    steps_per_epoch: int
    total_iterations: int  # what the run will do if nothing stops it early
    epochs: int
    batch_size: int
    train_count: int
    val_count: int
    test_count: int
    start_iteration: int = 0  # > 0 when a run is resumed
    time: float = 0.0  # wall clock (time.time()) at the start
    backend: str = "tensorflow"  # the Keras backend it trains on (runs from before the choice: TensorFlow)


@dataclass(frozen=True, slots=True)
class IterationEnd:
    iteration: int  # 1-based count of optimizer updates done
    epoch: int  # 1-based
    loss: float  # this batch
    accuracy: float  # this batch
    lr: float  # learning rate used for this update
    images_per_sec: float  # this batch, host wall time (the execution's average when STEPS_PER_EXECUTION > 1)
    epoch_loss: float  # Keras' running mean over the epoch so far
    epoch_accuracy: float
    elapsed: float  # seconds since the run started (pauses excluded)


@dataclass(frozen=True, slots=True)
class EpochEnd:
    epoch: int  # 1-based
    iteration: int
    loss: float  # epoch means (Keras epoch logs)
    accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    duration: float  # seconds for this epoch, validation included
    elapsed: float


@dataclass(frozen=True, slots=True)
class DatasetProgress:
    done_bytes: int  # of a dataset download
    total_bytes: int  # 0 when unknown


@dataclass(frozen=True, slots=True)
class LogMessage:
    level: str  # "info", "warning" or "error"
    text: str


@dataclass(frozen=True, slots=True)
class RunFinished:
    run_id: str
    status: RunStatus  # completed, stopped or failed; a followed run may also end interrupted or corrupt
    stop_reason: str  # which bound ended the run, in words
    iterations: int
    epochs: int
    duration: float
    test_loss: float | None = None
    test_accuracy: float | None = None
    best_val_accuracy: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class GpuSample:
    index: int  # NVML's device index
    utilization: float  # % of the last sample period a kernel ran (NVML's GPU utilization)
    memory_used: int  # bytes, by every process on the GPU
    memory_total: int
    temperature: float  # degrees Celsius


@dataclass(frozen=True, slots=True)
class MachineSample:
    """What the training process and its machine use, sampled about once a second.

    Unlike the other events it comes from the sampler's own thread (machine/sampler.py).
    """

    time: float  # wall clock
    cpu_percent: float  # the process, all its threads: 100 is one core busy, so it may exceed 100
    rss: int  # bytes, the process's resident memory
    ram_used: int  # bytes, the system's memory in use (total - available)
    ram_total: int
    gpus: tuple[GpuSample, ...] = ()  # empty without an NVIDIA driver


@dataclass(frozen=True, slots=True)
class MachineEpoch:
    """One epoch's MachineSamples in one row of machine.csv (store/records.py): means unless named
    otherwise. Several GPUs are aggregated: mean utilization, summed memory, hottest temperature."""

    epoch: int  # 1-based, as EpochEnd's
    samples: int
    cpu_percent: float
    rss: int  # bytes
    rss_peak: int
    ram_used: int
    ram_total: int
    gpus: int  # how many GPUs were sampled (0: none)
    gpu_utilization: float | None  # %
    gpu_memory_used: float | None  # bytes, summed over the GPUs
    gpu_memory_total: float | None
    gpu_temperature: float | None  # the highest sampled, degrees Celsius


Event = (RunStarted | IterationEnd | EpochEnd | DatasetProgress | LogMessage | RunFinished | MachineSample
         | MachineEpoch)
Sink = Callable[[Event], None]


@dataclass
class SinkFanout:
    """Calls the run's own sinks, then its watchers, in order.

    ``sinks`` keep the run's records: their exceptions propagate and fail the
    run. ``watchers`` (a dashboard, a progress bar, a test's collector) only
    look: a watcher's exception is caught, so it never fails a run. Its first
    one is reported with the traceback to the run's own sinks (train.log) and
    in one line to every watcher; the watcher misses that event and gets the
    next ones; how many it missed in all is told before RunFinished.
    """

    sinks: list[Sink] = field(default_factory=list)
    watchers: list[Sink] = field(default_factory=list)
    _missed: dict[int, int] = field(default_factory=dict)  # id(watcher) -> events it failed on

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunFinished):
            self._tell_missed()
        for sink in self.sinks:
            sink(event)
        self._watch(event)

    def _watch(self, event: Event) -> None:
        for watcher in self.watchers:
            try:
                watcher(event)
            except Exception as exc:
                self._missed[id(watcher)] = self._missed.get(id(watcher), 0) + 1
                if self._missed[id(watcher)] == 1:
                    self._report(watcher, event, exc)

    def _report(self, watcher: Sink, event: Event, exc: Exception) -> None:
        line = (f"{_name(watcher)} failed on {type(event).__name__} ({type(exc).__name__}: {exc}); "
                "the run goes on, without it for that event")
        trace = "".join(traceback.format_exception(exc)).rstrip()
        for sink in self.sinks:
            sink(LogMessage("error", f"{line}\n{trace}"))
        self._watch(LogMessage("error", f"{line} (traceback in the run's train.log)"))

    def _tell_missed(self) -> None:
        for watcher in self.watchers:
            missed = self._missed.get(id(watcher), 0)
            if missed > 1:
                self._missed[id(watcher)] = 1  # told: a failure on this line is not reported again
                self(LogMessage("warning", f"{_name(watcher)} failed on {missed} events in all"))


def _name(watcher: Sink) -> str:
    return f"watcher {getattr(watcher, '__qualname__', type(watcher).__qualname__)}"
