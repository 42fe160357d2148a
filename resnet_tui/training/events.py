"""Plain event objects: the whole contract between the trainer and its watchers.

The trainer emits them through a *sink* (any callable taking one event) from the
thread that trains. Sinks must be quick and must not touch a UI directly: the
dashboard puts them in a thread-safe buffer and drains it on a timer.

Per-iteration numbers come in two flavours, labelled by name:
``loss``/``accuracy`` are the value for that one batch (derived exactly from
Keras' running sums after each step, see ``steplog.py``), ``epoch_loss``/
``epoch_accuracy`` are Keras' running means over the epoch so far. Losses
include the L2 penalty, as Keras reports. There is one IterationEnd per
iteration, in order, whatever STEPS_PER_EXECUTION is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Union


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    config_name: str
    config: dict
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
    status: str  # "completed", "stopped" or "failed"
    stop_reason: str  # which bound ended the run, in words
    iterations: int
    epochs: int
    duration: float
    test_loss: float | None = None
    test_accuracy: float | None = None
    best_val_accuracy: float | None = None
    error: str | None = None


Event = Union[RunStarted, IterationEnd, EpochEnd, DatasetProgress, LogMessage, RunFinished]
Sink = Callable[[Event], None]

EVENT_TYPES = {cls.__name__: cls for cls in (RunStarted, IterationEnd, EpochEnd, DatasetProgress, LogMessage, RunFinished)}


def event_to_dict(event: Event) -> dict[str, Any]:
    return {"type": type(event).__name__, **asdict(event)}


def event_from_dict(data: dict[str, Any]) -> Event:
    data = dict(data)
    cls = EVENT_TYPES[data.pop("type")]
    return cls(**data)


@dataclass
class SinkFanout:
    """Calls several sinks in order."""

    sinks: list[Sink] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        for sink in self.sinks:
            sink(event)
