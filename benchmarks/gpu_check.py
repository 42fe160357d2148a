"""One prepared GPU check for m8: which speed options pay off, and how long 64k iterations take.

Made to run in well under 8 minutes on one H100 with no network: the data is
the project's synthetic source (no CIFAR-10 download), nothing is written
outside a temporary folder, and torch is not needed.

    .venv/bin/python benchmarks/gpu_check.py [--steps 200] [--rounds 3] [--budget 420]

(TensorFlow needs its CUDA libraries: ``pip install 'tensorflow[and-cuda]'``.)
It prints the device, then for each variant the images/s (median of the
rounds, every variant interleaved in each round after a warm-up round that
pays for tracing and XLA compilation), the milliseconds per iteration and the
projected time of the paper's 64,000 iterations at batch 128 (training steps
only: validation, checkpoints and the test evaluation come on top). All
variants but "plain fit" run the trainer's path: fit with the streaming and
recording callbacks. The input pipeline alone is measured last, since a fast
GPU can outrun the CPU-side augmentation. Variants that would not fit in the
``--budget`` seconds are skipped and named.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

FULL_RUN = 64000  # the paper's iterations

VARIANTS: dict[str, dict] = {
    "plain fit (no callbacks), float32": {},
    "default: float32, streaming": {},
    "JIT_COMPILE": {"JIT_COMPILE": True},
    "mixed_float16": {"MIXED_PRECISION": "mixed_float16"},
    "mixed_bfloat16": {"MIXED_PRECISION": "mixed_bfloat16"},
    "STEPS_PER_EXECUTION 8": {"STEPS_PER_EXECUTION": 8},
    "STEPS_PER_EXECUTION 32": {"STEPS_PER_EXECUTION": 32},
    "JIT + mixed_float16": {"JIT_COMPILE": True, "MIXED_PRECISION": "mixed_float16"},
    "JIT + mixed_float16 + SPE 32": {"JIT_COMPILE": True, "MIXED_PRECISION": "mixed_float16",
                                     "STEPS_PER_EXECUTION": 32},
    "JIT + SPE 32": {"JIT_COMPILE": True, "STEPS_PER_EXECUTION": 32},
}


def describe_gpu() -> str:
    import tensorflow as tf

    lines = []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        lines += [f"nvidia-smi: {line}" for line in out.stdout.strip().splitlines()]
    except (OSError, subprocess.SubprocessError):
        lines.append("nvidia-smi: not available")
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        lines.append(f"TensorFlow sees {gpu.name}: {details.get('device_name', '?')}, "
                     f"compute capability {details.get('compute_capability', '?')}")
    if not gpus:
        lines.append("TensorFlow sees no GPU: this runs on the CPU (is tensorflow[and-cuda] installed?)")
    build = tf.sysconfig.get_build_info()
    lines.append(f"TensorFlow {tf.__version__} (CUDA {build.get('cuda_version', '-')}, "
                 f"cuDNN {build.get('cudnn_version', '-')}), {os.cpu_count()} CPU cores")
    return "\n".join(lines)


def hms(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="iterations per timed epoch")
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs per variant, after a warm-up")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--budget", type=float, default=420.0,
                        help="seconds; variants that would not fit are skipped (the whole check stays under 8 min)")
    args = parser.parse_args()
    began = time.perf_counter()

    import keras

    from resnet_tui.config import PATH_KEYS, config_from_values, default_values, set_dotted
    from resnet_tui.data.load import dispatch_load_dataset
    from resnet_tui.data.pipeline import make_train_dataset
    from resnet_tui.models.resnet import dispatch_build_model
    from resnet_tui.store.recorder import RunRecorder
    from resnet_tui.store.runs import RunStore
    from resnet_tui.training.callbacks import IterationCounter, StreamingCallback, TrainingControl, stop_rules
    from resnet_tui.training.compile import compile_model
    from resnet_tui.training.schedules import IterationStepDecay

    print(describe_gpu(), flush=True)
    artifact = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    values = default_values()
    for key in PATH_KEYS:
        values[key] = str(artifact / key.lower())
    set_dotted(values, "DATASET.source", "synthetic")
    set_dotted(values, "DATASET.synthetic_train_count", args.batch * args.steps + 1000)
    set_dotted(values, "DATASET.validation_count", 0)
    values["BATCH_SIZE"] = args.batch
    config = config_from_values(values, "m8_gpu_check")
    data = dispatch_load_dataset(8, config)
    store = RunStore.from_values(config.values)
    print(f"data: {data.description}; batch {args.batch}; {args.steps} iterations per timed epoch; "
          f"median of {args.rounds} rounds after a warm-up round", flush=True)

    built: dict[str, tuple] = {}
    skipped: list[str] = []
    rates: dict[str, list[float]] = {}
    for name, changes in VARIANTS.items():  # warm-up round: build, trace, compile
        elapsed = time.perf_counter() - began
        spent_per_variant = elapsed / max(len(built), 1) if built else 30.0
        if elapsed + spent_per_variant * (1 + args.rounds) > args.budget:
            skipped.append(name)
            continue
        cfg = config.with_values(changes)
        keras.utils.set_random_seed(0)
        model = dispatch_build_model(8, cfg)
        schedule = IterationStepDecay(0.1, [32000, 48000], 0.1)
        compile_model(model, cfg, schedule)
        callbacks = []
        if not name.startswith("plain"):
            control = TrainingControl()
            counter = IterationCounter()
            stream = StreamingCallback(RunRecorder(store.create_run("m8_gpu_check")), schedule.value_at, control, counter)
            callbacks = [stream, *stop_rules(control, counter, 0, args.steps)]
        train = make_train_dataset(data, args.batch, True, 0).take(args.steps)
        start = time.perf_counter()
        try:
            model.fit(train, epochs=1, callbacks=callbacks, verbose=0, shuffle=False)
        except Exception as exc:  # an option this GPU/TensorFlow cannot run: say so, go on
            print(f"  {name}: failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})", flush=True)
            continue
        print(f"  {name}: warm-up epoch {time.perf_counter() - start:.1f} s", flush=True)
        built[name] = (model, callbacks, train)
        rates[name] = []

    for round_ in range(args.rounds):
        if time.perf_counter() - began > args.budget + 60:
            print(f"  stopping after {round_} rounds: over the time budget", flush=True)
            break
        for name, (model, callbacks, train) in built.items():
            start = time.perf_counter()
            model.fit(train, epochs=1, callbacks=callbacks, verbose=0, shuffle=False)
            rates[name].append(args.steps * args.batch / (time.perf_counter() - start))

    default = "default: float32, streaming"
    base = statistics.median(rates[default]) if rates.get(default) else None
    print(f"\n{'variant':<36} {'img/s':>9} {'ms/iter':>8} {'64k iterations':>15} {'vs default':>10}  rounds")
    for name, values_ in rates.items():
        if not values_:
            continue
        rate = statistics.median(values_)
        per_iter = args.batch / rate
        ratio = f"{rate / base:10.2f}" if base else f"{'-':>10}"
        print(f"{name:<36} {rate:9.0f} {per_iter * 1000:8.2f} {hms(per_iter * FULL_RUN):>15} {ratio}  "
              f"{', '.join(f'{v:.0f}' for v in values_)}")
    for name in skipped:
        print(f"{name:<36} skipped: over the {args.budget:.0f} s budget")

    pipeline = make_train_dataset(data, args.batch, True, 1)
    start, count = time.perf_counter(), 0
    for x, _ in pipeline:
        count += int(x.shape[0])
    pipe = count / (time.perf_counter() - start)
    best = max((statistics.median(v) for v in rates.values() if v), default=0)
    print(f"\ninput pipeline alone (CPU): {pipe:,.0f} img/s"
          + (f" = {pipe / best:.1f}x the fastest variant" if best else "")
          + ("  <- the input pipeline limits training" if best and pipe < 1.2 * best else ""))
    print(f"total {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
