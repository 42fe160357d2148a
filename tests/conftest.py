import os
from pathlib import Path

import pytest

# The suite checks what a user gets by default, whatever shell it runs in. These variables ask
# Rich and Textual for colours in a pipe, or for none, on purpose: every captured line and every
# snapshot would change. (COLUMNS and TMPDIR are not pinned: the code must not care, and
# `make test-env` proves it.)
for _name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE"):
    os.environ.pop(_name, None)

# ../shared next to the repository root; a user's fresh clone has none.
SAMPLE_NPZ = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-sample.npz"


@pytest.fixture
def sample_npz_path() -> Path:
    """The real CIFAR-10 sample (10000 train / 2000 val images); skips when absent."""
    if not SAMPLE_NPZ.is_file():
        pytest.skip(f"real CIFAR-10 sample not found at {SAMPLE_NPZ} (../shared is absent in a fresh clone)")
    return SAMPLE_NPZ


def tiny_values(tmp_path: Path, **changes) -> dict:
    """A tiny offline m8 config (synthetic data) whose run output goes under tmp_path."""
    from resnet_tui.config import PATH_KEYS, default_values, set_dotted

    values = default_values()
    for key in PATH_KEYS:
        values[key] = str(tmp_path / "artifact" / key.split("_")[0].lower())
    settings = {
        "DATASET.source": "synthetic", "DATASET.synthetic_train_count": 192, "DATASET.synthetic_test_count": 64,
        "DATASET.validation_count": 64, "EPOCHS_COUNT": 2, "BATCH_SIZE": 32, "MAX_ITERATIONS": 0,
        "STEP_SCHEDULE.boundaries": [4, 8],
    }
    settings.update(changes)
    for key, value in settings.items():
        set_dotted(values, key, value)
    return values


@pytest.fixture
def tiny_config(tmp_path):
    """Factory: ``tiny_config(**{"EPOCHS_COUNT": 3})`` -> a validated Config."""
    from resnet_tui.config import config_from_values

    def make(name: str = "m8_tiny", **changes):
        return config_from_values(tiny_values(tmp_path, **changes), name)

    return make
