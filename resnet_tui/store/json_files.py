"""One validating reader for the JSON files a run keeps (store/runs.py says where each lives).

Everything that reads ``result.json``, ``run.json``, the ``lock``, ``plan.json``,
``notes.json``, ``config.json`` or the checkpoint's ``state.json`` goes through :func:`read_json`.
A missing file is ``None``; a file that is not UTF-8 JSON, not an object, lacks a
required field or has a field of the wrong type raises :class:`RunFileError`,
whose text names the file and says what is wrong, e.g.
``result.json: "started" should be a number, got "yesterday"``.

A file's shape is a dataclass: each field's type says what its value must be,
a field with a default may be absent, and keys the dataclass does not name are
left alone (a newer version may add some).
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field, fields, make_dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from types import NoneType, UnionType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from resnet_tui.events import RunStarted, RunStatus

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

# The RunStatus members that are ``finished``. A str enum: result.json's "completed" is one of them
# (read_json compares the values), and a type checker takes the trainer's RunStatus.COMPLETED.
FinishedStatus = Literal[RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.FAILED]


class RunFileError(ValueError):
    """A run file that cannot be used; ``str()`` is ``<file name>: <what is wrong>``."""

    def __init__(self, path: Path, what: str):
        super().__init__(f"{path.name}: {what}")
        self.path = path


@dataclass
class RunMeta:
    """``LOG_PATH/<id>/run.json``: who started the run, and when."""

    run_id: str = ""
    config_name: str = "?"
    pid: int | None = None
    host: str | None = None
    started: float | None = None
    backend: str = "tensorflow"  # Keras' backend (runs from before the choice existed trained on TensorFlow)
    sweep: dict[str, Any] | None = None  # {"study": name, "trial": number} for a sweep's trial


@dataclass
class LockOwner:
    """``LOG_PATH/<id>/lock``: the process writing the run."""

    pid: int
    host: str
    # When that process started (psutil's create_time): a live pid that started at another
    # time is another process that reuses the number (pids wrap; a reboot starts them over).
    process_started: float | None = None


@dataclass
class RunResult:
    """``RESULT_PATH/<id>/result.json``, written once when the run ends."""

    status: FinishedStatus
    run_id: str = ""
    config_name: str = "?"
    started: float = 0.0
    finished: float = 0.0
    resumed_at: list[float] = field(default_factory=list)
    stop_reason: str = ""
    error: str | None = None
    duration: float = 0.0
    iterations: int = 0
    epochs: int = 0
    param_count: int = 0
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None
    versions: dict[str, Any] | str = field(default_factory=dict)  # a str says why they are unknown
    device: str = ""
    dataset: dict[str, Any] = field(default_factory=dict)
    distribute: dict[str, Any] = field(default_factory=dict)
    confusion: dict[str, Any] | None = None  # the test split's confusion matrix (confusion.py's record)
    health: list[dict[str, Any]] = field(default_factory=list)  # what health.py's rules said while it trained


@dataclass
class RunNotes:
    """``LOG_PATH/<id>/notes.json``: what the user says about a run (``resnet-tui note``, ``tag``,
    ``hide``; the Runs screen's n, t, h). The trainer never writes it."""

    note: str = ""
    tags: list[str] = field(default_factory=list)
    hidden: bool = False  # left out of `resnet-tui runs` and the Runs screen unless asked for


# ``LOG_PATH/<id>/plan.json``: what a follower needs to draw progress, as the run's RunStarted says it.
PLAN_FIELDS = ("steps_per_epoch", "total_iterations", "param_count", "train_count", "val_count", "test_count",
               "start_iteration")
RunPlan = make_dataclass("RunPlan", [(name, get_type_hints(RunStarted)[name], field(default=0))
                                      for name in PLAN_FIELDS])


def read_json(path: Path, shape: type | None) -> dict[str, Any] | None:
    """The object ``path`` holds, checked against the dataclass ``shape`` (None: any object);
    None when the file does not exist; RunFileError when it cannot be used."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise RunFileError(path, f"not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02x})") from None
    except json.JSONDecodeError as exc:
        raise RunFileError(path, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except OSError as exc:
        raise RunFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise RunFileError(path, f"should be a JSON object, got {_shown(data)}")
    problems = [] if shape is None else field_problems(data, shape)
    if problems:
        raise RunFileError(path, "; ".join(problems))
    return data


def build(shape: type[T], data: dict[str, Any]) -> T:
    """The dataclass ``shape`` from a checked object (keys it does not name are left out)."""
    return shape(**{f.name: data[f.name] for f in fields(shape) if f.name in data})


def field_problems(data: dict[str, Any], shape: type) -> list[str]:
    """What is wrong with ``data`` as the dataclass ``shape``, one phrase per field."""
    problems = []
    for f in fields(shape):
        hint = _hints(shape)[f.name]
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                problems.append(f'"{f.name}" is missing')
        elif not _accepts(data[f.name], hint):
            problems.append(f'"{f.name}" should be {_describe(hint)}, got {_shown(data[f.name])}')
    return problems


@cache
def _hints(shape: type) -> dict[str, Any]:
    return get_type_hints(shape)


def _accepts(value: object, hint: Any) -> bool:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, UnionType):
        return any(_accepts(value, a) for a in args)
    if origin is Literal:
        return value in args
    if hint is NoneType:
        return value is None
    if hint in (int, float):  # JSON's 2 is a fine float; true is not a number
        return isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return value in {m.value for m in hint}
    if origin is list:
        return isinstance(value, list) and all(_accepts(v, args[0]) for v in value)
    return isinstance(value, origin or hint)


_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "an object",
          NoneType: "null"}


def _describe(hint: Any) -> str:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if origin is list:
        return f"a list of {_describe(args[0]).split(' ', 1)[1]}s" if args else "a list"
    return _NAMES.get(origin or hint, getattr(hint, "__name__", str(hint)))


def _shown(value: object, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit - 1] + "…"
