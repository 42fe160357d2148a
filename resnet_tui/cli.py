"""Command line: ``resnet-tui`` opens the dashboard; subcommands work headless.

    resnet-tui train CONFIG [--set KEY=VALUE ...]
    resnet-tui runs [--tag NAME] [--grep TEXT] [--all]
    resnet-tui show RUN
    resnet-tui note RUN [TEXT]
    resnet-tui tag RUN [+NAME|-NAME ...]
    resnet-tui hide RUN / unhide RUN
    resnet-tui delete RUN [--yes]
    resnet-tui evaluate RUN
    resnet-tui export RUN [--tensorboard DIR] [--csv FILE]
    resnet-tui resume RUN
    resnet-tui watch RUN
    resnet-tui serve [--host H] [--port P] [--token T] [--max-sessions N]
    resnet-tui validate CONFIG
    resnet-tui summary CONFIG
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from dataclasses import asdict
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column, Table
from rich.text import Text

from resnet_tui import backend
from resnet_tui.alerts import AlertSettingsError
from resnet_tui.config import Config, ConfigError, load_config, parse_override
from resnet_tui.data.dataset import DatasetError
from resnet_tui.events import RunStarted, RunStatus
from resnet_tui.machine.stderr import fd2_to
from resnet_tui.report import format as fmt
from resnet_tui.report.console import CliConsole
from resnet_tui.report.tables import (
    confusion_report,
    machine_rows,
    note_rows,
    result_table,
    resume_command,
    runs_listing,
    stopping_message,
)
from resnet_tui.store.json_files import RunFileError, RunResult
from resnet_tui.store.notes import shown_tags, tag_problem
from resnet_tui.store.runs import ResumeError, RunBusyError, RunCorruptError, RunInfo, RunNotFoundError, RunStore, StorageError

console = CliConsole()
err_console = CliConsole(stderr=True)


def quiet_tensorflow() -> None:
    """Less of TensorFlow's start-up chatter (its C++ lines ignore most of this)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_keras_quietly() -> None:
    """Import Keras and its backend with fd 2 pointed at /dev/null: TensorFlow's C++ start-up
    lines (oneDNN, CUDA probes) bypass Python and TF_CPP_MIN_LOG_LEVEL."""
    quiet_tensorflow()
    with fd2_to(os.devnull):
        import keras  # noqa: F401

        if backend.on_tensorflow():
            import tensorflow  # noqa: F401


def labelled(label: str, style: str, message: str) -> Text:
    """``label`` in ``style``, then ``message`` as typed.

    User text (config names and values, run ids, paths, error messages) reaches
    Rich only inside a Text, never in a markup string: "[red]" or "[/]" in a
    value is shown, not read as a tag.
    """
    return Text.assemble((label, style), " ", message)


def load_with_overrides(path: str, assignments: list[str]) -> Config:
    config = load_config(path)
    if assignments:
        changes = dict(parse_override(a) for a in assignments)
        config = config.with_values(changes)
    return config


class ProgressSink:
    """Shows a run's events as a rich progress bar; refreshes at most ~10 times a second."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task: TaskID | None = None
        self._last = 0.0

    def __call__(self, event) -> None:
        from resnet_tui import events as ev

        if isinstance(event, ev.IterationEnd):
            now = time.monotonic()
            if now - self._last < 0.1 or self.task is None:
                return
            self._last = now
            self.progress.update(self.task, completed=event.iteration,
                                 stats=progress_stats(event, self.progress.console.width))
        elif isinstance(event, ev.RunStarted):
            if self.task is not None:  # a followed run resumed elsewhere: its progress starts over
                self.progress.remove_task(self.task)
            console.print(labelled("run", "bold", f"{event.run_id}: {event.param_count:,} parameters, "
                                   f"{event.train_count} train / {event.val_count} val / {event.test_count} test "
                                   f"images, {event.steps_per_epoch} iterations per epoch"))
            self.task = self.progress.add_task("train", total=event.total_iterations,
                                               completed=event.start_iteration, stats="")
        elif isinstance(event, ev.EpochEnd):
            self.progress.console.print(epoch_line(event, self.progress.console.width))
            if self.task is not None:
                self.progress.update(self.task, completed=event.iteration)
        elif isinstance(event, ev.DatasetProgress):
            if not hasattr(self, "_download"):
                self._download = self.progress.add_task("download", total=event.total_bytes or None,
                                                        stats="bytes of the dataset downloaded")
            self.progress.update(self._download, completed=event.done_bytes)
        elif isinstance(event, ev.LogMessage):
            if event.level == "error":
                return  # printed once, after the result table
            style = {"warning": "yellow"}.get(event.level, "dim")
            self.progress.console.print(Text(f"{event.level}: {event.text}", style=style))


def print_result(result: RunResult, run) -> None:
    """The result table of a run that just ended (from its result: the disk may be full),
    where it was saved, and a failure's error, once, on stderr."""
    record = asdict(result)
    info = RunInfo(result.run_id)
    info.add_result(record)
    console.print(result_table(info, saved=run, show_error=False, machine=machine_rows(run)))
    if result.confusion:
        console.print(confusion_report(record))
    if result.status == RunStatus.FAILED:
        err_console.print(labelled("error:", "bold red", result.error or ""))
        if run is not None:
            err_console.print(Text(f"full traceback: {run.paths.error / 'error.log'}"))


def cmd_train(args) -> int:
    config = load_with_overrides(args.config, args.set)
    if getattr(args, "artifact", None):  # every run folder under DIR, as --artifact means for runs, show, ...
        config = config.with_values(RunStore.under(args.artifact).path_values())
    for warning in config.warnings:
        err_console.print(labelled("warning:", "yellow", warning))
    import_keras_quietly()
    from resnet_tui.training import processes
    from resnet_tui.training.trainer import Trainer

    if processes.wanted(args.coordinator, args.processes, args.process_id):
        return train_in_processes(config, args)
    return train_with_progress(lambda sink: Trainer(config, sink=sink))


def train_in_processes(config: Config, args) -> int:
    """One of several processes training one run (docs/multi-gpu.md): process 0 shows and writes
    the run as a lone process does; every other trains its shard into a private folder it deletes,
    and says how the run ended. A failure ends the process at once (processes.leave)."""
    from resnet_tui.training import processes
    from resnet_tui.training.trainer import Trainer

    try:
        cluster = processes.join(config, args.coordinator, args.processes, args.process_id)
        if cluster.index == 0:
            code = train_with_progress(lambda sink: Trainer(config, sink=sink))
        else:
            with processes.private_store(cluster) as store:
                code = train_shard(Trainer(config, store=store, capture_stderr=False), cluster)
    except Exception as exc:  # said here: main() would first wait at JAX's exit for the other processes
        err_console.print(labelled("error:", "bold red", str(exc)))
        code = 2
    return processes.leave(code, failed=code in (1, 2))


def train_shard(trainer, cluster) -> int:
    """A process other than 0: trains without a progress bar; a signal stops every process."""
    err_console.print(Text(f"{cluster}: training its shard of every batch; process 0 writes the run", style="dim"))

    def first_signal(signum: int) -> None:
        trainer.stop(None if signum == signal.SIGINT else signal.Signals(signum).name)
        err_console.print(Text(f"{cluster}: every process stops after this step (Ctrl-C again to abort)",
                               style="yellow"))

    result, signalled = run_interruptible(trainer.run, first_signal, lambda: None)
    err_console.print(labelled(f"{cluster}:", "bold", f"{result.status}: {result.error or result.stop_reason}"))
    if result.status == RunStatus.FAILED:
        return 1
    return 128 + signalled[0] if signalled and result.status == RunStatus.STOPPED else 0


def cmd_resume(args) -> int:
    store = store_from_args(args)
    problem = store.open_run(args.run).resume_problem()  # before TensorFlow's seconds of loading
    if problem:
        raise ResumeError(problem)
    import_keras_quietly()
    from resnet_tui.training.trainer import Trainer

    return train_with_progress(lambda sink: Trainer.resuming(store, args.run, sink=sink))




def make_progress() -> Progress:
    """The training progress line: iterations done, ``progress_stats`` (field ``stats``) and the ETA;
    at WIDE columns and more also the task's name, the bar and the time elapsed. Under WIDE those
    three are dropped (the iteration count and the ETA say as much), so that the learning rate and
    images/s fit 80 columns, every field whole."""
    def whole() -> Column:  # never cut: the bar gives way first, then the task's name
        return Column(no_wrap=True)

    count = MofNCompleteColumn(table_column=whole())
    stats = TextColumn("{task.fields[stats]}", markup=False, table_column=whole())
    if console.width >= fmt.WIDE:
        return Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), count, stats,
            TimeElapsedColumn(table_column=whole()), TextColumn("ETA", table_column=whole()),
            TimeRemainingColumn(table_column=whole()), console=console)
    return Progress(  # 76 columns at 12,345/64,000 in epoch 32, lr 0.001, 1,234 img/s; 79 at worst
        count, stats, TextColumn("ETA", table_column=whole()), TimeRemainingColumn(table_column=whole()),
        console=console)


def progress_stats(event, width: int) -> str:
    """An IterationEnd on the progress line: one kind of figure, the epoch's running means (Keras'
    own, as its progress bar shows them: a single batch's loss jumps about), labelled "mean";
    the learning rate and images/s of that update. Shorter under WIDE columns."""
    if width < fmt.WIDE:
        ips = event.images_per_sec
        rate = f"{ips:.0f}" if ips < 10_000 else f"{ips / 1000:.0f}k"
        return (f"ep {event.epoch} mean loss {event.epoch_loss:.3f} acc {event.epoch_accuracy:.1%} "
                f"lr {event.lr:.2g} {rate} img/s")
    return (f"epoch {event.epoch}  mean loss {event.epoch_loss:.4f}  mean acc {event.epoch_accuracy:.2%}  "
            f"lr {event.lr:.3g}  {event.images_per_sec:.0f} img/s")


def epoch_line(event, width: int) -> str:
    """One line per epoch; under WIDE columns without the iteration and the seconds."""
    val = "" if event.val_accuracy is None else \
        f"  val loss {event.val_loss:.4f}  val acc {fmt.percent(event.val_accuracy)}"
    if width < fmt.WIDE:
        return f"epoch {event.epoch:>3}  loss {event.loss:.4f}  acc {fmt.percent(event.accuracy)}{val}  lr {event.lr:.3g}"
    return (f"epoch {event.epoch:>3}  iteration {event.iteration:>6}  loss {event.loss:.4f}  "
            f"acc {fmt.percent(event.accuracy)}{val}  lr {event.lr:.4g}  {event.duration:.1f}s")


SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_interruptible(work, first_signal, on_abort, tick=lambda: None) -> Any:
    """``work()`` in a thread while the main thread takes each signal at once, and its result.

    Python runs handlers in the main thread only, and only between its own steps, so two
    Ctrl-C while it was inside TensorFlow counted as one. The first Ctrl-C (or SIGTERM, SIGHUP
    from a dropped SSH session) calls ``first_signal(signum)``; a second one calls ``on_abort()``
    and leaves at once, as a kill would (exit 128 + its number)."""
    signalled: list[int] = []

    def on_signal(signum, frame):
        if signalled:
            on_abort()
            sys.stdout.flush()
            os._exit(128 + signum)
        signalled.append(signum)
        first_signal(signum)

    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:  # raised again in the main thread, which says it
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="training", daemon=True)
    previous = {sig: signal.signal(sig, on_signal) for sig in SIGNALS}
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.1)
            tick()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"], signalled


def train_with_progress(make_trainer) -> int:
    from resnet_tui.alerts import Notifier
    from resnet_tui.health import HealthWatch

    progress = make_progress()
    notifier, health, names = Notifier.from_settings(), HealthWatch(), {"run": "?", "config": "?"}

    def alert(alerts) -> None:  # the health rules' alerts: said here, and sent as the user set up (alerts.py)
        for said in alerts:
            if said.kind not in ("completed", "stopped", "failed", "interrupted"):
                progress.console.print(Text(f"health: {said.kind}: {said.message}", style="bold red"))
            notifier.send(said, names["run"], names["config"])

    progress_sink = ProgressSink(progress)

    def sink(event) -> None:
        progress_sink(event)
        if isinstance(event, RunStarted):
            names.update(run=event.run_id, config=event.config_name)
        alert(health.see(event))

    trainer = make_trainer(sink)

    def first_signal(signum: int) -> None:
        # Finish the current step, save, record the run as stopped, by which signal.
        message = stopping_message(trainer.stop(None if signum == signal.SIGINT else signal.Signals(signum).name),
                                   trainer.control.evaluating)
        progress.console.print(Text(f"{message} (Ctrl-C again to abort)", style="yellow"))

    def on_abort() -> None:  # the run is left as a kill leaves it (interrupted, resumable from its last epoch)
        progress.stop()
        err_console.print("aborted: the run is left interrupted; resume it from its last saved epoch")

    with progress:
        result, signalled = run_interruptible(trainer.run, first_signal, on_abort, tick=lambda: alert(health.tick()))
    print_result(result, trainer.run_record)
    notifier.wait()
    if result.status == RunStatus.FAILED:
        return 1
    # Stopped by a signal: a shell (or a service manager) expects 128 + its number (130, 143, 129).
    return 128 + signalled[0] if signalled and result.status == RunStatus.STOPPED else 0


def with_artifact_paths(spec, args):
    """The sweep with every trial's run folders under --artifact DIR, when given."""
    from dataclasses import replace

    if not getattr(args, "artifact", None):
        return spec
    return replace(spec, base_values={**spec.base_values, **RunStore.under(args.artifact).path_values()})


def cmd_sweep(args) -> int:
    from resnet_tui.sweep.spec import load_sweep
    from resnet_tui.sweep.study import create_study, default_storage

    spec = with_artifact_paths(load_sweep(args.sweep), args)
    store = RunStore.from_values(spec.base_values)
    url = args.storage or spec.storage or default_storage(store, spec.name)
    import_keras_quietly()
    return run_sweep(spec, create_study(spec, url), url, store, args.save_best)


def cmd_sweep_worker(args) -> int:
    from resnet_tui.sweep.study import join_study

    spec, study = join_study(args.study, args.storage)
    spec = with_artifact_paths(spec, args)
    import_keras_quietly()
    return run_sweep(spec, study, args.storage, RunStore.from_values(spec.base_values), args.save_best)


def run_sweep(spec, study, url: str, store: RunStore, save_best: str | None) -> int:
    """Trials until the budget is spent; a line per epoch and per trial, then the table and the best."""
    from resnet_tui.events import EpochEnd
    from resnet_tui.report.sweeps import summary_lines, trials_table
    from resnet_tui.sweep.study import SweepRunner, best_config_values

    console.print(labelled("sweep:", "bold", f"{spec.name}, {len(spec.params)} keys, budget "
                                             f"{spec.trials or '∞'} trials; another process or machine joins with "
                                             f"`resnet-tui sweep-worker {spec.name} --storage {url}`"))

    def on_event(event) -> None:
        if isinstance(event, EpochEnd):
            console.print(Text(f"  {epoch_line(event, console.width)}", style="dim"))

    def on_trial(report) -> None:
        values = " ".join(f"{key.split('.')[-1]}={value:.3g}" if isinstance(value, float) else f"{key.split('.')[-1]}={value}"
                          for key, value in report.params.items())
        best = "" if report.value is None else f" · best val {fmt.percent(report.value)}"
        console.print(Text(f"trial {report.number} {report.state.lower()}: {values}{best} · {report.epochs} epochs"
                           + (f" · run {report.run_id}" if report.run_id else "") + f" · {report.note}"))

    runner = SweepRunner(spec, study, store, sink=on_event, on_trial=on_trial)

    def first_signal(signum: int) -> None:
        runner.stop()
        console.print(Text("stopping the sweep: the trial under way stops at its step and is saved; no new trial "
                           "starts (Ctrl-C again to abort)", style="yellow"))

    _, signalled = run_interruptible(runner.run, first_signal, lambda: err_console.print("aborted"))
    console.print(trials_table(spec, study))
    for line in summary_lines(spec, study):
        console.print(line)
    if save_best:
        from resnet_tui.config import config_from_values, save_config

        try:
            path = save_config(config_from_values(best_config_values(spec, study), spec.base_name), save_best)
            console.print(labelled("saved:", "green", f"the best trial's config: {path}"))
        except ValueError as exc:  # no completed trial yet
            err_console.print(labelled("error:", "bold red", f"no best config to save: {exc}"))
            return 1
    return 128 + signalled[0] if signalled else 0


def cmd_lr_find(args) -> int:
    """The learning-rate range test of a config: the curve, two suggestions, and the key to set."""
    import plotext as plt

    from resnet_tui.config import learning_rate_key

    config = load_with_overrides(args.config, args.set)
    import_keras_quietly()
    from resnet_tui.training.lr_finder import find_lr

    with make_progress() as progress:
        task = progress.add_task("lr-find", total=args.iterations, stats="building the model")
        curve = find_lr(config, args.start, args.end, args.iterations,
                        on_point=lambda lr, loss, smooth: progress.update(
                            task, advance=1, stats=f"lr {lr:.3g}  loss {loss:.3f}  smoothed {smooth:.3f}"))
    plt.clear_figure()
    plt.plot(curve.lrs, curve.smoothed, marker="braille")
    plt.xscale("log")
    plt.plotsize(min(console.width, 100), 20)
    console.print(Text(f"{config.name}: smoothed loss against learning rate", style="bold"))  # whole, however narrow
    console.print(Text.from_ansi(plt.build()))
    record = curve.save(RunStore.from_values(config.values).roots["log"].parent / "lr_find")
    key = learning_rate_key(config.values)
    for label, value in (("steepest descent", curve.steepest), ("minimum / 10", curve.minimum_tenth)):
        console.print(labelled(f"{label}:", "bold", f" {value:.3g}" if value else " — (too few points)"))
    if curve.stopped:
        console.print(Text(f"ended early: {curve.stopped}", style="yellow"))
    suggestion = curve.steepest or curve.minimum_tenth
    if suggestion:
        console.print(f"try it: --set {key}={suggestion:.3g}  (the config's {key} is {get_key(config, key):g})")
    console.print(Text(f"curve: {record}", style="dim"))
    return 0


def get_key(config: Config, key: str) -> Any:
    from resnet_tui.config import get_dotted

    return get_dotted(config.values, key)


def store_from_args(args) -> RunStore:
    if getattr(args, "artifact", None):
        return RunStore.under(args.artifact)
    if getattr(args, "config", None):
        return RunStore.from_values(load_config(args.config).values)
    from resnet_tui.config import default_values

    return RunStore.from_values(default_values())


def cmd_runs(args) -> int:
    store = store_from_args(args)
    if args.artifact and not store.roots["log"].is_dir():  # a typo in --artifact is not "no runs yet"
        err_console.print(labelled("error:", "bold red", f"{store.roots['log']} does not exist: no run was ever "
                                                         "written there (check --artifact or the config's LOG_PATH)"))
        return 2
    infos = store.list_runs()
    if not infos:
        console.print("no runs yet; start one with `resnet-tui train configs/m8_light.json`")
        return 0
    infos, hidden = select_runs(infos, args.tag, args.grep, args.all)
    if infos:
        # On a terminal the table fits its width; piped (| cat, > file) it keeps every column.
        console.print(runs_listing(infos, console.width if console.on_a_terminal() else None))
    else:
        console.print("no runs match" if args.tag or args.grep else "every run is hidden")
    if hidden:
        count = f"{hidden} hidden run{'s' if hidden > 1 else ''}"
        console.print(Text(f"{count}, dimmed" if args.all else
                           f"{count} (--all shows {'them' if hidden > 1 else 'it'})", style="dim"))
    return 0


def select_runs(infos: list[RunInfo], tags: list[str], grep: str | None, every: bool) -> tuple[list[RunInfo], int]:
    """The runs that have every tag of ``tags`` and ``grep`` in their note, config name or id (case
    ignored), hidden ones only if ``every``; and how many of them are hidden."""
    wanted = {tag.removeprefix("#").lower() for tag in tags}
    text = (grep or "").lower()
    chosen = [i for i in infos if wanted <= {tag.lower() for tag in i.tags}
              and text in f"{i.note}\n{i.config_name}\n{i.run_id}".lower()]
    hidden = sum(i.hidden for i in chosen)
    return (chosen if every else [i for i in chosen if not i.hidden]), hidden


def cmd_show(args) -> int:
    import json

    run = store_from_args(args).open_run(args.run)
    info = run.require_readable()
    console.print(labelled(run.id, "bold", f" status: {info.status}" + (f" ({info.problem})" if info.problem else "")))
    for label, value in note_rows(info):
        console.print(labelled(f"{label}:", "bold", value.plain if isinstance(value, Text) else value))
    try:
        console.print_json(json.dumps(run.read_config()))
    except (OSError, ValueError) as exc:
        console.print(Text(f"config unreadable: {exc}", style="red"))
    epochs = run.read_epochs()
    if epochs:
        table = Table(title="epochs")
        for column in ("epoch", "iteration", "loss", "accuracy", "val loss", "val accuracy", "lr", "seconds"):
            table.add_column(column, justify="right")
        for e in epochs:
            table.add_row(str(e.epoch), str(e.iteration), fmt.number(e.loss), fmt.percent(e.accuracy),
                          fmt.number(e.val_loss), fmt.percent(e.val_accuracy), fmt.lr(e.lr), f"{e.duration:.1f}")
        console.print(table)
    if info.result:
        console.print(result_table(info, machine=machine_rows(run), store=run.store))
        if info.result.get("confusion"):
            console.print(confusion_report(info.result))
        elif run.paths.final_model.is_file():
            console.print(Text(f"no confusion matrix yet: `resnet-tui evaluate {run.id}` evaluates its saved model",
                               style="dim"))
    error = run.read_error()
    if error:
        console.print(Text(error, style="red"))
    return 0


def cmd_note(args) -> int:
    """Set a run's note (an empty text clears it); without a text, print it."""
    run = store_from_args(args).open_run(args.run)
    if not args.text:
        note = run.read_notes().note
        console.print(Text(note) if note else Text(f"run {run.id} has no note", style="dim"))
        return 0
    notes = run.update_notes(note=" ".join(args.text))
    console.print(labelled("note:", "green", f"{run.id}: {notes.note}" if notes.note else f"{run.id}: cleared"))
    return 0


def tag_changes(args) -> tuple[list[str], list[str]]:
    """The tags to add (+NAME) and to remove (-NAME), the last word about a name winning. argparse
    hands over every word after the run id (a -NAME is no option): --artifact DIR among them is taken
    here. ValueError says what is wrong."""
    add: list[str] = []
    remove: list[str] = []
    words = iter(args.changes)
    for word in words:
        if word == "--artifact" or word.startswith("--artifact="):
            args.artifact = word.partition("=")[2] or next(words, "")
            if not args.artifact:
                raise ValueError("--artifact needs a folder")
            continue
        if word[:1] not in ("+", "-") or word.startswith("--"):
            raise ValueError(f"{word!r}: give +NAME to add a tag and -NAME to remove one")
        name = word[1:].removeprefix("#")
        problem = tag_problem(name)
        if problem:
            raise ValueError(problem)
        for where in (add, remove):
            if name in where:
                where.remove(name)
        (add if word[0] == "+" else remove).append(name)
    return add, remove


def cmd_tag(args) -> int:
    """Add and remove a run's tags; without changes, print them."""
    try:
        add, remove = tag_changes(args)
    except ValueError as exc:
        err_console.print(labelled("error:", "bold red", str(exc)))
        return 2
    run = store_from_args(args).open_run(args.run)
    before = run.info().tags  # [] when notes.json is damaged: update_notes says what is wrong
    notes = run.update_notes(add=tuple(add), remove=tuple(remove)) if add or remove else run.read_notes()
    for name in remove:
        if name not in before:
            err_console.print(labelled("warning:", "yellow", f"run {run.id} had no tag {name!r}"))
    console.print(labelled("tags:", "green", f"{run.id}: {shown_tags(notes.tags)}" if notes.tags
                           else f"{run.id}: none"))
    return 0


def cmd_hide(args) -> int:
    """Hide a run from `runs` and the Runs screen (never a running one), or show it again."""
    hide = args.command == "hide"
    run = store_from_args(args).open_run(args.run)
    if run.info().hidden == hide:
        console.print(Text(f"run {run.id} is {'already hidden' if hide else 'not hidden'}", style="dim"))
        return 0
    run.update_notes(hidden=hide)
    console.print(labelled("hidden:" if hide else "shown:", "green",
                           f"{run.id} (`resnet-tui runs --all` lists it; `resnet-tui unhide {run.id}` shows it again)"
                           if hide else f"{run.id} is listed again"))
    return 0


def cmd_delete(args) -> int:
    """Remove every folder of a run (never a running one's), after saying which and asking."""
    run = store_from_args(args).open_run(args.run)
    run.refuse_if_running("deleted")
    folders = run.folders()
    console.print(labelled("delete:", "bold", f"run {run.id}: {len(folders)} folder{'s' * (len(folders) != 1)}, "
                                              "with everything in them:"))
    for folder in folders:
        console.print(Text(f"  {folder}"))
    if not args.yes:
        if not sys.stdin.isatty():
            err_console.print(labelled("error:", "bold red", "nothing deleted: give --yes to delete without "
                                                             "being asked (stdin is not a terminal to ask on)"))
            return 2
        try:
            answer = input(f"delete run {run.id}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            console.print("nothing deleted")
            return 1
    try:
        removed = run.delete()
    except OSError as exc:
        why = str(exc) if isinstance(exc, StorageError) else f"cannot delete {exc.filename}: {exc.strerror or exc}"
        err_console.print(labelled("error:", "bold red", why))
        return 1
    console.print(labelled("deleted:", "green", f"run {run.id} ({len(removed)} folder{'s' * (len(removed) != 1)})"))
    return 0


def cmd_evaluate(args) -> int:
    """Evaluate a run's saved final model on its test split; record the figures in its result.json."""
    run = store_from_args(args).open_run(args.run)
    import_keras_quietly()
    from resnet_tui.training.evaluate import EvaluateError, evaluate_run

    try:
        with fd2_to(os.devnull):  # TensorFlow's C++ lines while the model loads and runs (so: log to stdout)
            result = evaluate_run(run, log=lambda text: console.print(Text(text, style="dim")))
    except EvaluateError as exc:
        err_console.print(labelled("error:", "bold red", str(exc)))
        return 2
    info = run.info()
    console.print(labelled(run.id, "bold", f"test loss {fmt.number(result.get('test_loss'))}, "
                                           f"test accuracy {fmt.percent(result.get('test_accuracy'))}; "
                                           f"recorded in {run.paths.result / 'result.json'}"))
    console.print(confusion_report(info.result or result))
    return 0


def cmd_export(args) -> int:
    """Write a run's metrics as TensorBoard event files and/or one merged CSV table."""
    from resnet_tui.report.export import export_csv

    if not args.tensorboard and not args.csv:
        err_console.print(labelled("error:", "bold red", "nothing to export: give --tensorboard DIR, --csv FILE or both"))
        return 2
    run = store_from_args(args).open_run(args.run)
    run.require_readable()  # a damaged run file: one line, exit 2
    try:
        if args.csv:
            to_stdout = args.csv == "-"  # the table on stdout, what was written said on stderr
            rows = export_csv(run, sys.stdout if to_stdout else args.csv)
            (err_console if to_stdout else console).print(
                labelled("csv:", "green", f"{'stdout' if to_stdout else args.csv}: {rows} iterations joined "
                                          "with their epoch's values"))
        if args.tensorboard:
            from resnet_tui.report.export import export_tensorboard

            path = export_tensorboard(run, args.tensorboard)
            console.print(labelled("tensorboard:", "green",
                                   f"{path} (view with: tensorboard --logdir {args.tensorboard})"))
    except OSError as exc:
        err_console.print(labelled("error:", "bold red", f"cannot write {exc.filename or ''}: {exc.strerror or exc}"))
        return 1
    return 0


def cmd_validate(args) -> int:
    config = load_with_overrides(args.config, args.set)
    for warning in config.warnings:
        err_console.print(labelled("warning:", "yellow", warning))
    console.print(labelled("ok:", "green", f"{args.config} is a valid config for model m{config.model_number}"))
    return 0


def cmd_summary(args) -> int:
    config = load_with_overrides(args.config, args.set)
    import_keras_quietly()
    from resnet_tui.models.resnet import dispatch_build_model
    from resnet_tui.models.summary import KERAS_LINE_LENGTH, count_params, model_summary_text

    with fd2_to(os.devnull):  # TensorFlow's C++ lines as the model is built (cuInit without a GPU)
        model = dispatch_build_model(config.model_number, config)
    # On a terminal narrower than Keras' table, the table is drawn at its width (no line folded by
    # the terminal); piped, at Keras' own width, whatever $COLUMNS says.
    width = min(console.width, KERAS_LINE_LENGTH) if console.on_a_terminal() else KERAS_LINE_LENGTH
    console.out(model_summary_text(model, line_length=width), highlight=False)
    console.print(f"parameters: {count_params(model):,}")
    return 0


def cmd_watch(args) -> int:
    """Follow a run another process is writing (e.g. under nohup), read-only."""
    from resnet_tui.events import RunFinished
    from resnet_tui.store.follow import RunFollower

    run = store_from_args(args).open_run(args.run)
    info = run.require_readable()
    if info.problem and info.status == RunStatus.RUNNING:  # another host's: say how to tell it has ended
        err_console.print(Text(f"run {run.id} is {info.problem}", style="yellow"))
    follower = RunFollower(run)
    progress = make_progress()
    sink = ProgressSink(progress)
    finished = None
    with progress:
        try:
            while finished is None:
                for event in follower.poll():
                    sink(event)
                    if isinstance(event, RunFinished):
                        finished = event
                if finished is None:
                    time.sleep(args.interval)
        except KeyboardInterrupt:
            return 130
    if not finished.status.finished:  # interrupted, or corrupt: no result to show
        hint = f" (resume it with `{resume_command(run.id, run.store)}`)" if finished.status == RunStatus.INTERRUPTED else ""
        console.print(Text(f"run {run.id} is {finished.status}: {finished.stop_reason}{hint}", style="yellow"))
        return 1
    info = run.info()
    if info.result:
        console.print(result_table(info, machine=machine_rows(run), store=run.store))
    return 0 if finished.status != RunStatus.FAILED else 1


def cmd_serve(args) -> int:
    """The dashboard in a web browser, behind a token (resnet_tui/serve.py)."""
    from resnet_tui.serve import ServeError, serve

    try:
        serve(host=args.host, port=args.port, artifact=args.artifact, read_only=args.read_only, token=args.token,
              allowed_origins=args.allow_origin, max_sessions=args.max_sessions)
    except ServeError as exc:
        err_console.print(labelled("error:", "bold red", str(exc)))
        return 2
    return 0


ARTIFACT_HELP = ("folder holding the runs (log/, checkpoint/, model/, result/, ...); before or after the "
                 "subcommand (default: the config's paths)")


BACKEND_HELP = ("the Keras backend to train on (default: $KERAS_BACKEND, else tensorflow); before or after "
                "the subcommand")


def with_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=backend.BACKENDS, default=argparse.SUPPRESS, help=BACKEND_HELP)


def with_artifact(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: absent after the subcommand, it leaves a --artifact given before it in place.
    p.add_argument("--artifact", metavar="DIR", default=argparse.SUPPRESS, help=ARTIFACT_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resnet-tui", description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="configs", help="folder of configs the dashboard lists")
    parser.add_argument("--artifact", metavar="DIR", help=ARTIFACT_HELP)
    parser.add_argument("--backend", choices=backend.BACKENDS, help=BACKEND_HELP)
    parser.add_argument("--read-only", action="store_true",
                        help="browse and watch runs only: no training, resuming or saving (also chosen "
                             "when the runs folder is not writable)")
    sub = parser.add_subparsers(dest="command")

    def with_sets(p):
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key; dots for nested keys, e.g. OPTIMIZER.learning_rate=0.05")

    p = sub.add_parser("train", help="train a config headless, with a progress bar")
    p.add_argument("config")
    with_sets(p)
    with_artifact(p)
    with_backend(p)
    several = p.add_argument_group("several processes or machines (JAX, DISTRIBUTE=data_parallel; "
                                   "docs/multi-gpu.md)")
    several.add_argument("--coordinator", metavar="HOST:PORT",
                         help="process 0's address, the same for every process (default: "
                              "$KERAS_DISTRIBUTION_JOB_ADDRESSES, else SLURM's first node)")
    several.add_argument("--processes", type=int, metavar="N",
                         help="how many processes train the run (default: $KERAS_DISTRIBUTION_NUM_PROCESSES, "
                              "else $SLURM_NTASKS)")
    several.add_argument("--process-id", type=int, metavar="I",
                         help="this process's index, 0 to N-1; process 0 writes the run (default: "
                              "$KERAS_DISTRIBUTION_PROCESS_ID, else $SLURM_PROCID)")
    p.set_defaults(func=cmd_train)
    for name, func, help_ in (("runs", cmd_runs, "list past runs"), ("show", cmd_show, "show one run"),
                              ("resume", cmd_resume, "continue a stopped or interrupted run"),
                              ("evaluate", cmd_evaluate, "evaluate a run's saved model on its test split: per-class "
                                                         "accuracy and confusion matrix, recorded in its result"),
                              ("export", cmd_export, "write a run's metrics as TensorBoard event files or one CSV"),
                              ("watch", cmd_watch, "follow a run another process is writing (read-only)")):
        p = sub.add_parser(name, help=help_)
        if name != "runs":
            p.add_argument("run", help="run id (a unique prefix is enough)")
        with_artifact(p)
        with_backend(p)
        if name == "export":
            p.add_argument("--tensorboard", metavar="DIR", help="write event files under DIR/<run id>/")
            p.add_argument("--csv", metavar="FILE", help="write iterations joined with their epoch's values")
        if name == "watch":
            p.add_argument("--interval", type=float, default=0.5, help="seconds between looks at the files")
        if name == "runs":
            p.add_argument("--tag", action="append", default=[], metavar="NAME",
                           help="only runs with this tag (repeat: with every one of them)")
            p.add_argument("--grep", metavar="TEXT", help="only runs whose note, config name or id holds TEXT "
                                                          "(case ignored)")
            p.add_argument("--all", action="store_true", help="hidden runs too (dimmed)")
        p.set_defaults(func=func)
    run_help = "run id (a unique prefix is enough)"
    p = sub.add_parser("note", help="set a run's note; an empty TEXT clears it, none prints it")
    p.add_argument("run", help=run_help)
    p.add_argument("text", nargs="*", help="the note (several words are joined by spaces)")
    with_artifact(p)
    p.set_defaults(func=cmd_note)
    p = sub.add_parser("tag", help="add (+NAME) and remove (-NAME) a run's tags; none prints them")
    p.add_argument("run", help=run_help)
    p.add_argument("changes", nargs=argparse.REMAINDER, metavar="+NAME|-NAME",
                   help="a tag to add or remove: letters, digits and _ . : / = @ + -")
    with_artifact(p)
    p.set_defaults(func=cmd_tag)
    for name, help_ in (("hide", "leave a run out of `runs` and the Runs screen (not a running run)"),
                        ("unhide", "list a hidden run again")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("run", help=run_help)
        with_artifact(p)
        p.set_defaults(func=cmd_hide)
    p = sub.add_parser("delete", help="remove every folder of a run, after listing them (not a running run)")
    p.add_argument("run", help=run_help)
    p.add_argument("--yes", action="store_true", help="do not ask (needed when stdin is not a terminal)")
    with_artifact(p)
    p.set_defaults(func=cmd_delete)
    p = sub.add_parser("serve", help="serve the dashboard to a web browser (textual-serve)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    with_artifact(p)
    with_backend(p)
    p.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS,
                   help="browsers can browse and watch runs, not train")
    p.add_argument("--token", help="the token browsers must present (default: $RESNET_TUI_TOKEN, else random; "
                                   "prefer the variable: a command line is visible to other users)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="also accept WebSockets from pages of this origin, e.g. http://dash.example.org:8000 "
                        "(deliberate cases only); repeatable")
    p.add_argument("--max-sessions", type=int, default=4, metavar="N",
                   help="most dashboard app processes (browser tabs) at once (default: 4)")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("sweep", help="run a sweep file: Optuna trials of a config, pruned by validation accuracy")
    p.add_argument("sweep", help="a sweep file (docs/sweeps.md)")
    p.add_argument("--storage", help="the study's database URL (default: sqlite:///ARTIFACT/sweeps/NAME.db); "
                                     "postgresql://... for several machines")
    p.add_argument("--save-best", metavar="FILE", help="write the best trial's config to FILE at the end")
    with_artifact(p)
    with_backend(p)
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("sweep-worker", help="join a running sweep's study from another process or machine")
    p.add_argument("study", help="the study's name (the sweep file's name)")
    p.add_argument("--storage", required=True, help="the study's database URL, as `sweep` printed it")
    p.add_argument("--save-best", metavar="FILE", help="write the best trial's config to FILE at the end")
    with_artifact(p)
    with_backend(p)
    p.set_defaults(func=cmd_sweep_worker)
    p = sub.add_parser("lr-find", help="the learning-rate range test of a config (no run is recorded)")
    p.add_argument("config")
    with_sets(p)
    p.add_argument("--iterations", type=int, default=200, help="iterations at most (default 200)")
    p.add_argument("--start", type=float, default=1e-5, help="first learning rate (default 1e-5)")
    p.add_argument("--end", type=float, default=10.0, help="last learning rate (default 10)")
    with_backend(p)
    p.set_defaults(func=cmd_lr_find)
    p = sub.add_parser("validate", help="check a config")
    p.add_argument("config")
    with_sets(p)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("summary", help="print the model summary and parameter count")
    p.add_argument("config")
    with_sets(p)
    with_backend(p)
    p.set_defaults(func=cmd_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_tensorflow()
    try:
        backend.choose(args.backend)  # before anything imports Keras
    except backend.BackendError as exc:
        err_console.print(labelled("error:", "bold red", str(exc)))
        return 2
    try:
        if args.command is None:
            from resnet_tui.tui.app import run_app

            return run_app(configs_dir=args.configs, artifact_dir=args.artifact, read_only=args.read_only)
        return args.func(args)
    except (ConfigError, DatasetError, RunNotFoundError, RunBusyError, RunCorruptError, StorageError,
            ResumeError, RunFileError, AlertSettingsError) as exc:
        err_console.print(labelled("error:", "bold red", str(exc)))
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
