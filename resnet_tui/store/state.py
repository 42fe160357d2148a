"""What a run's checkpoint folder says about where training was: ``state.json``.

Kept apart from the Keras callback that writes it (checkpoint.py) so that the run
store can check a run's state without loading TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_tui.store.json_files import RunFileError, build, read_json
from resnet_tui.store.layout import STATE_FILE


@dataclass
class TrainingState:
    epoch: int  # epochs completed
    iteration: int  # optimizer updates completed
    best_val_accuracy: float | None
    elapsed: float  # training seconds so far (pauses excluded)
    weights: str  # file name, next to state.json
    best_epoch: int | None = None  # the epoch of best_val_accuracy (absent in states saved before it was kept)
    # name -> counters (checkpoint.COUNTERS), an EarlyStopping's best weights file
    callbacks: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def read(folder: Path) -> TrainingState | None:
        """The state saved in ``folder``; None when there is none; RunFileError when it is damaged."""
        data = read_json(folder / STATE_FILE, TrainingState)
        if data is None:
            return None
        state = build(TrainingState, data)
        if Path(state.weights).name != state.weights or state.weights.startswith("."):
            # A state names a file beside it; a path would read (and later delete) files elsewhere.
            raise RunFileError(folder / STATE_FILE, f'"weights" should be a file name beside it, got {state.weights!r}')
        return state
