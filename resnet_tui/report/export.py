"""Take a run elsewhere: TensorBoard event files and one merged CSV table.

``resnet-tui export RUN --tensorboard DIR`` writes ``DIR/<run id>/events.out.tfevents.*``:

- ``iteration/<field>`` at step = iteration: loss, accuracy (the batch's), epoch_loss,
  epoch_accuracy (Keras' running means), lr, images_per_sec;
- ``epoch/<field>`` at step = epoch: loss, accuracy, val_loss, val_accuracy, lr, duration;
- ``test/loss``, ``test/accuracy`` and ``test/class_accuracy/<class>`` at the run's last iteration,
  when the run has them;
- the hyperparameters (the config, flattened to dotted keys) and the result as text
  (markdown tables) under ``hparams`` and ``result``, at step 0.

TensorFlow 2.21 no longer installs TensorBoard, and its ``tf.summary.scalar``/``text`` are
TensorBoard's code: without the package they raise. The events are written here from
TensorFlow's own protos (``Event``, ``Summary`` with the scalars and text plugins'
metadata) through ``tf.io.TFRecordWriter``, which is what an event file is; so exporting
needs nothing beyond the default install; viewing needs TensorBoard, installed wherever
it runs (``pip install tensorboard``). TensorBoard's HParams tab needs its own
plugin's protos, which only the tensorboard package has: the hyperparameters are a text
summary instead (the Text tab).

``--csv FILE``: one row per iteration (iterations.csv's columns), joined with the values
of its epoch's end (epochs.csv's columns prefixed ``epoch_end_``; empty for an epoch
that did not finish).
"""

from __future__ import annotations

import csv
import json
import math
import os
import socket
import time
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

class _EventWriter:
    """An event file written with TensorFlow's protos and TFRecordWriter (no TensorBoard needed)."""

    def __init__(self, folder: Path, wall_time: float):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
        from tensorflow.core.util import event_pb2

        self._pb = (summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2, event_pb2)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(wall_time)}.{socket.gethostname()}{EVENT_FILE_SUFFIX}"
        self.path = folder / name
        self._writer = tf.io.TFRecordWriter(str(self.path))
        self._described: set[str] = set()
        self._write(event_pb2.Event(wall_time=wall_time, file_version="brain.Event:2"))

    def _write(self, event) -> None:
        self._writer.write(event.SerializeToString())

    def _metadata(self, tag: str, plugin: str, data_class: int):
        summary_pb2 = self._pb[0]
        if tag in self._described:  # TensorBoard reads a tag's metadata from its first event
            return None
        self._described.add(tag)
        return summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin),
                                           data_class=data_class)

    def scalars(self, values: dict[str, float], step: int, wall_time: float) -> None:
        """As tf.summary.scalar writes each: a float32 scalar tensor under the scalars plugin;
        all of one step in one event (a 64k-iteration run is 64k events, not 384k)."""
        summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2, event_pb2 = self._pb
        summary = summary_pb2.Summary()
        for tag, value in values.items():
            value_pb = summary.value.add(tag=tag)
            value_pb.tensor.dtype = types_pb2.DT_FLOAT
            value_pb.tensor.tensor_shape.SetInParent()
            value_pb.tensor.float_val.append(value)
            metadata = self._metadata(tag, "scalars", summary_pb2.DATA_CLASS_SCALAR)
            if metadata is not None:
                value_pb.metadata.CopyFrom(metadata)
        if summary.value:
            self._write(event_pb2.Event(wall_time=wall_time, step=step, summary=summary))

    def text(self, tag: str, text: str, step: int, wall_time: float) -> None:
        """As tf.summary.text writes it: a string scalar tensor under the text plugin (markdown)."""
        summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2, event_pb2 = self._pb
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=tensor_shape_pb2.TensorShapeProto(),
                                        string_val=[text.encode("utf-8")])
        value_pb = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
        value_pb.metadata.CopyFrom(self._metadata(tag, "text", summary_pb2.DATA_CLASS_TENSOR))
        self._write(event_pb2.Event(wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=[value_pb])))

    def close(self) -> None:
        self._writer.close()


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
    if out.is_dir():
        for old in out.glob(f"events.out.tfevents.*{EVENT_FILE_SUFFIX}"):
            old.unlink()
    writer = _EventWriter(out, started)
    try:
        writer.text("hparams", _markdown_table(sorted(flatten(config).items())), 0, started)
        summary = [(k, v) for k, v in result.items() if k not in ("confusion", "versions", "dataset")
                   and not isinstance(v, dict | list)]
        writer.text("result", _markdown_table(summary), 0, started)
        iteration_tags = [(f"iteration/{tag}", tag) for tag in ITERATION_TAGS]
        for it in iterations:
            writer.scalars({name: getattr(it, tag) for name, tag in iteration_tags}, it.iteration, started + it.elapsed)
        for ep in epochs:
            writer.scalars({f"epoch/{tag}": getattr(ep, tag) for tag in EPOCH_TAGS if getattr(ep, tag) is not None},
                           ep.epoch, started + ep.elapsed)
        test = {f"test/{key}": result[f"test_{key}"] for key in ("loss", "accuracy")
                if isinstance(result.get(f"test_{key}"), int | float) and math.isfinite(result[f"test_{key}"])}
        record = read_record(result)
        if record is not None:
            test.update({f"test/class_accuracy/{name}": accuracy
                         for name, accuracy in zip(record["classes"], record["per_class_accuracy"]) if accuracy is not None})
        last = iterations[-1].iteration if iterations else (result.get("iterations") or 0)
        writer.scalars(test, last, result.get("finished") or started)
    finally:
        writer.close()
    return writer.path

