"""m8's training step on Keras' JAX backend against TensorFlow, on this CPU, process against process.

The backend is chosen once per process (resnet_tui/backend.py), so each side
runs in a child process of its own, and the children alternate: TensorFlow,
JAX, JAX, TensorFlow, ... (the order swapped every round), so both sides of a
round see the machine in the same mood. Each child builds m8 from the
project's default config (so JIT_COMPILE false, as a CPU user gets it), trains
a warm-up with plain ``model.fit`` on synthetic data through the backend's own
input pipeline (tf.data; numpy threads on JAX), then times ``--steps``
iterations at batch 128, for float32 and, where the CPU has AVX-512 BF16 or
AMX, for mixed_bfloat16. The JAX child also times each with JIT_COMPILE
true, since Keras on JAX runs the step op by op without it.

    .venv/bin/python benchmarks/bench_backends.py [--rounds 3] [--steps 8] [--batch 128]

Prints each variant's median ms per iteration and img/s, and per precision
the median of the rounds' ratios (TensorFlow's time / JAX's: above 1, JAX is
faster), with the CPU line (``python -m resnet_tui.machine.info``).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resnet_tui.machine.info import cpu_flags, cpu_line  # noqa: E402 (after the path)

BACKENDS = ("tensorflow", "jax")
MARK = "bench_backends: "  # the child's result line
JIT = ", JIT_COMPILE true"


def precisions() -> list[str]:
    """float32, and mixed_bfloat16 where this CPU computes in bfloat16 (else it is emulated, at a loss)."""
    native = bool((cpu_flags() or set()) & {"avx512_bf16", "amx_bf16"})
    return ["float32", "mixed_bfloat16"] if native else ["float32"]


def variants(backend: str) -> dict[str, dict]:
    """The config changes each child times: its name -> changes (keys as in the config)."""
    chosen = {precision: {"MIXED_PRECISION": precision} for precision in precisions()}
    if backend == "jax":
        chosen.update({f"{precision}{JIT}": {"MIXED_PRECISION": precision, "JIT_COMPILE": True}
                       for precision in precisions()})
    return chosen


# The child: one backend, every variant --------------------------------------------

def child(backend_name: str, steps: int, batch: int) -> dict:
    """Milliseconds per iteration of each variant, on ``backend_name``, with the versions."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from resnet_tui import backend

    backend.choose(backend_name)
    import keras

    from resnet_tui.config import PATH_KEYS, config_from_values, default_values, set_dotted
    from resnet_tui.data.batches import train_batches
    from resnet_tui.data.load import dispatch_load_dataset
    from resnet_tui.machine.info import machine_line
    from resnet_tui.models.resnet import dispatch_build_model
    from resnet_tui.training.compile import compile_model
    from resnet_tui.training.schedules import make_schedule

    values = default_values()
    work = Path(tempfile.mkdtemp(prefix="bench-backends-"))
    for key in PATH_KEYS:
        values[key] = str(work / key.lower())
    set_dotted(values, "DATASET.source", "synthetic")
    set_dotted(values, "DATASET.synthetic_train_count", batch * (steps + 2))
    set_dotted(values, "DATASET.validation_count", 0)
    values["BATCH_SIZE"] = batch
    base = config_from_values(values, "m8_bench_backends")
    data = dispatch_load_dataset(8, base)

    times = {}
    for name, changes in variants(backend_name).items():
        config = base.with_values(changes)
        keras.utils.set_random_seed(config.SEED)
        model = dispatch_build_model(8, config)
        compile_model(model, config, make_schedule(config, 64000) or 0.1)
        batches = train_batches(data, batch, config.AUGMENT_MODE, config.SEED)
        start = time.perf_counter()
        model.fit(batches, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False)  # trace, compile
        warm_up = time.perf_counter() - start
        clock = EpochClock(model)
        model.fit(batches, epochs=1, steps_per_epoch=steps, callbacks=[clock], verbose=0, shuffle=False)
        times[name] = {"ms": clock.seconds / steps * 1e3, "warm_up_s": warm_up}
    return {"backend": backend_name, "machine": machine_line(), "times": times}


def EpochClock(model):  # noqa: N802 (a class made here, once Keras is imported)
    """A callback timing fit's epoch, from its start to its end with the device's work done."""
    import keras

    class Clock(keras.callbacks.Callback):
        seconds = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if keras.backend.backend() == "jax":  # JAX returns before the work is done
                import jax

                jax.block_until_ready([v.value for v in model.variables])
            self.seconds = time.perf_counter() - self.began

    return Clock()


# The parent: alternating children -------------------------------------------------

def run_child(backend: str, steps: int, batch: int) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, __file__, "--child", backend, "--steps", str(steps), "--batch", str(batch)],
                          env=env, capture_output=True, text=True, timeout=900)
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"the {backend} child failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-3000:]}")


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="timed iterations per variant, after 2 of warm-up")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(MARK + json.dumps(child(args.child, args.steps, args.batch)), flush=True)
        return 0

    machine = subprocess.run([sys.executable, "-m", "resnet_tui.machine.info"], cwd=ROOT, capture_output=True,
                             text=True, env={**os.environ, "KERAS_BACKEND": "tensorflow"}).stdout.strip()
    print(f"{machine or 'machine: ' + cpu_line()}\nm8 at batch {args.batch}, {args.steps} timed iterations per "
          f"variant after 2 of warm-up, {args.rounds} rounds of one process per backend; load {load()}", flush=True)
    runs: dict[str, list[dict]] = {name: [] for name in BACKENDS}
    began = time.perf_counter()
    for round_ in range(args.rounds):
        for backend in BACKENDS if round_ % 2 == 0 else BACKENDS[::-1]:
            result = run_child(backend, args.steps, args.batch)
            runs[backend].append(result)
            print(f"  round {round_ + 1} {backend:<10} " + ", ".join(
                f"{name} {t['ms']:.0f} ms (warm-up {t['warm_up_s']:.1f} s)" for name, t in result["times"].items()),
                flush=True)
    for backend in BACKENDS:
        print(f"{backend}: {runs[backend][0]['machine']}")
    print(f"\n{'backend':<11} {'variant':<28} {'ms/iteration':>12} {'img/s':>7}  rounds (ms)")
    for backend in BACKENDS:
        for name in runs[backend][0]["times"]:
            ms = [run["times"][name]["ms"] for run in runs[backend]]
            print(f"{backend:<11} {name:<28} {statistics.median(ms):12.0f} {args.batch / statistics.median(ms) * 1e3:7.1f}"
                  f"  {', '.join(f'{v:.0f}' for v in ms)}")
    print()
    for name in precisions():
        for jax_name in (name, name + JIT):
            ratios = [tf["times"][name]["ms"] / jx["times"][jax_name]["ms"]
                      for tf, jx in zip(runs["tensorflow"], runs["jax"])]
            print(f"{name}: TensorFlow's time / JAX's ({jax_name}) = {statistics.median(ratios):.3f} (rounds: "
                  f"{', '.join(f'{r:.3f}' for r in ratios)}; above 1: JAX is faster)")
    if "mixed_bfloat16" in precisions():
        for backend, suffix in (("tensorflow", ""), ("jax", ""), ("jax", JIT)):
            ratios = [run["times"]["float32" + suffix]["ms"] / run["times"]["mixed_bfloat16" + suffix]["ms"]
                      for run in runs[backend]]
            print(f"{backend}{suffix}: mixed_bfloat16 speed / float32 = {statistics.median(ratios):.3f}")
    print(f"load at end {load()}; {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
