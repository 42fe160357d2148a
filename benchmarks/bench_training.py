"""Training throughput of m8, every variant interleaved in one process.

This CPU's speed flips between modes from one epoch to the next and the
machine is shared, so only paired comparisons mean anything: each round runs
one epoch of every variant in turn, and each ratio is the median over rounds
of the per-round ratio.

    .venv/bin/python benchmarks/bench_training.py [--rounds 5] [--steps 50] [--batch 128]
        [--options jit:20,spe4:20,spe8:20,bf16:5] [--torch-steps 20] [--no-torch]

Prints, as images/s (median of the rounds, after one warm-up round):

1. plain ``model.fit`` against fit with the streaming and recording callbacks
   (the trainer's path), each on its own model (the streaming callback
   installs its step log on the model it watches);
2. each speed option (``--options``; ``name:N`` runs N steps per epoch for
   that one, to keep a round short on a slow machine) with the streaming
   callbacks, against the float32 default;
3. the reference PyTorch ResNet-20 (``torch_reference.py``, a worker process
   whose epochs, ``--torch-steps`` long, are interleaved with these): eager,
   channels_last and torch.compile;
4. the input pipeline alone.
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent

from resnet_tui.machine.info import cpu_line  # noqa: E402

SAMPLE = HERE.parent.parent / "shared" / "data" / "cifar10-sample.npz"

# Speed options: config changes, by the short names the benchmarks take.
OPTIONS: dict[str, dict] = {
    "jit": {"JIT_COMPILE": True},
    "bf16": {"MIXED_PRECISION": "mixed_bfloat16"},
    "fp16": {"MIXED_PRECISION": "mixed_float16"},
    "spe4": {"STEPS_PER_EXECUTION": 4},
    "spe8": {"STEPS_PER_EXECUTION": 8},
    "spe4+jit": {"STEPS_PER_EXECUTION": 4, "JIT_COMPILE": True},
}


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
        set_dotted(values, "DATASET.validation_count", 500)
    values["BATCH_SIZE"] = batch
    return config_from_values(values, "m8_bench")


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


class TorchWorker:
    """torch_reference.py --serve in a child process (torch and TensorFlow cannot share one)."""

    def __init__(self, batch: int):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
        self.proc = subprocess.Popen([sys.executable, str(HERE / "torch_reference.py"), "--serve", "--batch", str(batch)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError((self.proc.stderr.read().strip().splitlines() or ["no output"])[-1])
        self.info = json.loads(line)

    def run(self, variant: str, steps: int) -> dict:
        self.proc.stdin.write(f"{variant} {steps}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the torch worker died")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="epochs per variant (after one warm-up each)")
    parser.add_argument("--steps", type=int, default=50, help="iterations per epoch")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--options", default="jit:20,spe4:20,spe8:20,bf16:5",
                        help="comma-separated speed options, name[:steps]: " + ", ".join(OPTIONS))
    parser.add_argument("--torch-steps", type=int, default=20, help="steps per PyTorch epoch")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from resnet_tui.data.load import dispatch_load_dataset
    from resnet_tui.data.pipeline import make_train_dataset
    from resnet_tui.models.resnet import dispatch_build_model
    from resnet_tui.store.recorder import RunRecorder
    from resnet_tui.store.runs import RunStore
    from resnet_tui.training.callbacks import IterationCounter, StreamingCallback, TrainingControl, stop_rules
    from resnet_tui.training.compile import compile_model
    from resnet_tui.training.schedules import IterationStepDecay

    artifact = Path(tempfile.mkdtemp(prefix="bench-"))
    config = make_config(args.batch, args.steps, artifact)
    data = dispatch_load_dataset(8, config)
    store = RunStore.from_values(config.values)
    print(f"data: {data.description}; batch {args.batch}; {args.steps} steps per epoch unless noted; "
          f"{args.rounds} rounds after a warm-up")
    print(f"machine: {cpu_line()}; TensorFlow {tf.__version__}, Keras {keras.__version__}; "
          f"load average at start {load()}")

    # name -> (model, callbacks, steps, dataset)
    variants: dict[str, tuple] = {}
    runs = []

    def add(name: str, changes: dict, streaming: bool, steps: int) -> None:
        cfg = config.with_values(changes)
        keras.utils.set_random_seed(0)  # the same initial weights for every variant
        model = dispatch_build_model(8, cfg)
        schedule = IterationStepDecay(0.1, [32000, 48000], 0.1)
        compile_model(model, cfg, schedule)
        callbacks = []
        if streaming:
            run = store.create_run(f"m8_bench_{len(runs)}")
            runs.append(run)
            control = TrainingControl()
            counter = IterationCounter()
            stream = StreamingCallback(RunRecorder(run), schedule.value_at, control, counter)
            callbacks = [stream, *stop_rules(control, counter, 0, steps)]
        train = make_train_dataset(data, args.batch, True, 0).take(steps)
        variants[name] = (model, callbacks, steps, train)

    add("plain fit", {}, False, args.steps)
    add("fit + streaming + recording", {}, True, args.steps)
    for spec in filter(None, args.options.split(",")):
        name, _, steps = spec.partition(":")
        label = ", ".join(f"{k}={json.dumps(v)}" for k, v in OPTIONS[name].items())
        add(label + (f" ({steps} steps)" if steps else ""), OPTIONS[name], True, int(steps or args.steps))

    torch_worker = None
    if not args.no_torch:
        try:
            torch_worker = TorchWorker(args.batch)
            print(f"PyTorch reference: torch {torch_worker.info['torch']}, {torch_worker.info['threads']} threads, "
                  f"worker process")
        except Exception as exc:
            print(f"PyTorch reference skipped: {exc}")
    torch_variants = ["eager", "channels_last", "compile"] if torch_worker else []
    torch_failed: dict[str, str] = {}

    rates: dict[str, list[float]] = {name: [] for name in variants}
    def torch_name(variant: str) -> str:
        return f"PyTorch {variant}" + (f" ({args.torch_steps} steps)" if args.torch_steps != args.steps else "")

    rates.update({torch_name(v): [] for v in torch_variants})
    for round_ in range(args.rounds + 1):  # round 0 warms up (tracing, XLA and torch.compile compilation)
        for name, (model, callbacks, steps, train) in variants.items():
            start = time.perf_counter()
            model.fit(train, epochs=1, callbacks=callbacks, verbose=0, shuffle=False)
            seconds = time.perf_counter() - start
            if round_:
                rates[name].append(steps * args.batch / seconds)
        for variant in torch_variants:
            if variant in torch_failed:
                continue
            reply = torch_worker.run(variant, args.torch_steps)
            if "error" in reply:
                torch_failed[variant] = reply["error"]
            elif round_:
                rates[torch_name(variant)].append(reply["images"] / reply["seconds"])
        print(f"  round {round_}{' (warm-up)' if not round_ else ''} done, load average {load()}", flush=True)
    for run in runs:
        run.close()
    if torch_worker:
        torch_worker.close()

    def paired(a: str, b: str) -> str:
        ratios = [x / y for x, y in zip(rates[a], rates[b])]
        return f"{statistics.median(ratios):6.3f}  (per round: {', '.join(f'{r:.3f}' for r in ratios)})"

    print(f"\nimages/s, median of {args.rounds} rounds (each round's value in brackets); load average at end {load()}")
    for name, values in rates.items():
        if values:
            print(f"  {name:<52} {statistics.median(values):7.1f}  ({', '.join(f'{v:.0f}' for v in values)})")
    for variant, error in torch_failed.items():
        print(f"  PyTorch {variant:<44} failed: {error}")
    default = "fit + streaming + recording"
    print("\npaired ratios (median of per-round ratios)")
    print(f"  {'streaming + recording / plain fit':<52} {paired(default, 'plain fit')}")
    for name in variants:
        if name not in ("plain fit", default):
            print(f"  {name + ' / float32 default':<52} {paired(name, default)}")
    best_torch = max((n for n in rates if n.startswith("PyTorch") and rates[n]),
                     key=lambda n: statistics.median(rates[n]), default=None)
    if best_torch:
        print(f"  {'m8 default / ' + best_torch:<52} {paired(default, best_torch)}")
        fastest = max((n for n in variants if n != "plain fit"), key=lambda n: statistics.median(rates[n]))
        if fastest != default:
            print(f"  {'fastest m8 (' + fastest + ') / ' + best_torch:<52} {paired(fastest, best_torch)}")

    # The input pipeline alone, over the same images.
    pipeline = make_train_dataset(data, args.batch, True, 1)
    passes = []
    for _ in range(3):
        start, count = time.perf_counter(), 0
        for x, _y in pipeline:
            count += int(x.shape[0])
        passes.append(count / (time.perf_counter() - start))
    ratio = statistics.median(passes) / statistics.median(rates[default])
    print(f"\n  {'input pipeline alone':<52} {statistics.median(passes):7.0f}  ({ratio:.0f}x the m8 default's training)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
