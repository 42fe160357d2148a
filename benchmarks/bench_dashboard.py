"""What the dashboard costs: ingest, chart redraw, memory, start-up, and training with it on.

    .venv/bin/python benchmarks/bench_dashboard.py [--only ingest,redraw,memory,startup,training,monitor]
        [--iterations 64000] [--pairs 3] [--rounds 12]

1. ingest: a recorded 64,000-iteration run (352 steps per epoch, batch 128:
   the paper's run) fed through the live path, the trainer's sink
   (``EventBuffer``) and ``TrainingSession.ingest`` as the app's 5 Hz timer
   calls it (20 events a tick: 100 iterations/s) and all at once (a resumed
   run replays its past that way); and read back from its files by
   ``RunFollower`` (``resnet-tui watch`` / a dashboard following a headless run).
2. redraw: the training screen at 160x50 with that run loaded: milliseconds per
   chart rebuild (``MetricChart.render``: decimation, smoothing, plotext), each
   chart at the width the layout gives it, and one chart 160 columns wide.
3. memory: resident memory of the app (a fresh process without TensorFlow)
   after its first frame, and after the 64k-iteration run is loaded and drawn.
4. startup: seconds from starting ``resnet-tui`` in a pseudo-terminal of
   160x50 to the first painted screen (the config list on screen), median of 5,
   and whether TensorFlow was imported by then.
5. training: images/s of the same tiny synthetic run headless (``Trainer``
   alone) and in the dashboard (Textual's headless driver, 160x50, the app
   draining events and redrawing charts while the trainer thread works),
   paired and alternated, from each run's iterations.csv (epoch 1 left out).
6. monitor: what the machine sampler (machine/sampler.py, once a second in its own
   thread) costs: one sample's time, and m8's training steps in short blocks
   with the sampler off, at 1 Hz and at 10 Hz, rotated round by round on one
   compiled model (whole runs drift too much between modes to show 1%).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
SIZE = (160, 50)
STEPS_PER_EPOCH = 352
BATCH = 128


def rss_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def run_events(iterations: int, chunk: int = 1000):
    """A plausible recorded run as events, generated lazily in lists of ``chunk``."""
    import numpy as np

    from resnet_tui.config import default_values
    from resnet_tui.events import EpochEnd, IterationEnd, RunFinished, RunStarted

    rng = np.random.default_rng(0)
    epochs = math.ceil(iterations / STEPS_PER_EPOCH)
    yield [RunStarted("bench-run", "m8_base", default_values(), "(model summary)\n", 274042, STEPS_PER_EPOCH,
                      iterations, epochs, BATCH, 45000, 5000, 10000, 0, time.time())]
    out = []
    for i in range(1, iterations + 1):
        epoch = (i - 1) // STEPS_PER_EPOCH + 1
        lr = 0.1 * 0.1 ** ((i > 32000) + (i > 48000))
        loss = 0.15 + 2.2 * math.exp(-i / 6000) + abs(rng.normal(0, 0.08))
        acc = min(1.0, max(0.0, 1.0 - loss / 2.4 + rng.normal(0, 0.03)))
        out.append(IterationEnd(i, epoch, loss, acc, lr, 2000.0, loss, acc, i * 0.064))
        if i % STEPS_PER_EPOCH == 0 or i == iterations:
            out.append(EpochEnd(epoch, i, loss, acc, loss * 1.1, acc * 0.95, lr, 22.5, i * 0.064))
        if len(out) >= chunk:
            yield out
            out = []
    out.append(RunFinished("bench-run", "completed", f"iteration cap ({iterations} iterations)", iterations,
                           epochs, iterations * 0.064, 0.3, 0.91, 0.92))
    yield out


def new_session(artifact: Path):
    from resnet_tui.config import config_from_values, default_values
    from resnet_tui.store.runs import RunStore
    from resnet_tui.tui.session import TrainingSession

    return TrainingSession(config_from_values(default_values(), "m8_base"), RunStore.under(artifact))


# -- 1. ingest ------------------------------------------------------------------------------
def bench_ingest(iterations: int, artifact: Path) -> None:
    from resnet_tui.store.recorder import RunRecorder
    from resnet_tui.store.runs import RunStore
    from resnet_tui.tui.session import TrainingSession

    events = [e for chunk in run_events(iterations) for e in chunk]
    print(f"\n[ingest] {iterations:,} iterations + {iterations // STEPS_PER_EPOCH + 1} epochs "
          f"({len(events):,} events)")
    for label, per_tick in (("live, 20 events per 0.2 s tick", 20), ("all at once", len(events))):
        session = new_session(artifact)
        sink_s = ingest_s = 0.0
        worst = 0.0
        for lo in range(0, len(events), per_tick):
            part = events[lo:lo + per_tick]
            start = time.perf_counter()
            for event in part:
                session.buffer(event)  # what the trainer thread pays per event
            mid = time.perf_counter()
            session.ingest()  # what the UI thread pays per tick
            end = time.perf_counter()
            sink_s += mid - start
            ingest_s += end - mid
            worst = max(worst, end - mid)
        assert len(session.history.iterations) == iterations
        print(f"  {label:<34} ingest {ingest_s:6.2f} s in all ({ingest_s / len(events) * 1e6:5.1f} us/event, "
              f"slowest tick {worst * 1e3:6.1f} ms); trainer-side sink {sink_s / len(events) * 1e6:4.2f} us/event")

    store = RunStore.under(artifact)
    run = store.create_run("m8_base")
    run.write_config(new_session(artifact).config.values)
    run.write_meta("m8_base", resumed=False)
    recorder = RunRecorder(run)
    start = time.perf_counter()
    for event in events:
        recorder(event)
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    session = TrainingSession.follow(store.open_run(run.id), store)
    session.ingest()
    follow_s = time.perf_counter() - start
    print(f"  {'recording to iterations.csv':<34} {write_s:6.2f} s ({write_s / len(events) * 1e6:5.1f} us/event)")
    print(f"  {'followed from its files':<34} {follow_s:6.2f} s to read and ingest "
          f"{len(session.history.iterations):,} iterations")


# -- 2. redraw ------------------------------------------------------------------------------
async def _redraw(iterations: int, artifact: Path) -> None:
    from textual.app import App

    from resnet_tui.tui.app import ResnetTuiApp
    from resnet_tui.tui.history import ema_debiased
    from resnet_tui.tui.widgets.metric_chart import MetricChart, Trace

    def timed(chart: MetricChart, repeat: int = 7) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            chart.render()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3

    app = ResnetTuiApp(REPO / "configs", store=new_session(artifact).store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        session = new_session(artifact)
        for chunk in run_events(iterations):
            for event in chunk:
                session.buffer(event)
        app.session = session
        app.action_show("train")
        await pilot.pause()
        start = time.perf_counter()
        app.drain()  # ingest everything and draw the training screen
        await pilot.pause()
        first = time.perf_counter() - start
        print(f"\n[redraw] training screen at {SIZE[0]}x{SIZE[1]}, {iterations:,}-iteration run: ingest + first "
              f"full draw {first * 1e3:.0f} ms")
        for chart in app.screen.query(MetricChart):
            points = sum(chart.plotted.values())
            print(f"  {chart.title:<14} {chart.size.width:3d}x{chart.size.height:<3d} {timed(chart):6.1f} ms "
                  f"per rebuild ({points} points drawn)")
        history = session.history

    class OneChart(App):
        CSS = "MetricChart { width: 100%; height: 100%; }"

        def compose(self):
            yield MetricChart("loss")

    one = OneChart()
    async with one.run_test(size=(160, 40)) as pilot:
        chart = one.query_one(MetricChart)
        x = history.x_values("iteration")
        raw = history.iterations["loss"]
        chart.set_traces([Trace(None, x, raw, "gray", dots_only=True),
                          Trace("train", x, ema_debiased(raw, 0.6), "cyan+"),
                          Trace("val", history.x_values("iteration", "epochs"), history.epochs["val_loss"],
                                "orange+", points=True)], "iteration")
        await pilot.pause()
        print(f"  {'loss, alone':<14} {chart.size.width:3d}x{chart.size.height:<3d} {timed(chart):6.1f} ms "
              f"per rebuild ({sum(chart.plotted.values())} points drawn)")


# -- 3. memory (a child process: no TensorFlow, nothing else loaded) -------------------------
async def _memory_child(iterations: int, artifact: Path) -> dict:
    from resnet_tui.tui.app import ResnetTuiApp

    app = ResnetTuiApp(REPO / "configs", store=new_session(artifact).store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.action_show("train")
        await pilot.pause()
        gc.collect()
        empty = rss_mb()
        session = new_session(artifact)
        app.session = session
        for chunk in run_events(iterations):  # arrives as it would live: chunk by chunk, drained
            for event in chunk:
                session.buffer(event)
            app.drain()
        app.screen.query_one("#train-charts").show([("run", session.history)], app.chart_options, force=True)
        await pilot.pause()
        gc.collect()
        loaded = rss_mb()
        return {"empty_mb": empty, "loaded_mb": loaded, "history_mb": session.history.nbytes / 2**20,
                "tensorflow_imported": "tensorflow" in sys.modules}


def bench_memory(iterations: int, artifact: Path) -> None:
    out = subprocess.run([sys.executable, __file__, "--memory-child", "--iterations", str(iterations)],
                         capture_output=True, text=True, cwd=REPO, timeout=900)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        print(f"\n[memory] failed: {out.stderr.strip()[-500:]}")
        return
    m = json.loads(lines[-1])
    print(f"\n[memory] app after its first frame {m['empty_mb']:.0f} MB RSS; with the {iterations:,}-iteration run "
          f"loaded and drawn {m['loaded_mb']:.0f} MB: +{m['loaded_mb'] - m['empty_mb']:.1f} MB "
          f"(history arrays {m['history_mb']:.1f} MB); TensorFlow imported: {m['tensorflow_imported']}")


# -- 4. start-up ------------------------------------------------------------------------------
def startup_once(artifact: Path, timeout: float = 120.0) -> float | None:
    import fcntl
    import pty
    import select
    import struct
    import termios

    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # child: the terminal's size first, then resnet-tui
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(SIZE[0]), LINES=str(SIZE[1]))
        os.execve(sys.executable, [sys.executable, "-m", "resnet_tui.cli", "--configs", str(REPO / "configs"),
                                   "--artifact", str(artifact)], env)
    seen, painted = b"", None
    deadline = start + timeout
    try:
        while time.perf_counter() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                seen += data
                if painted is None and b"m8_base" in seen:  # the config list is on screen
                    painted = time.perf_counter() - start
                    os.write(fd, b"\x11")  # ctrl+q
            elif painted is not None and os.waitpid(pid, os.WNOHANG)[0]:
                pid = 0
                break
    finally:
        if pid:
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except OSError:
                pass
        os.close(fd)
    return painted


def bench_startup(artifact: Path, repeat: int = 5) -> None:
    times = [t for t in (startup_once(artifact) for _ in range(repeat)) if t is not None]
    imports = subprocess.run([sys.executable, "-c", "import sys, resnet_tui.cli, resnet_tui.tui.app; "
                              "print('tensorflow' in sys.modules, 'keras' in sys.modules)"],
                             capture_output=True, text=True, cwd=REPO).stdout.split()
    if not times:
        print("\n[startup] the first screen never appeared")
        return
    print(f"\n[startup] resnet-tui to the first painted screen at {SIZE[0]}x{SIZE[1]}: median "
          f"{statistics.median(times):.2f} s ({', '.join(f'{t:.2f}' for t in times)}); "
          f"TensorFlow / Keras imported by the dashboard's modules: {' / '.join(imports)}")


# -- 5. training with the dashboard on vs headless ---------------------------------------------
TRAIN_STEPS, TRAIN_EPOCHS = 30, 3  # the tiny synthetic run of parts 5 and 6


def tiny_run(root: Path):
    """The tiny synthetic run's config, its configs folder, its store, and images/s of a run of it."""
    sys.path.insert(0, str(REPO / "tests"))
    from tui_support import write_configs

    from resnet_tui.config import PATH_KEYS, config_from_values, default_values, set_dotted
    from resnet_tui.store.runs import RunStore

    steps, epochs = TRAIN_STEPS, TRAIN_EPOCHS
    values = default_values()
    for key in PATH_KEYS:
        values[key] = str(root / "artifact" / key.lower())
    for key, value in {"DATASET.source": "synthetic", "DATASET.synthetic_train_count": steps * BATCH,
                       "DATASET.validation_count": 0, "DATASET.synthetic_test_count": 256, "EPOCHS_COUNT": epochs,
                       "BATCH_SIZE": BATCH, "MAX_ITERATIONS": 0}.items():
        set_dotted(values, key, value)
    config = config_from_values(values, "m8_benchdash")
    configs = write_configs(root / "configs", values, "m8_benchdash")
    store = RunStore.from_values(values)

    def rate(run_id: str) -> float:
        rows = [r for r in store.open_run(run_id).read_iterations() if r.epoch > 1]
        return (len(rows) - 1) * BATCH / (rows[-1].elapsed - rows[0].elapsed)

    return config, configs, store, rate


def bench_training(pairs: int, root: Path) -> None:
    config, configs, store, rate = tiny_run(root)  # puts tests/ on the path, for tui_support
    from tui_support import select_config

    from resnet_tui.training.trainer import Trainer
    from resnet_tui.tui.app import ResnetTuiApp

    steps, epochs = TRAIN_STEPS, TRAIN_EPOCHS

    def headless() -> float:
        result = Trainer(config, store=store).run()
        return rate(result.run_id)

    ui_shares = []

    async def dashboard() -> float:
        app = ResnetTuiApp(configs, store=store)
        async with app.run_test(size=SIZE) as pilot:
            await select_config(pilot, "m8_benchdash")
            # The app runs in this thread (the trainer in a worker thread): its CPU time is the UI's cost.
            cpu, wall = time.thread_time(), time.perf_counter()
            await pilot.press("f5")
            while app.session is None or app.session.finished is None:
                await asyncio.sleep(0.5)  # not pilot.pause(): its idle waits would be counted as the UI's work
            ui_shares.append((time.thread_time() - cpu) / (time.perf_counter() - wall))
            return rate(app.session.finished.run_id)

    print(f"\n[training] synthetic m8, {epochs} epochs of {steps} steps of {BATCH}, images/s over epochs 2-{epochs}; "
          f"{pairs} pairs, order alternated")
    ratios = []
    for pair in range(pairs):
        order = ("headless", "dashboard") if pair % 2 == 0 else ("dashboard", "headless")
        got = {}
        for which in order:
            got[which] = headless() if which == "headless" else asyncio.run(dashboard())
        ratios.append(got["dashboard"] / got["headless"])
        print(f"  pair {pair + 1}: headless {got['headless']:.1f} img/s, dashboard {got['dashboard']:.1f} img/s, "
              f"ratio {ratios[-1]:.3f}; UI thread busy {ui_shares[-1]:.1%} of the run", flush=True)
    print(f"  dashboard / headless: median {statistics.median(ratios):.3f}; the UI thread (event loop, drains, "
          f"charts) used a median {statistics.median(ui_shares):.1%} of one core")


# -- 6. the machine sampler's cost ---------------------------------------------------------------
SAMPLER_BLOCK = 5  # training steps per block: about 4 s here, several samples at 1 Hz


def bench_monitor(rounds: int, root: Path) -> None:
    """One sample's cost, then m8's training step in blocks of SAMPLER_BLOCK steps with the
    sampler off, on (1 Hz, as runs have it) and at 10 Hz (an upper bound), the three blocks
    of a round back to back on one compiled model, so each round's ratios see one CPU mode."""
    import numpy as np
    import tensorflow as tf

    from resnet_tui.machine.sampler import INTERVAL, MachineMonitor, Sampler
    from resnet_tui.models.resnet import dispatch_build_model
    from resnet_tui.training.compile import compile_model

    sampler = Sampler()
    cpu, wall, n = time.thread_time(), time.perf_counter(), 2000
    for _ in range(n):
        sampler.sample()
    per_sample, per_sample_cpu = (time.perf_counter() - wall) / n, (time.thread_time() - cpu) / n
    gpus = len(sampler.sample().gpus)
    print(f"\n[monitor] one sample ({gpus} GPUs): {per_sample * 1e6:.0f} us wall, {per_sample_cpu * 1e6:.0f} us CPU; "
          f"at one per {INTERVAL:g} s that is {per_sample_cpu / INTERVAL:.3%} of one core")

    config, _, _, _ = tiny_run(root)
    model = dispatch_build_model(8, config)
    compile_model(model, config, 0.1)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(BATCH, 32, 32, 3)).astype("float32"))
    y = tf.constant(rng.integers(0, 10, BATCH))
    for _ in range(3):
        model.train_on_batch(x, y)  # traced before timing

    def block(interval: float | None) -> float:
        monitor = MachineMonitor(lambda event: None, interval).start() if interval else None
        start = time.perf_counter()
        for _ in range(SAMPLER_BLOCK):
            model.train_on_batch(x, y)
        seconds = time.perf_counter() - start
        if monitor is not None:
            monitor.stop()
        return SAMPLER_BLOCK * BATCH / seconds

    variants = {"off": None, "1 Hz": INTERVAL, "10 Hz": INTERVAL / 10}
    print(f"  m8 training steps of {BATCH}, {rounds} rounds of {SAMPLER_BLOCK}-step blocks: sampler off, at 1 Hz "
          f"and at 10 Hz, the order rotated each round")
    ratios: dict[str, list[float]] = {"1 Hz": [], "10 Hz": []}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        got = {}
        for name in names[r % 3:] + names[:r % 3]:
            got[name] = block(variants[name])
            rates[name].append(got[name])
        for name in ratios:
            ratios[name].append(got[name] / got["off"])
    print("  images/s, median: " + ", ".join(f"{name} {statistics.median(v):.1f}" for name, v in rates.items()))
    print("  sampler on / off, median of the rounds' ratios: "
          + ", ".join(f"{name} {statistics.median(v):.3f}" for name, v in ratios.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="ingest,redraw,memory,startup,training,monitor")
    parser.add_argument("--iterations", type=int, default=64000)
    parser.add_argument("--pairs", type=int, default=3, help="headless/dashboard training pairs")
    parser.add_argument("--rounds", type=int, default=12, help="sampler off/on rounds")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    if args.memory_child:
        print(json.dumps(asyncio.run(_memory_child(args.iterations, root / "artifact"))))
        return 0
    parts = set(args.only.split(","))
    from resnet_tui.machine.info import cpu_line

    print(f"{cpu_line()}; load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    if "ingest" in parts:
        bench_ingest(args.iterations, root / "ingest")
    if "redraw" in parts:
        asyncio.run(_redraw(args.iterations, root / "redraw"))
    if "memory" in parts:
        bench_memory(args.iterations, root / "memory")
    if "startup" in parts:
        bench_startup(root / "startup")
    if "training" in parts:
        bench_training(args.pairs, root / "training")
    if "monitor" in parts:
        bench_monitor(args.rounds, root / "monitor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
