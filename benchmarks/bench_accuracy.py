"""Does a speed option change what m8 learns? Short real runs, same seed, compared with float32.

Each variant is a real ``Trainer`` run (the dashboard's and the CLI's path) on
the CIFAR-10 sample (``../shared/data/cifar10-sample.npz``: 10000 train / 2000
validation images) for the same number of iterations, from the same initial
weights and the same batches (same SEED). Printed per variant: the mean
per-iteration training loss over the last epoch, the mean |loss - float32's
loss| per iteration, the validation accuracy after each epoch, and the same for
float32 with another SEED: the run-to-run spread an option has to stay within.

    .venv/bin/python benchmarks/bench_accuracy.py [--iterations 158] [--options jit,bf16,spe4]

Options: jit (JIT_COMPILE), bf16 (MIXED_PRECISION=mixed_bfloat16), fp16
(mixed_float16; a GPU option), spe4/spe8 (STEPS_PER_EXECUTION). Timing is not
the point here (see bench_training.py); emulated 16-bit math makes bf16 slow
on CPUs without AVX-512 BF16/AMX.
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
from bench_training import OPTIONS, SAMPLE  # noqa: E402 (after TF_CPP_MIN_LOG_LEVEL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=158, help="per variant (158 = 2 epochs of the sample)")
    parser.add_argument("--options", default="jit,bf16,spe4", help="comma-separated: " + ", ".join(OPTIONS))
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    if not SAMPLE.is_file():
        print(f"needs the CIFAR-10 sample at {SAMPLE}")
        return 2

    from resnet_tui.config import PATH_KEYS, config_from_values, default_values, set_dotted
    from resnet_tui.events import EpochEnd, IterationEnd
    from resnet_tui.training.trainer import Trainer

    artifact = Path(tempfile.mkdtemp(prefix="bench-accuracy-"))
    values = default_values()
    for key in PATH_KEYS:
        values[key] = str(artifact / key.lower())
    set_dotted(values, "DATASET.source", "npz")
    values.update(DATA_PATH=str(SAMPLE), BATCH_SIZE=args.batch, MAX_ITERATIONS=args.iterations, EPOCHS_COUNT=1000)
    base = config_from_values(values, "m8_accuracy")

    variants = {"float32": {}}
    for name in filter(None, args.options.split(",")):
        variants[name] = OPTIONS[name]
    variants["float32, SEED+1"] = {"SEED": base.SEED + 1}

    results = {}
    for name, changes in variants.items():
        events: list = []
        start = time.perf_counter()
        result = Trainer(base.with_values(changes), sink=events.append).run()
        seconds = time.perf_counter() - start
        if result.status != "completed":
            print(f"{name}: {result.status} ({result.error or result.stop_reason})")
            continue
        iterations = [e for e in events if isinstance(e, IterationEnd)]
        epochs = [e for e in events if isinstance(e, EpochEnd)]
        results[name] = (iterations, epochs)
        print(f"  ran {name} in {seconds:.0f} s", flush=True)

    reference = results.get("float32")
    if reference is None:
        return 1
    steps_per_epoch = sum(1 for e in reference[0] if e.epoch == 1)
    print(f"\nm8 on {SAMPLE.name}, batch {args.batch}, {args.iterations} iterations "
          f"({steps_per_epoch} per epoch), SEED {base.SEED}")
    print(f"{'variant':<18} {'last-epoch loss':>15} {'mean |dloss|':>12} {'max |dloss|':>11}  val accuracy by epoch")
    for name, (iterations, epochs) in results.items():
        last = [e.loss for e in iterations if e.epoch == iterations[-1].epoch]
        diffs = [abs(a.loss - b.loss) for a, b in zip(iterations, reference[0])]
        vals = ", ".join(f"{e.val_accuracy:.3f}" for e in epochs if e.val_accuracy is not None)
        print(f"{name:<18} {statistics.mean(last):15.4f} {statistics.mean(diffs):12.2e} {max(diffs):11.2e}  {vals}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
