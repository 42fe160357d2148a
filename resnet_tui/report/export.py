"""Take a run elsewhere: TensorBoard event files and one merged CSV table.

``resnet-tui export RUN --tensorboard DIR`` writes ``DIR/<run id>/events.out.tfevents.*``:

- ``iteration/<field>`` at step = iteration: loss, accuracy (the batch's), epoch_loss,
  epoch_accuracy (Keras' running means), lr, images_per_sec;
- ``epoch/<field>`` at step = epoch: loss, accuracy, val_loss, val_accuracy, lr, duration;
- ``test/loss``, ``test/accuracy`` and ``test/class_accuracy/<class>`` at the run's last iteration,
  when the run has them;
- the hyperparameters (the config, flattened to dotted keys) and the result as text
  (markdown tables) under ``hparams`` and ``result``, at step 0.

The event file is written with tensorboardX: TensorBoard's ``Event`` protos, one TFRecord
each, through its ``RecordWriter``. No TensorFlow, so exporting works on any Keras backend and
where TensorFlow is not installed; viewing needs TensorBoard, installed wherever it runs
(``pip install tensorboard``). Not its ``SummaryWriter``: that writes from a thread of its
own, which dies on a failed write (a full disk) and leaves the export hanging, where
``RecordWriter`` raises here; its ``add_scalar`` writes an event per value (here one per
step: a 64k-iteration run is 64k events, not 384k) and ``add_text`` files a text under
``<tag>/text_summary``. The hyperparameters are a text summary (the Text tab), not the
HParams tab's, which tensorboardX writes as a second run of its own.

``--csv FILE``: one row per iteration (iterations.csv's columns), joined with the values
of its epoch's end (epochs.csv's columns prefixed ``epoch_end_``; empty for an epoch
that did not finish).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from resnet_tui.events import EpochEnd, IterationEnd
from resnet_tui.store.atomic import write_atomic
from resnet_tui.store.records import columns, format_cell
from resnet_tui.store.runs import Run
from resnet_tui.training.confusion import read_record

ITERATION_TAGS = ("loss", "accuracy", "epoch_loss", "epoch_accuracy", "lr", "images_per_sec")
EPOCH_TAGS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "duration")
EVENT_FILE_SUFFIX = ".resnet-tui"  # marks the event files this module wrote (and may replace)
EPOCH_PREFIX = "epoch_end_"


def flatten(values: dict, prefix: str = "") -> dict[str, object]:
    """{"OPTIMIZER": {"learning_rate": 0.1}} -> {"OPTIMIZER.learning_rate": 0.1}."""
    flat: dict[str, object] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# -- CSV -----------------------------------------------------------------------------------------

def merged_columns() -> list[str]:
    return [*columns(IterationEnd), *(EPOCH_PREFIX + c for c in columns(EpochEnd) if c != "epoch")]


def merged_rows(iterations: list[IterationEnd], epochs: list[EpochEnd]) -> list[list[str]]:
    """Each iteration's cells, then its epoch's end cells (empty when that epoch never ended)."""
    by_epoch = {e.epoch: e for e in epochs}
    epoch_columns = [c for c in columns(EpochEnd) if c != "epoch"]
    rows = []
    for it in iterations:
        end = by_epoch.get(it.epoch)
        rows.append([format_cell(getattr(it, c)) for c in columns(IterationEnd)]
                    + [format_cell(getattr(end, c)) if end is not None else "" for c in epoch_columns])
    return rows


def export_csv(run: Run, destination: str | os.PathLike[str] | TextIO) -> int:
    """Write the merged table to ``destination``; returns the number of rows.

    A regular file (or a new one) is replaced atomically; a symlink's target is, the link kept;
    anything else (a stream, /dev/null, a FIFO, a device) is written through, never replaced.
    """
    rows = merged_rows(run.read_iterations(), run.read_epochs())

    def write(fh: TextIO) -> None:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(merged_columns())
        writer.writerows(rows)
        fh.flush()

    if not isinstance(destination, (str, os.PathLike)):
        write(destination)
        return len(rows)
    path = Path(destination).resolve()  # through any symlink to the file it names
    if path.exists() and not path.is_file():
        with open(path, "w", encoding="utf-8", newline="") as fh:
            write(fh)
    else:
        def save(partial: Path) -> None:
            with open(partial, "w", encoding="utf-8", newline="") as fh:
                write(fh)

        write_atomic(path, save)
    return len(rows)


# -- TensorBoard ----------------------------------------------------------------------------------

def _write_event_file(path: Path, started: float, texts: dict[str, str],
                      steps: Iterable[tuple[int, float, dict[str, float]]]) -> None:
    """The file's header, each text at step 0, then each (step, wall time, scalars) as one event."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboardX.proto.tensor_pb2 import TensorProto
    from tensorboardX.record_writer import RecordWriter

    text_plugin = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
    writer = RecordWriter(str(path.absolute()))  # absolute: a relative "gs:..." or "s3:..." would name a bucket
    try:
        def write(**event) -> None:
            writer.write(Event(**event).SerializeToString())

        write(wall_time=started, file_version="brain.Event:2")
        for tag, text in texts.items():
            # A string tensor of no shape: the Text tab renders it as one markdown document.
            tensor = TensorProto(dtype="DT_STRING", string_val=[text.encode("utf-8")])
            write(wall_time=started, step=0, summary=Summary(value=[Summary.Value(tag=tag, metadata=text_plugin, tensor=tensor)]))
        for step, wall_time, scalars in steps:
            if scalars:  # simple_value: what the Scalars tab reads with no plugin metadata
                write(wall_time=wall_time, step=step,
                      summary=Summary(value=[Summary.Value(tag=tag, simple_value=value) for tag, value in scalars.items()]))
    finally:
        writer.close()


def _markdown_table(pairs: list[tuple[str, object]]) -> str:
    def cell(value) -> str:
        text = value if isinstance(value, str) else json.dumps(value)
        return text.replace("|", "\\|").replace("\n", " ")

    return "\n".join(["| key | value |", "| --- | --- |", *(f"| {cell(k)} | {cell(v)} |" for k, v in pairs)])


def export_tensorboard(run: Run, folder: str | os.PathLike) -> Path:
    """Write the run's event file under ``folder/<run id>/``; returns its path.

    Event files an earlier export of this run wrote there are replaced (TensorBoard would
    show both); any other file is left alone.
    """
    out = Path(folder) / run.id
    iterations, epochs = run.read_iterations(), run.read_epochs()
    result = run.read_result() or {}
    try:
        config = run.read_config()
    except (OSError, ValueError):
        config = {}
    started = result.get("started") or (run.read_meta() or {}).get("started") or time.time()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"events.out.tfevents.*{EVENT_FILE_SUFFIX}"):
        old.unlink()
    summary = [(k, v) for k, v in result.items() if k not in ("confusion", "versions", "dataset")
               and not isinstance(v, dict | list)]
    texts = {"hparams": _markdown_table(sorted(flatten(config).items())), "result": _markdown_table(summary)}
    test = {f"test/{key}": result[f"test_{key}"] for key in ("loss", "accuracy")
            if isinstance(result.get(f"test_{key}"), int | float) and math.isfinite(result[f"test_{key}"])}
    record = read_record(result)
    if record is not None:
        test.update({f"test/class_accuracy/{name}": accuracy
                     for name, accuracy in zip(record["classes"], record["per_class_accuracy"]) if accuracy is not None})
    last = iterations[-1].iteration if iterations else (result.get("iterations") or 0)
    # Each step's scalars: (step, wall time, {tag: value}).
    iteration_steps = ((it.iteration, started + it.elapsed, {f"iteration/{tag}": getattr(it, tag) for tag in ITERATION_TAGS})
                       for it in iterations)
    epoch_steps = ((ep.epoch, started + ep.elapsed,
                    {f"epoch/{tag}": getattr(ep, tag) for tag in EPOCH_TAGS if getattr(ep, tag) is not None})
                   for ep in epochs)
    test_step = (last, result.get("finished") or started, test)
    path = out / f"events.out.tfevents.{int(started)}.{socket.gethostname()}{EVENT_FILE_SUFFIX}"
    _write_event_file(path, started, texts, itertools.chain(iteration_steps, epoch_steps, [test_step]))
    return path
