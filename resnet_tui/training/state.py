"""What a run's checkpoint folder says about where training was: ``state.json``.

Kept apart from the Keras callback that writes it (checkpoint.py) so that the run
store can check a run's state without loading TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

STATE_FILE = "state.json"


@dataclass
class TrainingState:
    epoch: int  # epochs completed
    iteration: int  # optimizer updates completed
    best_val_accuracy: float | None
    elapsed: float  # training seconds so far (pauses excluded)
    weights: str  # file name, next to state.json
    best_epoch: int | None = None  # the epoch of best_val_accuracy (absent in states saved before it was kept)

    @staticmethod
    def read(folder: Path) -> TrainingState | None:
        try:
            data = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
            return TrainingState(**data)
        except FileNotFoundError:
            return None
