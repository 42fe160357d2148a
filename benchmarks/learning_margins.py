"""What the tests that assert a learned accuracy actually reach, over seeds and kernel paths.

A test that asserts "the model learned" needs a bar well under what any CPU
reaches: learning curves differ by SEED and by CPU (oneDNN picks different
kernels on AVX2 and AVX-512 machines). This runs each such test's training,
exactly as the test configures it, for several SEEDs, with oneDNN on (the
default) and off (``TF_ENABLE_ONEDNN_OPTS=0``, a stand-in for another kernel
path), each in a fresh process, and prints the value the test asserts on.

    .venv/bin/python benchmarks/learning_margins.py [--seeds 0,1,2,3,4] [--only real|synthetic]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from resnet_tui.machine.info import cpu_line

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # each measure is a test's own training, imported from it


def real_sample(seed: int) -> float:
    """tests/test_training.py::test_real_cifar10_sample_beats_chance_clearly: best val accuracy."""
    from conftest import SAMPLE_NPZ, tiny_values

    from resnet_tui.config import config_from_values
    from resnet_tui.training.trainer import Trainer

    values = tiny_values(Path(tempfile.mkdtemp(prefix="margins-")), **{
        "DATASET.source": "npz", "DATA_PATH": str(SAMPLE_NPZ), "BATCH_SIZE": 128, "EPOCHS_COUNT": 2,
        "STEP_SCHEDULE.boundaries": [32000, 48000], "SEED": seed})
    result = Trainer(config_from_values(values, "m8_tiny"), capture_stderr=False).run()
    assert result.status == "completed", result.error
    return result.best_val_accuracy


def synthetic(seed: int) -> float:
    """tests/test_data.py::test_synthetic_is_learnable: val accuracy of the tiny CNN."""
    from test_data import synthetic_learnable_accuracy

    return synthetic_learnable_accuracy(seed)


MEASURES = {"real": real_sample, "synthetic": synthetic}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--onednn", default="1,0", help="TF_ENABLE_ONEDNN_OPTS values to try")
    parser.add_argument("--only", choices=sorted(MEASURES))
    parser.add_argument("--child", nargs=2, metavar=("MEASURE", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        print("RESULT", json.dumps(MEASURES[args.child[0]](int(args.child[1]))), flush=True)
        return 0
    print(cpu_line(), flush=True)  # the flags that change oneDNN's kernels
    for name in [args.only] if args.only else list(MEASURES):
        values = []
        for onednn in args.onednn.split(","):
            for seed in map(int, args.seeds.split(",")):
                env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, TF_CPP_MIN_LOG_LEVEL="3")
                proc = subprocess.run([sys.executable, __file__, "--child", name, str(seed)], env=env,
                                      capture_output=True, text=True, cwd=REPO)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if proc.returncode or not lines:
                    print(f"{name} seed {seed} oneDNN {onednn}: FAILED\n{proc.stderr[-2000:]}", flush=True)
                    continue
                value = json.loads(lines[-1][7:])
                values.append(value)
                print(f"{name} seed {seed} oneDNN {onednn}: {value:.4f}", flush=True)
        if values:
            print(f"{name}: min {min(values):.4f} max {max(values):.4f} over {len(values)} runs", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
