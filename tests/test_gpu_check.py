"""benchmarks/gpu_check.py works: its --cpu dry run (tiny sizes, Keras on JAX) ends well and prints every figure.

The GPU check itself is run by hand on a GPU machine; this keeps it from rotting in between.
About 70 s on 2 cores, hence the slow lane. Only JAX is needed (either venv).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="gpu_check.py runs on Keras' JAX backend: "
                       "jax is not installed here (pip install -e '.[jax]')"),
]


def test_the_cpu_dry_run_prints_every_figure():
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--cpu"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n{out[-4000:]}\n{done.stderr[-4000:]}"
    assert re.search(r"^device: jax\.devices\(\) = \[.*\]; NVML: ", out, re.M), out
    assert "XLA compile (plain fit, float32): first step" in out, out
    for figure in ("plain fit (no callbacks)", "trainer path (fit's batches)", "plain fit, AUGMENT_MODE off",
                   "plain fit, mixed_bfloat16"):
        assert re.search(rf"^{re.escape(figure)} +[\d.]+ ms/iteration +[\d,]+ img/s", out, re.M), (figure, out)
    assert re.search(r"^trainer path / plain fit speed: [\d.]+", out, re.M), out
    assert re.search(r"^augmentation on / off speed: [\d.]+", out, re.M), out
    # The sample beside the checkout gives one epoch of 512 images; without it, the check says it skips.
    assert re.search(r"^learning check: (epoch +1/1 +val_accuracy [\d.]+|skipped: .* is absent)", out, re.M), out
    assert "skipped (over the budget)" not in out, out
