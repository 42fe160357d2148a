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
    """A tiny offline config of m1, the tiny registered CNN (synthetic data), whose run output goes
    under tmp_path. Tests about ResNet-20 itself pass ``MODEL_NUMBER=8``."""
    from resnet_tui.config import PATH_KEYS, default_values, set_dotted

    values = default_values()
    for key in PATH_KEYS:
        values[key] = str(tmp_path / "artifact" / key.split("_")[0].lower())
    settings = {
        "MODEL_NUMBER": 1,
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

    def make(name: str = "m1_tiny", **changes):
        return config_from_values(tiny_values(tmp_path, **changes), name)

    return make


# -- the dashboard's (tests/tui_support.py builds them) ---------------------------------------------

@pytest.fixture
def tui_env(tmp_path):
    """A configs folder (the repository's plus ``tiny``) and a run store, both under tmp_path."""
    from tui_support import dashboard_env

    return dashboard_env(tmp_path)


@pytest.fixture
def tui_fake_runs(tmp_path):
    """Four runs written by hand: completed, failed, interrupted (half-written), a second completed."""
    from tui_support import fake_runs_env

    return fake_runs_env(tmp_path)


@pytest.fixture(scope="session")
def tui_finished_run(tmp_path_factory):
    """One real tiny training run, made once per test session by the Trainer itself."""
    from tui_support import finished_run_env

    return finished_run_env(tmp_path_factory.mktemp("finished"))
