"""Training configs: one schema that validates, documents and drives the editor.

Configs are JSON files in the seed's format (UPPER_CASE top-level keys, some of
them objects such as ``OPTIMIZER``). Every key the project understands is a
:class:`Field` in :data:`SCHEMA`; a key missing from a file takes its default,
so the seed's own ``m8_base.json`` (which predates the newer keys) still loads.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resnet_tui.registry import MODELS
from resnet_tui.store.atomic import write_text_atomic

if TYPE_CHECKING:  # pragma: no cover
    from resnet_tui.store.runs import Run


class ConfigError(ValueError):
    """A config that cannot be used; ``str()`` is one message fit for a user."""

    def __init__(self, message: str, issues: list[ConfigIssue] | None = None):
        super().__init__(message)
        self.issues = issues or []


@dataclass(frozen=True)
class ConfigIssue:
    key: str  # dotted key, e.g. "OPTIMIZER.learning_rate" ("" for the whole file)
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


@dataclass(frozen=True)
class Field:
    key: str  # dotted path into the JSON
    type: type  # bool, int, float, str or list (of int)
    default: Any
    help: str
    group: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False  # minimum itself not allowed

    def allowed(self) -> str:
        """What values this field accepts, in words."""
        if self.choices is not None:
            return "one of " + ", ".join(json.dumps(c) for c in self.choices)
        kind = {bool: "true or false", int: "an integer", float: "a number",
                str: "a string", list: "a list of integers"}[self.type]
        return kind + self.bounds()

    def bounds(self) -> str:
        """The range in words, e.g. " >= 1 and <= 65536" ("" when unbounded)."""
        low = high = ""
        if self.minimum is not None:
            low = f" {'>' if self.exclusive_minimum else '>='} {_number(self.minimum)}"
        if self.maximum is not None:
            high = f" <= {_number(self.maximum)}"
        return " and".join(part for part in (low, high) if part)

    def in_range(self, value: float) -> bool:
        if self.minimum is not None and (value < self.minimum or (self.exclusive_minimum and value == self.minimum)):
            return False
        return self.maximum is None or value <= self.maximum


def _number(value: float) -> str:
    """Integers in full (a seed's bound is 4294967295, not 4.29497e+09), floats short."""
    return str(value) if isinstance(value, int) else f"{value:g}"


PATH_KEYS = ("CONFIG_PATH", "DATA_PATH", "LOG_PATH", "CHECKPOINT_PATH",
             "RESULT_PATH", "MODEL_PATH", "ERROR_PATH")
DATASET_SOURCES = ("cifar10", "npz", "synthetic", "torchvision")
MONITORS = ("val_accuracy", "val_loss", "accuracy", "loss")
OPTIMIZERS = ("sgd", "adam", "adamw")
# Learning-rate schedules, one at a time: the key that enables each, and its name.
SCHEDULE_SWITCHES = {"STEP_SCHEDULE.enabled": "step", "COSINE_SCHEDULE.enabled": "cosine",
                     "ONE_CYCLE_SCHEDULE.enabled": "one_cycle", "SCHEDULE_MODE.enabled": "plateau"}
DISTRIBUTE_MODES = ("none", "mirrored", "data_parallel")
MIXED_PRECISION_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
MULTI_WORKER_REFUSAL = (
    "multi-machine training is not supported: Keras 3 on TensorFlow does not support "
    "MultiWorkerMirroredStrategy (keras-team/keras issue 20585); "
    'use "mirrored" for several GPUs on one machine, or "data_parallel" on the JAX backend')
# What Keras and TensorFlow accept, so that validate catches what training would refuse.
SYNTHETIC_MAX_IMAGES = 500_000  # 1.5 GB of uint8 images: more would not fit a laptop's memory
SEED_MAX = 2**32 - 1  # keras.utils.set_random_seed: "Seed must be between 0 and 2**32 - 1"
INT64_MAX = 2**63 - 1  # schedule boundaries are compared with the int64 iteration count
# Values refused with their own reason rather than the generic "expected one of".
REFUSED_VALUES: dict[str, dict[str, str]] = {"DISTRIBUTE": {"multi_worker": MULTI_WORKER_REFUSAL}}

SCHEMA: tuple[Field, ...] = (
    # Model and data
    Field("MODEL_NUMBER", int, 8, "Which model to build (8 = ResNet-20, 1 = a tiny CNN for quick checks); "
          "inferred from an 'm<N>_' file name when absent.",
          "Model", choices=tuple(MODELS)),
    Field("DATASET.source", str, "cifar10",
          "Where images come from: cifar10 (download to DATA_PATH), npz (DATA_PATH is a .npz file), "
          "synthetic (offline demo data), torchvision (the seed's loader; needs the torchvision extra).",
          "Data", choices=DATASET_SOURCES),
    Field("DATASET.validation_count", int, 5000,
          "Images held out from the end of the training split for validation (the paper's 45k/5k split).",
          "Data", minimum=0),
    Field("DATASET.synthetic_train_count", int, 2000, "Synthetic source only: training images.", "Data", minimum=1,
          maximum=SYNTHETIC_MAX_IMAGES),
    Field("DATASET.synthetic_test_count", int, 500, "Synthetic source only: test images.", "Data", minimum=1,
          maximum=SYNTHETIC_MAX_IMAGES),
    Field("LIGHT_MODE", bool, False, "Quick look: 1000 training and 200 test images, as the seed does.", "Data"),
    Field("AUGMENT_MODE", bool, True, "4-pixel zero pad, random 32x32 crop and horizontal flip, drawn per image per epoch.",
          "Data"),
    Field("SEED", int, 42, "Random seed for weights, shuffling and augmentation.", "Data", minimum=0,
          maximum=SEED_MAX),
    # Optimizer and regularization
    Field("OPTIMIZER.type", str, "sgd",
          "sgd: SGD with momentum (and nesterov); adam: Adam; adamw: Adam with decoupled weight decay "
          "(OPTIMIZER.weight_decay > 0).", "Optimizer", choices=OPTIMIZERS),
    Field("OPTIMIZER.learning_rate", float, 0.1,
          "Learning rate at the first iteration; the cosine and one-cycle warmups climb from it to their peak.",
          "Optimizer", minimum=0.0, maximum=10.0, exclusive_minimum=True),
    Field("OPTIMIZER.momentum", float, 0.9, "SGD momentum (ignored by adam and adamw).", "Optimizer",
          minimum=0.0, maximum=0.999),
    Field("OPTIMIZER.nesterov", bool, False, "Nesterov momentum (SGD only).", "Optimizer"),
    Field("OPTIMIZER.weight_decay", float, 0.0,
          "Decoupled weight decay (0 = off; SGDW with sgd, AdamW with adamw: Keras' weight_decay): each update "
          "also does w -= lr*weight_decay*w on the conv and dense kernels, outside the gradient, so momentum and "
          "Adam's scaling never see it. Excludes L2_MODE, whose penalty goes through the gradient.",
          "Optimizer", minimum=0.0, maximum=1.0),
    Field("L2_MODE.enabled", bool, True,
          "Coupled L2 penalty on conv and dense kernels (the seed's): part of the loss, so its gradient goes "
          "through momentum and Adam's scaling. Excludes OPTIMIZER.weight_decay.", "L2"),
    Field("L2_MODE.lambda", float, 0.0001,
          "Keras l2(lambda) adds lambda*sum(w^2) to the loss: its gradient is 2*lambda*w, "
          "twice SGD weight decay of the same lambda.", "L2", minimum=0.0, maximum=1.0),
    Field("LABEL_SMOOTHING", float, 0.0,
          "Label smoothing (0 = off): the cross-entropy target is 1 - s on the true class plus s/10 on every "
          "class (Keras' label_smoothing). The reported loss is the smoothed one.", "Loss",
          minimum=0.0, maximum=1.0),
    Field("DROPOUT_MODE.enabled", bool, False, "Dropout (m8 has none: enabling it only warns).", "Dropout"),
    Field("DROPOUT_MODE.rate", float, 0.3, "Dropout rate, for models that use dropout.", "Dropout",
          minimum=0.0, maximum=0.95),
    # Schedules and stopping
    Field("STEP_SCHEDULE.enabled", bool, True,
          "Step schedule counted in iterations (the paper's). One learning-rate schedule at a time: excludes "
          "COSINE_SCHEDULE, ONE_CYCLE_SCHEDULE and SCHEDULE_MODE (plateau).", "Step schedule"),
    Field("STEP_SCHEDULE.boundaries", list, [32000, 48000],
          "Iterations after which the learning rate is multiplied by the factor.", "Step schedule",
          minimum=1, maximum=INT64_MAX),
    Field("STEP_SCHEDULE.factor", float, 0.1, "Multiplier applied at each boundary.", "Step schedule",
          minimum=0.0, maximum=1.0, exclusive_minimum=True),
    Field("COSINE_SCHEDULE.enabled", bool, False,
          "Cosine decay (Keras CosineDecay), after an optional linear warmup; excludes the other schedules.",
          "Cosine schedule"),
    Field("COSINE_SCHEDULE.warmup_steps", int, 0,
          "Iterations of linear warmup from OPTIMIZER.learning_rate to warmup_target (0 = none: the decay "
          "starts from OPTIMIZER.learning_rate).", "Cosine schedule", minimum=0, maximum=INT64_MAX),
    Field("COSINE_SCHEDULE.warmup_target", float, 0.1,
          "Learning rate at the end of the warmup, where the decay starts (used when warmup_steps > 0).",
          "Cosine schedule", minimum=0.0, maximum=10.0, exclusive_minimum=True),
    Field("COSINE_SCHEDULE.decay_steps", int, 0,
          "Iterations of cosine decay after the warmup (0 = to the run's last iteration); then the floor holds.",
          "Cosine schedule", minimum=0, maximum=INT64_MAX),
    Field("COSINE_SCHEDULE.alpha", float, 0.0,
          "Floor, as a fraction of the rate the decay starts from (Keras' alpha).", "Cosine schedule",
          minimum=0.0, maximum=1.0),
    Field("ONE_CYCLE_SCHEDULE.enabled", bool, False,
          "One cycle: linear from OPTIMIZER.learning_rate up to peak_learning_rate over warmup_steps, then linear "
          "down to final_learning_rate at total_steps; excludes the other schedules.", "One-cycle schedule"),
    Field("ONE_CYCLE_SCHEDULE.peak_learning_rate", float, 0.4, "Learning rate at the top of the cycle.",
          "One-cycle schedule", minimum=0.0, maximum=10.0, exclusive_minimum=True),
    Field("ONE_CYCLE_SCHEDULE.warmup_steps", int, 1000, "Iterations of the climb to the peak.",
          "One-cycle schedule", minimum=1, maximum=INT64_MAX),
    Field("ONE_CYCLE_SCHEDULE.total_steps", int, 0,
          "Iteration at which the cycle ends at final_learning_rate (0 = the run's last iteration); then it holds.",
          "One-cycle schedule", minimum=0, maximum=INT64_MAX),
    Field("ONE_CYCLE_SCHEDULE.final_learning_rate", float, 0.0004, "Learning rate at the end of the cycle.",
          "One-cycle schedule", minimum=0.0, maximum=10.0),
    Field("MAX_ITERATIONS", int, 64000, "Stop after this many iterations even if epochs remain (0 = no cap).",
          "Training", minimum=0),
    Field("EPOCHS_COUNT", int, 200, "Maximum number of epochs.", "Training", minimum=1, maximum=100000),
    Field("BATCH_SIZE", int, 128,
          "Images per iteration: the global batch, split evenly across the replicas when DISTRIBUTE is mirrored.",
          "Training", minimum=1, maximum=65536),
    Field("SCHEDULE_MODE.enabled", bool, False,
          "Reduce-on-plateau schedule of m6/m7 (Keras ReduceLROnPlateau); excludes the other schedules.",
          "Plateau schedule"),
    Field("SCHEDULE_MODE.monitor", str, "val_loss", "Metric watched for a plateau.", "Plateau schedule", choices=MONITORS),
    Field("SCHEDULE_MODE.factor", float, 0.1, "Multiplier applied on a plateau.", "Plateau schedule",
          minimum=0.0, maximum=1.0, exclusive_minimum=True),
    Field("SCHEDULE_MODE.patience", int, 10, "Epochs without improvement before reducing.", "Plateau schedule", minimum=0),
    Field("SCHEDULE_MODE.min_delta", float, 0.0001, "Smallest change that counts as improvement.", "Plateau schedule",
          minimum=0.0),
    Field("SCHEDULE_MODE.min_lr", float, 0.0, "Lower bound on the learning rate.", "Plateau schedule", minimum=0.0),
    Field("EARLY_STOP_MODE.enabled", bool, False, "Stop when the monitored metric stops improving (Keras EarlyStopping).",
          "Early stop"),
    Field("EARLY_STOP_MODE.monitor", str, "val_accuracy", "Metric watched.", "Early stop", choices=MONITORS),
    Field("EARLY_STOP_MODE.patience", int, 10, "Epochs without improvement before stopping.", "Early stop", minimum=0),
    Field("EARLY_STOP_MODE.min_delta", float, 0.0, "Smallest change that counts as improvement.", "Early stop", minimum=0.0),
    Field("EARLY_STOP_MODE.restore_best_weights", bool, True, "Restore the best epoch's weights when stopping.", "Early stop"),
    Field("EARLY_STOP_MODE.verbose", int, 1, "EarlyStopping verbosity.", "Early stop", choices=(0, 1)),
    # Several devices of one machine (resnet_tui/training/distribute.py)
    Field("DISTRIBUTE", str, "none",
          "none: one device; mirrored (TensorFlow): tf.distribute.MirroredStrategy over every GPU (every logical "
          "CPU when there is no GPU; one replica when only one device is visible); data_parallel (JAX): "
          "keras.distribution.DataParallel over every local device, the global batch split across them. "
          "multi_worker is refused: Keras 3 on TensorFlow does not support MultiWorkerMirroredStrategy "
          "(keras issue 20585).",
          "Distribution", choices=DISTRIBUTE_MODES),
    Field("SYNC_BATCH_NORM", bool, False,
          "Mirrored only: batch norm statistics over the global batch (BatchNormalization(synchronized=True)) "
          "instead of each replica's slice.", "Distribution"),
    # Speed (benchmarks/RESULTS.md has the measurements behind the defaults)
    Field("JIT_COMPILE", bool, False,
          "XLA-compile the training step (Keras jit_compile). Off by default on TensorFlow: slower on the CPU it "
          "was measured on; try it on a GPU (benchmarks/gpu_check.py). Always on with the JAX backend.", "Performance"),
    Field("MIXED_PRECISION", str, "float32",
          "Keras dtype policy: float32, mixed_bfloat16 (needs AVX-512 BF16/AMX or a GPU to gain) or mixed_float16 "
          "(GPU; Keras adds dynamic loss scaling). Weights and the softmax stay float32.",
          "Performance", choices=MIXED_PRECISION_POLICIES),
    Field("STEPS_PER_EXECUTION", int, 1,
          "Training steps per call into TensorFlow (Keras steps_per_execution). Every iteration is still recorded; "
          "stop, pause and the iteration cap act once per execution.", "Performance", minimum=1, maximum=1024),
    # Where things go (the seed's meaning: one folder per run id under each)
    Field("CONFIG_PATH", str, "artifact/config", "Each run's resolved config.", "Paths"),
    Field("DATA_PATH", str, "artifact/data",
          "cifar10: folder holding cifar-10-batches-py; npz: the .npz file; torchvision: its root.", "Paths"),
    Field("LOG_PATH", str, "artifact/log", "Each run's metrics, summary and log.", "Paths"),
    Field("CHECKPOINT_PATH", str, "artifact/checkpoint", "Each run's best weights.", "Paths"),
    Field("RESULT_PATH", str, "artifact/result", "Each run's result.json.", "Paths"),
    Field("MODEL_PATH", str, "artifact/model/", "Each run's final model.", "Paths"),
    Field("ERROR_PATH", str, "artifact/error", "Each failed run's error log.", "Paths"),
)

FIELDS: dict[str, Field] = {f.key: f for f in SCHEMA}


def _all_key_paths() -> set[str]:
    """Every dotted key the schema knows, object keys included ("OPTIMIZER")."""
    keys = set(FIELDS)
    for key in FIELDS:
        parts = key.split(".")
        for i in range(1, len(parts)):
            keys.add(".".join(parts[:i]))
    return keys


KNOWN_KEYS = _all_key_paths()
OBJECT_KEYS = {k for k in KNOWN_KEYS if k not in FIELDS}


def default_values() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in SCHEMA:
        set_dotted(values, f.key, copy.deepcopy(f.default))
    return values


def get_dotted(values: dict[str, Any], key: str, default: Any = None) -> Any:
    node: Any = values
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = values
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted in OBJECT_KEYS:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _check_value(f: Field, value: Any) -> str | None:
    """Why ``value`` is not allowed for ``f``, or None when it is."""
    def wrong() -> str:
        return f"got {json.dumps(value)}, expected {f.allowed()}"

    refused = REFUSED_VALUES.get(f.key, {})
    if isinstance(value, str) and value in refused:
        return f"got {json.dumps(value)}: {refused[value]}"

    if f.type is bool:
        if not isinstance(value, bool):
            return wrong()
    elif f.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return wrong()
    elif f.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return wrong()
        if value != value or value in (float("inf"), float("-inf")):
            return wrong()
    elif f.type is str:
        if not isinstance(value, str) or (f.choices is None and not value.strip()):
            return wrong()
        if "\x00" in value:  # no path or name may hold a NUL byte: training would fail to open it
            return f"got {json.dumps(value)}, which holds a NUL character (\\u0000)"
    elif f.type is list:
        if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            return wrong()
        if not all(f.in_range(v) for v in value):
            return f"got {json.dumps(value)}, every item must be{f.bounds()}"
        return None
    if f.choices is not None:
        return None if value in f.choices else wrong()
    return None if f.in_range(value) else wrong()


# Names users type for a key that has another name here: the hint names the key that means it.
KEY_SYNONYMS = {"LEARNING_RATE": "OPTIMIZER.learning_rate", "LR": "OPTIMIZER.learning_rate",
                "MOMENTUM": "OPTIMIZER.momentum", "WEIGHT_DECAY": "OPTIMIZER.weight_decay",
                "EPOCHS": "EPOCHS_COUNT", "OPTIMIZER_TYPE": "OPTIMIZER.type"}
MAX_CONFIG_BYTES = 1_000_000  # a config is a few kilobytes; this bounds what validate reads


def _closest(key: str, candidates: set[str]) -> str:
    synonym = KEY_SYNONYMS.get(key.upper().replace("-", "_"))
    if synonym:
        return f"; did you mean '{synonym}'?"
    match = difflib.get_close_matches(key, sorted(candidates), n=1, cutoff=0.5)
    if not match:
        match = difflib.get_close_matches(key.upper(), sorted(candidates), n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else ""


def check_values(raw: dict[str, Any], name: str = "") -> tuple[dict[str, Any], list[ConfigIssue], list[str]]:
    """Validate raw JSON values against the schema.

    Returns ``(resolved, issues, warnings)``: ``resolved`` has every key (defaults
    filled in); ``issues`` are the errors, each naming its key; warnings are
    settings that are legal but have no effect.
    """
    issues: list[ConfigIssue] = []
    warnings: list[str] = []
    if not isinstance(raw, dict):
        return default_values(), [ConfigIssue("", "the config must be a JSON object {...}")], warnings

    resolved = default_values()
    for key, value in _flatten(raw).items():
        if key in OBJECT_KEYS and not isinstance(value, dict):
            issues.append(ConfigIssue(key, f"must be an object {{...}}, got {json.dumps(value)}"))
            continue
        f = FIELDS.get(key)
        if f is None:
            siblings = KNOWN_KEYS
            if "." in key:
                parent = key.rsplit(".", 1)[0]
                siblings = {k for k in KNOWN_KEYS if k.startswith(parent + ".")} or KNOWN_KEYS
            issues.append(ConfigIssue(key, "unknown key" + _closest(key, siblings)))
            continue
        problem = _check_value(f, value)
        if problem:
            issues.append(ConfigIssue(key, problem))
            continue
        set_dotted(resolved, key, float(value) if f.type is float else copy.deepcopy(value))

    if get_dotted(raw, "MODEL_NUMBER") is None:
        inferred = model_number_from_name(name)
        if inferred is not None:
            if inferred in MODELS:
                resolved["MODEL_NUMBER"] = inferred
            else:
                issues.append(ConfigIssue("MODEL_NUMBER", f"the file name says model {inferred}, "
                                          f"but known models are {', '.join(map(str, MODELS))}"))

    issues.extend(_check_combinations(resolved))
    if resolved["DROPOUT_MODE"]["enabled"] and resolved["MODEL_NUMBER"] == 8:
        warnings.append("DROPOUT_MODE is enabled but m8 (ResNet-20) has no dropout, as in the paper: it is ignored.")
    if resolved["SYNC_BATCH_NORM"] and resolved["DISTRIBUTE"] == "none":
        warnings.append("SYNC_BATCH_NORM has an effect only with DISTRIBUTE=mirrored: it is ignored.")
    return resolved, issues, warnings


def _check_combinations(values: dict[str, Any]) -> list[ConfigIssue]:
    issues = []
    boundaries = values["STEP_SCHEDULE"]["boundaries"]
    if any(later <= earlier for earlier, later in zip(boundaries, boundaries[1:])):
        issues.append(ConfigIssue("STEP_SCHEDULE.boundaries",
                                  f"must be strictly increasing, got {json.dumps(boundaries)}"))
    enabled = [key for key in SCHEDULE_SWITCHES if get_dotted(values, key)]
    for key in enabled[1:]:
        issues.append(ConfigIssue(key, f"{enabled[0]} and {key} cannot both be enabled "
                                       f"(one learning-rate schedule at a time); disable one"))
    cycle = values["ONE_CYCLE_SCHEDULE"]
    if cycle["total_steps"] and cycle["total_steps"] <= cycle["warmup_steps"]:
        issues.append(ConfigIssue("ONE_CYCLE_SCHEDULE.total_steps",
                                  f"must be above ONE_CYCLE_SCHEDULE.warmup_steps ({cycle['warmup_steps']}) "
                                  f"or 0 (the run's last iteration), got {cycle['total_steps']}"))
    issues.extend(_check_weight_decay(values))
    data = values["DATASET"]
    if data["source"] == "synthetic" and data["validation_count"] >= data["synthetic_train_count"]:
        issues.append(ConfigIssue("DATASET.validation_count",
                                  f"is {data['validation_count']} but the synthetic source makes only "
                                  f"{data['synthetic_train_count']} training images (DATASET.synthetic_train_count): "
                                  f"lower it so some remain for training"))
    if values["DATASET"]["source"] == "npz" and not values["DATA_PATH"].endswith(".npz"):
        issues.append(ConfigIssue("DATA_PATH", f"the npz source needs a .npz file, got {json.dumps(values['DATA_PATH'])}"))
    return issues


def _check_weight_decay(values: dict[str, Any]) -> list[ConfigIssue]:
    """Coupled L2 or decoupled decay, not both; adamw is Adam with decoupled decay, adam without."""
    optimizer, decay = values["OPTIMIZER"]["type"], values["OPTIMIZER"]["weight_decay"]
    if decay and values["L2_MODE"]["enabled"]:
        return [ConfigIssue("OPTIMIZER.weight_decay",
                            "decoupled weight decay and L2_MODE.enabled (the coupled L2 penalty) cannot both be on; "
                            "set one of them off (weight_decay 0 or L2_MODE.enabled false)")]
    if optimizer == "adamw" and not decay:
        return [ConfigIssue("OPTIMIZER.weight_decay",
                            "OPTIMIZER.type adamw needs OPTIMIZER.weight_decay > 0 (with 0 it is adam)")]
    if optimizer == "adam" and decay:
        return [ConfigIssue("OPTIMIZER.weight_decay",
                            "OPTIMIZER.type adam with decoupled weight decay is adamw: set OPTIMIZER.type to adamw")]
    return []


def schedule_name(values: dict[str, Any]) -> str:
    """The learning-rate schedule a (valid) config uses: step, cosine, one_cycle, plateau or constant."""
    return next((name for key, name in SCHEDULE_SWITCHES.items() if get_dotted(values, key)), "constant")


def learning_rate_key(values: dict[str, Any]) -> str:
    """Where a learning-rate range test's choice belongs: the rate the schedule climbs to (the one
    cycle's peak, a cosine warmup's target), else the optimizer's own rate."""
    name = schedule_name(values)
    if name == "one_cycle":
        return "ONE_CYCLE_SCHEDULE.peak_learning_rate"
    if name == "cosine" and get_dotted(values, "COSINE_SCHEDULE.warmup_steps"):
        return "COSINE_SCHEDULE.warmup_target"
    return "OPTIMIZER.learning_rate"


def model_number_from_name(name: str) -> int | None:
    match = re.match(r"m(\d+)_", name or "")
    return int(match.group(1)) if match else None


@dataclass
class Config:
    """A validated config: every key present, defaults filled in."""

    values: dict[str, Any]
    name: str = "config"
    source: Path | None = None
    warnings: list[str] = field(default_factory=list)

    def get(self, key: str) -> Any:
        return get_dotted(self.values, key)

    def __getattr__(self, key: str) -> Any:
        # Seed-style access: config.L2_MODE["lambda"], config.BATCH_SIZE.
        if key.isupper() and key in self.values:
            return self.values[key]
        raise AttributeError(key)

    @property
    def model_number(self) -> int:
        number: int = self.values["MODEL_NUMBER"]  # an integer: the schema checked it
        return number

    def with_values(self, changes: dict[str, Any], name: str | None = None) -> Config:
        """A new validated config with dotted ``changes`` applied."""
        values = copy.deepcopy(self.values)
        for key, value in changes.items():
            set_dotted(values, key, value)
        return config_from_values(values, name or self.name, self.source)

    def to_json(self) -> str:
        return json.dumps(self.values, indent=2) + "\n"


def run_config(run: Run) -> Config:
    """The config run ``run`` trained, checked against today's schema, under its config's name."""
    return config_from_values(run.read_config(), run.config_name())


def config_from_values(raw: dict[str, Any], name: str = "config", source: Path | None = None) -> Config:
    resolved, issues, warnings = check_values(raw, name)
    if issues:
        where = f"{source}: " if source else (f"{name}: " if name else "")
        lines = [str(i) for i in issues]
        message = where + lines[0] if len(lines) == 1 else where + "\n  " + "\n  ".join(lines)
        raise ConfigError(message, issues)
    return Config(resolved, name, source, warnings)


def parse_json(text: str, source: str) -> Any:
    """The JSON document ``text``; malformed JSON and a key repeated in one object are refused."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                          [ConfigIssue("", f"line {exc.lineno}, column {exc.colno}: {exc.msg}")]) from None
    except (ValueError, RecursionError) as exc:  # a number of thousands of digits; brackets nested too deep
        what = "arrays or objects nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
        raise ConfigError(f"{source}: not a config: {what}", [ConfigIssue("", what)]) from None
    duplicate = _duplicate_key(text)
    if duplicate:
        key, first, second = duplicate
        message = f"duplicate key {json.dumps(key)} at lines {first} and {second}; JSON would keep only the last: remove one"
        raise ConfigError(f"{source}: {message}", [ConfigIssue("", message)])
    return value


# In valid JSON: a string (a key when a colon follows) or a bracket. Numbers and
# literals hold neither quotes nor brackets, and a string is matched whole from
# its opening quote, so brackets inside strings are never taken for structure.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"\s*:?|[][{}]')


def _duplicate_key(text: str) -> tuple[str, int, int] | None:
    """The first key that appears twice in one object of the valid JSON ``text``:
    (key, line of the first, line of the second)."""
    objects: list[dict[str, int] | None] = []  # the open brackets: an object's keys and lines, None for a list
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in ("{", "["):
            objects.append({} if token == "{" else None)
        elif token in ("}", "]"):
            objects.pop()
        elif token.endswith(":"):
            key, line = json.loads(token[:-1]), text.count("\n", 0, match.start()) + 1
            seen = objects[-1]
            assert seen is not None  # in valid JSON a key is inside an object, never a list
            if key in seen:
                return key, seen[key], line
            seen[key] = line
    return None


def config_name(path: Path) -> str:
    return path.name[:-5] if path.name.endswith(".json") else path.name


def read_config_json(path: Path) -> Any:
    """The JSON document in the file ``path``; any problem is a :class:`ConfigError` naming the file."""
    try:
        if path.exists() and not path.is_file():  # /dev/zero never ends, a FIFO may never answer
            raise ConfigError(f"{path}: not a regular file; a config is a JSON file")
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {size:,} bytes is not a config (a config is a few kilobytes; "
                              f"the limit is {MAX_CONFIG_BYTES:,})")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at offset {exc.start} "
                          f"cannot be decoded; save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_json(text, str(path))


def load_config(path: str | os.PathLike[str]) -> Config:
    path = Path(path)
    return config_from_values(read_config_json(path), config_name(path), path)


def parse_override(assignment: str) -> tuple[str, Any]:
    """``"OPTIMIZER.learning_rate=0.05"`` -> ("OPTIMIZER.learning_rate", 0.05).

    The value is read as JSON when it parses (numbers, true/false, lists) and as
    a plain string otherwise.
    """
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. OPTIMIZER.learning_rate=0.05")
    if key not in FIELDS:
        hint = _closest(key, set(FIELDS))
        raise ConfigError(f"--set {key}: unknown key{hint}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    except ValueError as exc:  # an integer of thousands of digits
        raise ConfigError(f"--set {key}: {str(exc).split(';')[0]}") from None
    return key, value


def save_config(config: Config, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write ``config`` as JSON; refuses to replace an existing file unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists; choose another name")
    write_text_atomic(path, config.to_json())
    return path


def diff_values(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Schema keys whose values differ: ``[(key, value_in_a, value_in_b)]``."""
    diffs: list[tuple[str, Any, Any]] = []
    for f in SCHEMA:
        va, vb = get_dotted(a, f.key), get_dotted(b, f.key)
        if va != vb:
            diffs.append((f.key, va, vb))
    return diffs


def list_configs(folder: str | os.PathLike[str] = "configs") -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.glob("*.json") if not p.name.startswith(".")) if folder.is_dir() else []


def schema_markdown() -> str:
    """The key reference table in docs/config-keys.md (a test keeps the two in step)."""
    lines = ["| key | type | default | allowed | what it does |", "| --- | --- | --- | --- | --- |"]
    for f in SCHEMA:
        allowed = f.allowed().replace("|", "\\|")
        lines.append(f"| `{f.key}` | {f.type.__name__} | `{json.dumps(f.default)}` | {allowed} | {f.help} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m resnet_tui.config: print the key table of docs/config-keys.md
    print(schema_markdown(), end="")
