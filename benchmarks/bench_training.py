"""Training throughput of m8: plain ``model.fit`` against fit with the streaming
and recording callbacks, interleaved in one process (this CPU's speed flips
between modes from one epoch to the next, so only paired medians mean anything).

    .venv/bin/python benchmarks/bench_training.py [--rounds 5] [--steps 50] [--batch 128]

Prints images/s for each variant (median of the rounds), the ratio
streaming/plain, and the input pipeline's images/s alone.
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
SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-sample.npz"


def make_config(batch: int, steps: int, artifact: Path):
    from resnet_tui.config import PATH_KEYS, config_from_values, default_values, set_dotted

    values = default_values()
    for key in PATH_KEYS:
        values[key] = str(artifact / key.lower())
    if SAMPLE.is_file():
        set_dotted(values, "DATASET.source", "npz")
        values["DATA_PATH"] = str(SAMPLE)
    else:
        set_dotted(values, "DATASET.source", "synthetic")
        set_dotted(values, "DATASET.synthetic_train_count", batch * steps + 500)
    values["BATCH_SIZE"] = batch
    return config_from_values(values, "m8_bench")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="epochs per variant (after one warm-up each)")
    parser.add_argument("--steps", type=int, default=50, help="iterations per epoch")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from resnet_tui.data import dispatch_load_dataset, make_train_dataset
    from resnet_tui.models import compile_model, dispatch_build_model
    from resnet_tui.runs import RunStore
    from resnet_tui.training.callbacks import ControlCallback, StreamingCallback, TrainingControl
    from resnet_tui.training.recorder import RunRecorder
    from resnet_tui.training.schedules import IterationStepDecay

    artifact = Path(tempfile.mkdtemp(prefix="bench-"))
    config = make_config(args.batch, args.steps, artifact)
    data = dispatch_load_dataset(8, config)
    print(f"data: {data.description}; {args.steps} steps of {args.batch} per epoch; "
          f"{args.rounds} paired epochs; device: {tf.config.list_physical_devices()[-1].name}")
    train = make_train_dataset(data, args.batch, True, 0).take(args.steps)
    images = args.steps * args.batch

    keras.utils.set_random_seed(0)
    model = dispatch_build_model(8, config)
    schedule = IterationStepDecay(0.1, [32000, 48000], 0.1)
    compile_model(model, config, schedule)

    run = RunStore.from_values(config.values).create_run("m8_bench")
    control = TrainingControl()
    streaming = StreamingCallback(RunRecorder(run), args.batch, images, schedule.value_at, control)
    variants = {
        "plain fit": [],
        "fit + streaming + recording": [streaming, ControlCallback(control, 0)],
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(args.rounds + 1):  # round 0 warms up (tracing, caches)
        for name, callbacks in variants.items():
            start = time.perf_counter()
            model.fit(train, epochs=1, callbacks=callbacks, verbose=0, shuffle=False)
            seconds = time.perf_counter() - start
            if round_:
                times[name].append(seconds)
    run.close()

    rates = {name: [images / s for s in secs] for name, secs in times.items()}
    for name, values in rates.items():
        print(f"{name:<30} {statistics.median(values):8.1f} img/s  (epochs: {', '.join(f'{v:.0f}' for v in values)})")
    plain, streamed = times["plain fit"], times["fit + streaming + recording"]
    paired = [p / s for p, s in zip(plain, streamed)]
    print(f"{'ratio streaming/plain':<30} {statistics.median(paired):8.3f}  (paired per round: "
          f"{', '.join(f'{r:.3f}' for r in paired)})")

    # The input pipeline alone, over the same images.
    pipeline = make_train_dataset(data, args.batch, True, 1)
    passes = []
    for _ in range(3):
        start, count = time.perf_counter(), 0
        for x, _y in pipeline:
            count += int(x.shape[0])
        passes.append(count / (time.perf_counter() - start))
    ratio = statistics.median(passes) / statistics.median(rates["plain fit"])
    print(f"{'input pipeline alone':<30} {statistics.median(passes):8.0f} img/s  ({ratio:.0f}x training)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
