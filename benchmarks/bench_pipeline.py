"""Images per second of the input pipelines alone (no model), on the CPU.

Uses the real CIFAR-10 sample (../shared/data/cifar10-sample.npz) when present,
else 10000 synthetic images. Prints the median of several full passes, after
one warm-up pass, for the augmented training pipeline and the eval pipeline.

    .venv/bin/python benchmarks/bench_pipeline.py [--batch 128] [--passes 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "cifar10-sample.npz"

from resnet_tui.config import config_from_values, default_values, set_dotted  # noqa: E402
from resnet_tui.data.load import dispatch_load_dataset  # noqa: E402
from resnet_tui.data.pipeline import make_eval_dataset, make_train_dataset  # noqa: E402


def images_per_second(dataset, passes: int) -> tuple[float, int]:
    rates, count = [], 0
    for i in range(passes + 1):
        start, count = time.perf_counter(), 0
        for x, _ in dataset:
            count += int(x.shape[0])
        if i:  # pass 0 warms up (tracing, thread pools)
            rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()

    values = default_values()
    if SAMPLE.is_file():
        set_dotted(values, "DATASET.source", "npz")
        values["DATA_PATH"] = str(SAMPLE)
    else:
        set_dotted(values, "DATASET.source", "synthetic")
        set_dotted(values, "DATASET.synthetic_train_count", 10000)
        set_dotted(values, "DATASET.validation_count", 0)  # all 10000 for training
    ds = dispatch_load_dataset(8, config_from_values(values, "bench"))
    print(f"data: {ds.description}; batch {args.batch}; median of {args.passes} passes after a warm-up; "
          f"{os.cpu_count()} CPUs")

    for name, dataset in (
        ("train, augmented", make_train_dataset(ds, args.batch, augment=True, seed=0)),
        ("train, plain", make_train_dataset(ds, args.batch, augment=False, seed=0)),
        ("eval (x_train)", make_eval_dataset(ds.x_train, ds.y_train, ds, args.batch)),
    ):
        rate, count = images_per_second(dataset, args.passes)
        print(f"  {name:17s} {rate:10,.0f} images/s  ({count} images a pass)")


if __name__ == "__main__":
    main()
