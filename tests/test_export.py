"""resnet-tui export: TensorBoard event files read back, and the merged CSV table."""

import csv
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_values
from support import REPO
from tui_support import fake_confusion, write_fake_run

from resnet_tui.cli import main
from resnet_tui.report.export import flatten, merged_columns
from resnet_tui.store.runs import RunStore

RUN = "20250101-120000-m8_demo"


@pytest.fixture
def fake_run(tmp_path):
    """A completed run of 25 iterations in epochs of 10: epoch 3 never ended (its rows have no epoch values)."""
    values = tiny_values(tmp_path)
    store = RunStore.from_values(values)
    write_fake_run(store, RUN, values, status="completed", iterations=25, confusion=fake_confusion(0))
    return store.open_run(RUN), values, str(tmp_path / "artifact")


def read_records(path: Path) -> list[bytes]:
    """A TFRecord file's records, each: uint64 length, uint32 masked CRC-32C of the length, the data,
    uint32 masked CRC-32C of the data (little-endian)."""
    from tensorboardX.record_writer import masked_crc32c

    data, records, at = path.read_bytes(), [], 0
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        record = data[at + 12:at + 12 + length]
        assert struct.unpack_from("<II", data[at + 8:at + 12] + data[at + 12 + length:at + 16 + length]) == (
            masked_crc32c(header), masked_crc32c(record))
        records.append(record)
        at += 16 + length
    return records


def read_events(folder: Path):
    """The event files under ``folder``, and every event in them (tensorboardX's protos: no TensorFlow)."""
    from tensorboardX.proto import event_pb2

    files = sorted(folder.glob("events.out.tfevents.*"))
    return files, [event_pb2.Event.FromString(record) for f in files for record in read_records(f)]


def scalars(events) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]}: what the Scalars tab plots."""
    out: dict[str, list[tuple[int, float]]] = {}
    for event in events:
        for value in event.summary.value:
            if value.WhichOneof("value") == "simple_value":
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_tensorboard_events_hold_the_run_files_values(fake_run, tmp_path, capsys):
    from tensorboardX.proto.types_pb2 import DT_STRING

    run, values, artifact = fake_run
    logdir = tmp_path / "tb"
    assert main(["export", RUN[:10], "--tensorboard", str(logdir), "--artifact", artifact]) == 0
    assert f"view with: tensorboard --logdir {logdir}" in re.sub(r"\s+", " ", capsys.readouterr().out)
    files, events = read_events(logdir / RUN)
    started = run.read_result()["started"]
    assert len(files) == 1 and files[0].name.startswith(f"events.out.tfevents.{int(started)}.")
    assert events[0].file_version == "brain.Event:2" and events[0].wall_time == started
    got = scalars(events)

    iterations, epochs = run.read_iterations(), run.read_epochs()
    for tag in ("loss", "accuracy", "epoch_loss", "epoch_accuracy", "lr", "images_per_sec"):
        series = got[f"iteration/{tag}"]
        assert [step for step, _ in series] == [it.iteration for it in iterations] == list(range(1, 26)), tag
        assert [v for _, v in series] == pytest.approx([getattr(it, tag) for it in iterations], rel=1e-6), tag
    for tag in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "duration"):
        series = got[f"epoch/{tag}"]
        assert [step for step, _ in series] == [e.epoch for e in epochs] == [1, 2], tag
        assert [v for _, v in series] == pytest.approx([getattr(e, tag) for e in epochs], rel=1e-6), tag
    assert got["test/accuracy"] == [(25, pytest.approx(0.55))]
    assert got["test/class_accuracy/cat"] == [(25, pytest.approx(0.69))]
    # Wall times (the Scalars tab's relative and wall axes): the run's start plus each row's elapsed.
    wall = {(v.tag, e.step): e.wall_time for e in events for v in e.summary.value}
    assert [wall["iteration/loss", it.iteration] for it in iterations] == [started + it.elapsed for it in iterations]
    assert [wall["epoch/loss", e.epoch] for e in epochs] == [started + e.elapsed for e in epochs]
    # One event per step holds all of that step's scalars.
    assert sum(1 for e in events if any(v.tag == "iteration/loss" for v in e.summary.value)) == 25
    # The texts: the Text tab's, one markdown document each (a string tensor of no shape), at step 0.
    texts = {v.tag: (e.step, v) for e in events for v in e.summary.value if v.WhichOneof("value") == "tensor"}
    assert sorted(texts) == ["hparams", "result"]
    for step, value in texts.values():
        assert step == 0 and value.metadata.plugin_data.plugin_name == "text"
        assert value.tensor.dtype == DT_STRING and not value.tensor.tensor_shape.dim
    hparams, result = (texts[tag][1].tensor.string_val[0].decode() for tag in ("hparams", "result"))
    # Hyperparameters: the config flattened, one markdown row per key.
    assert "| OPTIMIZER.learning_rate | 0.1 |" in hparams and '| DATASET.source | synthetic |' in hparams
    assert hparams.count("\n| ") == len(flatten(values)) + 1  # the separator row and one per key
    assert "| status | completed |" in result and "| test_accuracy | 0.55 |" in result

    # Exporting again replaces this run's event file rather than adding a second one.
    assert main(["export", RUN, "--tensorboard", str(logdir), "--artifact", artifact]) == 0
    files, again = read_events(logdir / RUN)
    assert len(files) == 1 and scalars(again) == got


def test_export_never_imports_tensorflow(fake_run, tmp_path):
    """Both exports run where TensorFlow is not installed (a JAX-only install): neither imports it."""
    _, _, artifact = fake_run
    script = ("import sys\n"
              "from resnet_tui.report.export import export_csv, export_tensorboard\n"
              "from resnet_tui.store.runs import RunStore\n"
              "run = RunStore.under(sys.argv[1]).open_run(sys.argv[2])\n"
              "export_tensorboard(run, sys.argv[3])\n"
              "export_csv(run, sys.argv[4])\n"
              "print('tensorflow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script, artifact, RUN, str(tmp_path / "tb"), str(tmp_path / "run.csv")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False"
    assert len(read_events(tmp_path / "tb" / RUN)[0]) == 1 and (tmp_path / "run.csv").is_file()


def test_csv_joins_each_iteration_with_its_epochs_end(fake_run, tmp_path, capsys):
    run, _, artifact = fake_run
    path = tmp_path / "out" / "merged.csv"
    assert main(["export", RUN, "--csv", str(path), "--artifact", artifact]) == 0
    assert "25 iterations joined" in capsys.readouterr().out
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == merged_columns()
    assert merged_columns()[:9] == ["iteration", "epoch", "loss", "accuracy", "lr", "images_per_sec", "epoch_loss",
                                    "epoch_accuracy", "elapsed"]
    assert [int(r["iteration"]) for r in rows] == list(range(1, 26))
    epochs = {e.epoch: e for e in run.read_epochs()}
    for row, it in zip(rows, run.read_iterations()):
        assert float(row["loss"]) == pytest.approx(it.loss, rel=1e-6)
        end = epochs.get(it.epoch)
        if end is None:  # epoch 3 never ended
            assert row["epoch_end_val_accuracy"] == row["epoch_end_iteration"] == ""
        else:
            assert int(row["epoch_end_iteration"]) == end.iteration == 10 * it.epoch
            assert float(row["epoch_end_val_accuracy"]) == pytest.approx(end.val_accuracy, rel=1e-6)


def test_export_needs_a_target_and_a_run(fake_run, capsys):
    _, _, artifact = fake_run
    assert main(["export", RUN, "--artifact", artifact]) == 2
    assert "nothing to export: give --tensorboard DIR, --csv FILE or both" in capsys.readouterr().err
    assert main(["export", "nope", "--csv", "x.csv", "--artifact", artifact]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_flatten_gives_dotted_keys():
    assert flatten({"A": 1, "B": {"c": [1, 2], "d": {"e": None}}, "F": {}}) == {
        "A": 1, "B.c": [1, 2], "B.d.e": None, "F": {}}


def test_csv_goes_through_links_and_devices_and_dash_is_stdout(fake_run, tmp_path, capsys):
    """A symlink keeps being a link (its target gets the table), /dev/null is written through, not
    replaced by a file, /dev/full says the disk is full, and `-` is stdout (issue 22, item 15)."""
    import os

    run, _, artifact = fake_run
    target = tmp_path / "real.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    assert main(["export", run.id, "--artifact", artifact, "--csv", str(link)]) == 0
    assert link.is_symlink() and target.read_text().startswith(",".join(merged_columns()))
    capsys.readouterr()

    assert main(["export", run.id, "--artifact", artifact, "--csv", os.devnull]) == 0
    assert not os.path.isfile(os.devnull)  # still the device
    capsys.readouterr()

    if os.path.exists("/dev/full"):
        assert main(["export", run.id, "--artifact", artifact, "--csv", "/dev/full"]) == 1
        assert "No space left on device" in capsys.readouterr().err

    assert main(["export", run.id, "--artifact", artifact, "--csv", "-"]) == 0
    out, err = capsys.readouterr()
    rows = list(csv.reader(out.splitlines()))
    assert rows[0] == list(merged_columns()) and len(rows) == 26 and "stdout: 25 iterations" in err
    assert not (tmp_path / "-").exists() and not os.path.exists("-")
