"""A sweep file: the config a sweep starts from, the keys it searches, and how it judges trials.

    {
      "base": "m8_demo.json",                  # a config: beside the sweep file, or in ../configs/
      "params": {
        "OPTIMIZER.learning_rate": {"low": 0.01, "high": 0.5, "log": true},
        "OPTIMIZER.weight_decay": {"low": 1e-5, "high": 1e-3, "log": true},
        "BATCH_SIZE": {"choices": [64, 128]}
      },
      "trials": 8,                             # completed + pruned trials; failed ones are redone
      "timeout_minutes": null,                 # or a wall-time budget
      "sampler": "tpe",                        # or "random"
      "pruner": "median",                      # or "successive_halving", "none"
      "warmup_epochs": 1,                      # epochs every trial runs before it may be pruned
      "seed": 42,
      "storage": null                          # default: sqlite:///ARTIFACT/sweeps/<name>.db
    }

It is checked as a config is: unknown keys with a hint, every searched key a
schema key, every range and choice inside what that key allows. The metric is
a trial's best per-epoch validation accuracy (maximized); the pruner judges
the per-epoch values.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_tui.config import FIELDS, ConfigError, _check_value, _closest, config_from_values, load_config, read_config_json

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "successive_halving", "none")
SWEEP_KEYS = {"base", "params", "trials", "timeout_minutes", "sampler", "pruner", "warmup_epochs", "seed",
              "storage", "heartbeat_seconds"}
PARAM_KEYS = {"low", "high", "log", "step", "choices"}


@dataclass(frozen=True)
class Param:
    """One searched key: a range (``low``..``high``, ``log`` for a log-uniform draw) or ``choices``."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    def suggest(self, trial: Any) -> Any:
        """Optuna's draw for this key in ``trial``."""
        if self.choices is not None:
            # Optuna stores choices as JSON scalars; a list (boundaries) travels as its JSON text.
            drawn = trial.suggest_categorical(self.key, [json.dumps(c) if isinstance(c, list) else c
                                                          for c in self.choices])
            return json.loads(drawn) if isinstance(drawn, str) and drawn.startswith("[") else drawn
        assert self.low is not None and self.high is not None  # a range, when there are no choices
        if FIELDS[self.key].type is int:
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def to_json(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass(frozen=True)
class SweepSpec:
    name: str  # the study's name: the sweep file's name
    base_name: str  # the base config's name: trials' runs are named after it
    base_values: dict[str, Any]  # the base config, resolved
    params: tuple[Param, ...]
    trials: int | None = 8
    timeout_minutes: float | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    warmup_epochs: int = 1
    seed: int | None = None
    storage: str | None = None
    heartbeat_seconds: float = 10.0  # a worker killed mid-trial leaves it failed 3 heartbeats later
    source: Path | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        """What the study keeps, so a worker on another machine needs no file."""
        return {"name": self.name, "base_name": self.base_name, "base_values": self.base_values,
                "params": {p.key: p.to_json() for p in self.params}, "trials": self.trials,
                "timeout_minutes": self.timeout_minutes, "sampler": self.sampler, "pruner": self.pruner,
                "warmup_epochs": self.warmup_epochs, "seed": self.seed, "heartbeat_seconds": self.heartbeat_seconds}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SweepSpec:
        params = tuple(_param(key, value, f"params.{key}") for key, value in data["params"].items())
        return cls(name=data["name"], base_name=data["base_name"], base_values=data["base_values"], params=params,
                   trials=data["trials"], timeout_minutes=data["timeout_minutes"], sampler=data["sampler"],
                   pruner=data["pruner"], warmup_epochs=data["warmup_epochs"], seed=data["seed"],
                   heartbeat_seconds=data["heartbeat_seconds"])


class SweepError(ConfigError):
    """A sweep file that cannot run; ``str()`` names the file and the key."""


def load_sweep(path: str | Path) -> SweepSpec:
    """The sweep in the JSON file ``path``; SweepError naming the key for anything wrong."""
    path = Path(path)
    try:
        raw = read_config_json(path)  # malformed JSON: line and column
    except ConfigError as exc:
        raise SweepError(str(exc)) from None
    if not isinstance(raw, dict):
        raise SweepError(f"{path}: a sweep is a JSON object with {', '.join(sorted(SWEEP_KEYS))}")
    problems = [f"{key}: unknown key{_closest(key, SWEEP_KEYS)}" for key in raw if key not in SWEEP_KEYS]
    for required in ("base", "params"):
        if required not in raw:
            problems.append(f"{required}: missing")
    if problems:
        raise SweepError(f"{path}: " + "; ".join(problems))
    base = _base_config(path, raw["base"])
    if not isinstance(raw["params"], dict) or not raw["params"]:
        raise SweepError(f"{path}: params: expected an object of schema keys to search, e.g. "
                         '{"OPTIMIZER.learning_rate": {"low": 0.01, "high": 0.5, "log": true}}')
    try:
        params = tuple(_param(key, value, f"params.{key}") for key, value in raw["params"].items())
        spec = SweepSpec(
            name=path.stem, base_name=base.name, base_values=base.values, params=params,
            trials=_optional(raw, "trials", int, 1), timeout_minutes=_optional(raw, "timeout_minutes", float, 0),
            sampler=_choice(raw, "sampler", SAMPLERS, "tpe"), pruner=_choice(raw, "pruner", PRUNERS, "median"),
            warmup_epochs=_optional(raw, "warmup_epochs", int, 0) or 0, seed=_optional(raw, "seed", int, 0),
            storage=_optional(raw, "storage", str, None),
            heartbeat_seconds=_optional(raw, "heartbeat_seconds", float, 0) or 10.0, source=path)
    except ValueError as exc:
        raise SweepError(f"{path}: {exc}") from None
    if spec.trials is None and spec.timeout_minutes is None:
        raise SweepError(f"{path}: trials: give a budget: a number of trials, timeout_minutes, or both")
    return spec


def _base_config(path: Path, base: Any) -> Any:
    if not isinstance(base, str) or not base.strip():
        raise SweepError(f"{path}: base: expected the name of a config file, e.g. \"m8_demo.json\"")
    name = base if base.endswith(".json") else base + ".json"
    # Beside the sweep file, or in the configs/ folder beside its folder (sweeps/ next to configs/).
    candidates = [path.parent / name, path.parent.parent / "configs" / name]
    base_path = next((c for c in candidates if c.exists()), candidates[0])
    try:
        return load_config(base_path)
    except ConfigError as exc:
        raise SweepError(f"{path}: base: {exc}") from None


def _optional(raw: dict[str, Any], key: str, kind: type, minimum: float | None) -> Any:
    value = raw.get(key)
    if value is None:
        return None
    ok = isinstance(value, str) if kind is str else (
        not isinstance(value, bool) and isinstance(value, int if kind is int else (int, float)))
    if not ok or (minimum is not None and not value >= minimum) or (kind is float and not math.isfinite(value)):
        want = {str: "a string", int: "an integer", float: "a number"}[kind]
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ValueError(f"{key}: got {json.dumps(value)}, expected {want}{bound} or null")
    return value


def _choice(raw: dict[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = raw.get(key, default)
    if value not in allowed:
        raise ValueError(f"{key}: got {json.dumps(value)}, expected one of {', '.join(map(json.dumps, allowed))}")
    return str(value)


def _param(key: str, value: Any, where: str) -> Param:
    """One searched key, checked against what the schema allows for it."""
    f = FIELDS.get(key)
    if f is None:
        raise ValueError(f"{where}: not a config key{_closest(key, set(FIELDS))}")
    if not isinstance(value, dict) or not value or set(value) - PARAM_KEYS:
        extra = sorted(set(value) - PARAM_KEYS) if isinstance(value, dict) else []
        raise ValueError(f"{where}: " + (f"unknown {', '.join(extra)}; " if extra else "") +
                         'expected {"low": ..., "high": ..., "log": true|false} or {"choices": [...]}')
    if "choices" in value:
        choices = value["choices"]
        if not isinstance(choices, list) or not choices or set(value) != {"choices"}:
            raise ValueError(f"{where}: choices: expected a non-empty list (and nothing else beside it)")
        for choice in choices:
            problem = _check_value(f, choice)
            if problem:
                raise ValueError(f"{where}: choice {problem}")
        return Param(key, choices=tuple(choices))
    if f.type not in (int, float) or f.choices is not None:
        raise ValueError(f"{where}: {key} takes {f.allowed()}: search it with \"choices\"")
    low: float = value.get("low")  # type: ignore[assignment]  # checked just below
    high: float = value.get("high")  # type: ignore[assignment]
    for name, bound in (("low", low), ("high", high)):
        problem = _check_value(f, bound) if bound is not None else "missing"
        if problem:
            raise ValueError(f"{where}.{name}: {problem}")
    if not low < high:
        raise ValueError(f"{where}: low ({low}) must be below high ({high})")
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"{where}.log: expected true or false")
    if log and low <= 0:
        raise ValueError(f"{where}: a log-uniform range needs low > 0, got {low}")
    step = value.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0 or log):
        raise ValueError(f"{where}.step: expected a number > 0 (and no log)")
    return Param(key, low=low, high=high, log=log, step=step)


def trial_values(spec: SweepSpec, drawn: dict[str, Any]) -> dict[str, Any]:
    """The base config's values with a trial's draws set (dotted keys)."""
    from copy import deepcopy

    from resnet_tui.config import set_dotted

    values = deepcopy(spec.base_values)
    for key, value in drawn.items():
        set_dotted(values, key, value)
    return values


def check_trial(spec: SweepSpec, drawn: dict[str, Any]) -> Any:
    """The trial's Config; ConfigError when its draws make a combination the schema refuses."""
    return config_from_values(trial_values(spec, drawn), spec.base_name)
