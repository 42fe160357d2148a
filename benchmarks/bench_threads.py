"""Do TensorFlow's thread and oneDNN settings change m8's training speed here?

They are read once, when TensorFlow starts, so each setting runs in a child
process of its own; the children of one round run back to back, every round
in the same order, and each setting's ratio to the default is the median of
the per-round ratios. Every child trains the trainer's default path (fit with
the streaming and recording callbacks): a warm-up epoch, then timed epochs.

    .venv/bin/python benchmarks/bench_threads.py [--rounds 3] [--epochs 2] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS: dict[str, dict[str, str]] = {
    "default": {},
    "intra-op 2 + inter-op 1": {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1"},
    "intra-op 1 + inter-op 1": {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"},
    "oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)": {"TF_ENABLE_ONEDNN_OPTS": "0"},
}


def child(epochs: int, steps: int, batch: int) -> None:
    import keras
    from bench_training import make_config

    from resnet_tui.data.load import dispatch_load_dataset
    from resnet_tui.data.pipeline import make_train_dataset
    from resnet_tui.models.resnet import dispatch_build_model
    from resnet_tui.store.recorder import RunRecorder
    from resnet_tui.store.runs import RunStore
    from resnet_tui.training.callbacks import IterationCounter, StreamingCallback, TrainingControl, stop_rules
    from resnet_tui.training.compile import compile_model
    from resnet_tui.training.schedules import IterationStepDecay

    config = make_config(batch, steps, Path(tempfile.mkdtemp(prefix="bench-threads-")))
    data = dispatch_load_dataset(8, config)
    keras.utils.set_random_seed(0)
    model = dispatch_build_model(8, config)
    schedule = IterationStepDecay(0.1, [32000, 48000], 0.1)
    compile_model(model, config, schedule)
    control = TrainingControl()
    counter = IterationCounter()
    stream = StreamingCallback(RunRecorder(RunStore.from_values(config.values).create_run("m8_threads")),
                               schedule.value_at, control, counter)
    callbacks = [stream, *stop_rules(control, counter, 0, steps)]
    train = make_train_dataset(data, batch, True, 0).take(steps)
    rates = []
    for epoch in range(epochs + 1):
        start = time.perf_counter()
        model.fit(train, epochs=1, callbacks=callbacks, verbose=0, shuffle=False)
        if epoch:
            rates.append(steps * batch / (time.perf_counter() - start))
    print("RATES " + json.dumps(rates))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per child, after a warm-up")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.epochs, args.steps, args.batch)
        return 0
    names = [n for n in args.settings.split(",") if n]
    print(f"m8, batch {args.batch}, {args.steps} steps per epoch, {args.epochs} timed epochs per child, "
          f"{args.rounds} rounds; {os.cpu_count()} CPUs")
    rates: dict[str, list[float]] = {n: [] for n in names}
    for round_ in range(args.rounds):
        for name in names:
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **SETTINGS[name])
            out = subprocess.run([sys.executable, __file__, "--child", "--epochs", str(args.epochs),
                                  "--steps", str(args.steps), "--batch", str(args.batch)],
                                 capture_output=True, text=True, env=env, timeout=1800)
            line = [x for x in out.stdout.splitlines() if x.startswith("RATES ")]
            if not line:
                print(f"  {name}: failed: {out.stderr.strip()[-300:]}")
                continue
            rates[name].append(statistics.median(json.loads(line[-1][6:])))
        print(f"  round {round_ + 1} done", flush=True)
    base = rates.get("default")
    for name, values in rates.items():
        if not values:
            continue
        ratio = ""
        if base and name != "default":
            per_round = [v / b for v, b in zip(values, base)]
            ratio = f"  vs default {statistics.median(per_round):.3f} ({', '.join(f'{r:.3f}' for r in per_round)})"
        print(f"  {name:<38} {statistics.median(values):7.1f} img/s ({', '.join(f'{v:.0f}' for v in values)}){ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
