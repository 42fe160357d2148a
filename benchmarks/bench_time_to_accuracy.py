"""Time to accuracy: the paper's recipe against m8_fast, same model, same budget in iterations.

Both recipes train m8 with real ``Trainer`` runs on the CIFAR-10 sample
(``../shared/data/cifar10-sample.npz``: 10000 train / 2000 validation images),
batch 128, for the same number of iterations (``--epochs`` epochs of the
sample), with the same SEEDs:

- paper: configs/m8_base.json (SGD momentum 0.9, lr 0.1, coupled L2 1e-4)
  with its step schedule compressed to the budget: lr /10 at 50% and 75% of
  it, as 32,000 and 48,000 are of 64,000;
- fast: configs/m8_fast.json as it is, its warmup scaled to the budget as
  its 704 iterations are to its 50 epochs of 352 (17,600); the cosine runs to
  the budget's last iteration by itself (decay_steps 0).

Printed: the validation accuracy after every epoch of every run and the mean
over SEEDs, and the iterations each recipe needs to reach the paper recipe's
final validation accuracy (per SEED and for the mean curves). Validation runs
once per epoch, so "needs" is the first epoch end at or above the target, and,
in brackets, where the straight line between the two epoch ends around it
crosses the target (an estimate).

    nice -n 10 .venv/bin/python benchmarks/bench_time_to_accuracy.py [--epochs 4] [--seeds 42,43]
        [--max-iterations N]   # N caps each run (a smoke test: 1)
        [--runs DIR]           # print the figures of an earlier invocation's runs (its artifact folder)
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
from resnet_tui.machine.info import cpu_line  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "cifar10-sample.npz"
FAST_EPOCH_ITERATIONS = 352  # 45,000 images in batches of 128: what m8_fast's warmup is counted in


def run_folders(artifact: Path) -> dict[str, str]:
    """The path keys of every run of one invocation: folders under ``artifact``."""
    from resnet_tui.config import PATH_KEYS

    return {key: str(artifact / key.lower()) for key in PATH_KEYS}


def recipes(budget: int, seed: int, artifact: Path) -> dict:
    """name -> Config of both recipes on the sample for ``budget`` iterations."""
    from resnet_tui.config import load_config

    common = {**run_folders(artifact), "DATASET.source": "npz",
              "DATA_PATH": str(SAMPLE), "SEED": seed, "MAX_ITERATIONS": budget, "EPOCHS_COUNT": 100_000}
    paper = load_config(REPO / "configs" / "m8_base.json").with_values(
        {**common, "STEP_SCHEDULE.boundaries": sorted({max(budget // 2, 1), max(budget * 3 // 4, 2)})})
    fast = load_config(REPO / "configs" / "m8_fast.json")
    full = fast.EPOCHS_COUNT * FAST_EPOCH_ITERATIONS
    warmup = max(1, round(fast.COSINE_SCHEDULE["warmup_steps"] * budget / full))
    fast = fast.with_values({**common, "COSINE_SCHEDULE.warmup_steps": warmup})
    return {"paper": paper, "fast": fast}


def train(config) -> tuple[list, float, float]:
    """(EpochEnd events, seconds, images/s) of one run."""
    from resnet_tui.events import EpochEnd, IterationEnd
    from resnet_tui.training.trainer import Trainer

    events: list = []
    start = time.perf_counter()
    result = Trainer(config, sink=events.append, capture_stderr=False).run()
    seconds = time.perf_counter() - start
    if result.status != "completed":
        raise SystemExit(f"{config.name}: {result.status} ({result.error or result.stop_reason})")
    rates = [e.images_per_sec for e in events if isinstance(e, IterationEnd)][1:] or [0.0]
    return [e for e in events if isinstance(e, EpochEnd)], seconds, statistics.median(rates)


def needs(curve: list[tuple[int, float]], target: float) -> str:
    """The first iteration whose epoch-end validation accuracy is >= target, and the linear estimate."""
    previous = (0, 0.1)  # chance, before the first update
    for iteration, accuracy in curve:
        if accuracy >= target - 1e-12:
            (i0, a0) = previous
            estimate = i0 + (iteration - i0) * (target - a0) / (accuracy - a0) if accuracy > a0 else iteration
            return f"{iteration} (~{estimate:.0f})"
        previous = (iteration, accuracy)
    return "not reached"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4, help="the budget, in epochs of the sample (79 iterations)")
    parser.add_argument("--seeds", default="42,43")
    parser.add_argument("--max-iterations", type=int, default=0, help="cap each run (smoke test)")
    parser.add_argument("--runs", help="an earlier invocation's artifact folder: print its figures, train nothing")
    args = parser.parse_args()
    if not SAMPLE.is_file():
        print(f"needs the CIFAR-10 sample at {SAMPLE}")
        return 2
    import numpy as np

    from resnet_tui.training.trainer import plan_training

    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"machine: {cpu_line()}", flush=True)
    if args.runs:
        curves, budget = recorded(Path(args.runs))
    else:
        artifact = Path(tempfile.mkdtemp(prefix="bench-tta-"))
        train_count = len(np.load(SAMPLE)["y_train"])
        steps = plan_training(recipes(1, seeds[0], artifact)["paper"], train_count).steps_per_epoch
        budget = args.max_iterations or args.epochs * steps
        print(f"budget: {budget} iterations ({budget / steps:g} epochs of {steps}), batch 128, seeds {seeds}; "
              f"runs under {artifact}", flush=True)
        curves = {"paper": {}, "fast": {}}
        for seed in seeds:  # interleaved, so both recipes see the machine in the same moods
            for name, config in recipes(budget, seed, artifact).items():
                epochs, seconds, rate = train(config)
                curves[name][seed] = [(e.iteration, e.val_accuracy) for e in epochs]
                print(f"  {name} seed {seed}: {seconds:.0f} s, {rate:.0f} img/s (median)", flush=True)
    report(curves, budget, seeds[0])
    return 0


def recorded(artifact: Path) -> tuple[dict, int]:
    """The curves of the runs an earlier invocation left under ``artifact``, and their budget."""
    from resnet_tui.store.runs import RunStore

    store, curves = RunStore.from_values(run_folders(artifact)), {"paper": {}, "fast": {}}
    names = {"m8_base": "paper", "m8_fast": "fast"}
    for info in store.list_runs():
        run = store.open_run(info.run_id)
        config = run.read_config()
        curves[names[info.config_name]][config["SEED"]] = [(e.iteration, e.val_accuracy) for e in run.read_epochs()]
        budget = config["MAX_ITERATIONS"]
    print(f"budget: {budget} iterations, batch 128, seeds {sorted(curves['paper'])}; runs recorded under {artifact}")
    return {name: dict(sorted(by_seed.items())) for name, by_seed in curves.items()}, budget


def report(curves: dict, budget: int, seed: int) -> None:
    for name, config in recipes(budget, seed, Path(tempfile.gettempdir())).items():
        print(f"{name}: {describe(config)}")
    print("\nvalidation accuracy after each epoch (iteration)")
    for name, by_seed in curves.items():
        for run_seed, curve in by_seed.items():
            print(f"{name:<5} seed {run_seed:<4} " + "  ".join(f"{acc:.4f} ({it})" for it, acc in curve))
        print(f"{name:<5} mean      " + "  ".join(f"{acc:.4f} ({it})" for it, acc in mean_curve(by_seed)))

    print("\niterations to reach the paper recipe's final validation accuracy: first epoch end (~ linear estimate)")
    for run_seed in list(curves["paper"]) + ["mean"]:
        paper, fast = ((by_seed[run_seed] if run_seed != "mean" else mean_curve(by_seed)) for by_seed in curves.values())
        target = paper[-1][1]
        print(f"seed {run_seed!s:<4} target {target:.4f}: paper {needs(paper, target)}, fast {needs(fast, target)} "
              f"of {budget}")


def mean_curve(by_seed: dict[int, list[tuple[int, float]]]) -> list[tuple[int, float]]:
    runs = list(by_seed.values())
    return [(points[0][0], statistics.mean(acc for _, acc in points)) for points in zip(*runs)]


def describe(config) -> str:
    from resnet_tui.config import schedule_name

    opt, v = config.OPTIMIZER, config.values
    decay = f"decoupled wd {opt['weight_decay']:g}" if opt["weight_decay"] else f"L2 {config.L2_MODE['lambda']:g}"
    schedule = schedule_name(v)
    if schedule == "step":
        schedule += f" x{config.STEP_SCHEDULE['factor']:g} at {config.STEP_SCHEDULE['boundaries']}"
    elif schedule == "cosine":
        c = config.COSINE_SCHEDULE
        schedule = (f"warmup {c['warmup_steps']} from {opt['learning_rate']:g} to {c['warmup_target']:g}, "
                    f"cosine to x{c['alpha']:g}")
    return (f"{opt['type']} lr {opt['learning_rate']:g} momentum {opt['momentum']:g}"
            f"{' nesterov' if opt['nesterov'] else ''}, {decay}, label smoothing {config.LABEL_SMOOTHING:g}, {schedule}")


if __name__ == "__main__":
    sys.exit(main())
