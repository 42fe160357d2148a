"""m8's training step alone, model variants alternated step by step.

This CPU's speed flips between modes every few seconds, so epoch-long
interleaving (bench_training.py) leaves ratios noisy. Here each variant runs one
training step in turn (``train_on_batch``, the same compiled step ``fit``
runs) on the same batch, round after round: both sides of each pair see the
same mode, and the median of the per-round ratios is steady.

    .venv/bin/python benchmarks/bench_step.py [--rounds 40] [--batch 128] [--options jit,bf16]

Prints each variant's median milliseconds per step and images/s, and its ratio
of speed to the default (float32, no XLA).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from bench_training import OPTIONS, load, make_config  # noqa: E402 (after TF_CPP_MIN_LOG_LEVEL)

from resnet_tui.machine.info import cpu_line  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--options", default="jit,bf16", help="comma-separated: " + ", ".join(OPTIONS))
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from resnet_tui.models.resnet import dispatch_build_model
    from resnet_tui.training.compile import compile_model
    from resnet_tui.training.schedules import IterationStepDecay

    config = make_config(args.batch, 10, Path(tempfile.mkdtemp(prefix="bench-step-")))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(args.batch, 32, 32, 3)).astype("float32"))
    y = tf.constant(rng.integers(0, 10, args.batch))
    variants = {"default": {}}
    variants.update({name: OPTIONS[name] for name in filter(None, args.options.split(","))})
    models = {}
    for name, changes in variants.items():
        keras.utils.set_random_seed(0)
        variant_config = config.with_values(changes)
        model = dispatch_build_model(8, variant_config)
        compile_model(model, variant_config, IterationStepDecay(0.1, [32000, 48000], 0.1))
        for _ in range(3):  # trace (and XLA-compile) before timing
            model.train_on_batch(x, y)
        models[name] = model
    print(f"m8 training step, batch {args.batch}, {args.rounds} rounds of one step per variant; "
          f"{cpu_line()}; TensorFlow {tf.__version__}, Keras {keras.__version__}; load {load()}")

    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times[name].append(time.perf_counter() - start)

    base = times["default"]
    for name, values in times.items():
        ratio = statistics.median(b / v for b, v in zip(base, values))
        label = ", ".join(f"{k}={v}" for k, v in variants[name].items()) or "default"
        print(f"  {label:<40} {statistics.median(values) * 1e3:7.1f} ms/step  "
              f"{args.batch / statistics.median(values):6.1f} img/s  speed vs default {ratio:5.3f}")
    print(f"load at end {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
