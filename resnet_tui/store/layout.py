"""Where a run's files are: one name for each, and the folder that holds it.

The seed's path keys keep their meaning; each holds one folder per run id::

    CONFIG_PATH/<id>/config.json        resolved config
    LOG_PATH/<id>/run.json              who owns the run (pid, host) and when it started
    LOG_PATH/<id>/lock                  the live process writing the run (pid, host)
    LOG_PATH/<id>/plan.json             iterations per epoch and in all, counts (for a follower)
    LOG_PATH/<id>/summary.txt           model summary
    LOG_PATH/<id>/iterations.csv        one row per iteration, appended as they come
    LOG_PATH/<id>/epochs.csv            one row per epoch, appended as they come
    LOG_PATH/<id>/machine.csv           one row per epoch: CPU, memory and GPU use (machine/sampler.py)
    LOG_PATH/<id>/train.log             warnings, errors and TensorFlow's own output
    LOG_PATH/<id>/notes.json            the user's note, tags and hidden flag (never the trainer's)
    CHECKPOINT_PATH/<id>/best.weights.h5
    CHECKPOINT_PATH/<id>/state.json     where training was at the last epoch end (resume)
    MODEL_PATH/<id>/final.keras
    RESULT_PATH/<id>/result.json        written once, atomically, when the run ends
    ERROR_PATH/<id>/error.log           only for failed runs
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from resnet_tui.events import EpochEnd, IterationEnd, MachineEpoch

CONFIG_FILE = "config.json"
META_FILE = "run.json"
LOCK_FILE = "lock"
PLAN_FILE = "plan.json"
SUMMARY_FILE = "summary.txt"
TRAIN_LOG = "train.log"
NOTES_FILE = "notes.json"
STATE_FILE = "state.json"
BEST_WEIGHTS = "best.weights.h5"
FINAL_MODEL = "final.keras"
RESULT_FILE = "result.json"
ERROR_LOG = "error.log"
# One CSV per record type, in the log folder (store/records.py turns events into their rows).
CSV_FILES = {IterationEnd: "iterations.csv", EpochEnd: "epochs.csv", MachineEpoch: "machine.csv"}

# The config key of each of a run's folders (RunPaths' fields, in this order).
ROOT_KEYS = {"config": "CONFIG_PATH", "log": "LOG_PATH", "checkpoint": "CHECKPOINT_PATH",
             "model": "MODEL_PATH", "result": "RESULT_PATH", "error": "ERROR_PATH"}


@dataclass(frozen=True)
class RunPaths:
    """A run's six folders, and each of its files by name."""

    config: Path
    log: Path
    checkpoint: Path
    model: Path
    result: Path
    error: Path

    @property
    def config_file(self) -> Path:
        return self.config / CONFIG_FILE

    @property
    def summary_file(self) -> Path:
        return self.log / SUMMARY_FILE

    @property
    def train_log(self) -> Path:
        return self.log / TRAIN_LOG

    @property
    def best_weights(self) -> Path:
        return self.checkpoint / BEST_WEIGHTS

    @property
    def final_model(self) -> Path:
        return self.model / FINAL_MODEL

    @property
    def result_file(self) -> Path:
        return self.result / RESULT_FILE

    @property
    def error_log(self) -> Path:
        return self.error / ERROR_LOG

    def csv_file(self, record_type: type) -> Path:
        return self.log / CSV_FILES[record_type]
