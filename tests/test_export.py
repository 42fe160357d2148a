"""resnet-tui export: TensorBoard event files read back, and the merged CSV table."""

import csv
import re

import pytest
from conftest import tiny_values
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


def read_events(folder):
    """Every event of the event files under ``folder``, parsed with TensorFlow's own protos."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    files = sorted(folder.glob("events.out.tfevents.*"))
    return files, [event_pb2.Event.FromString(record.numpy()) for f in files
                   for record in tf.data.TFRecordDataset(str(f))]


def scalars(events) -> dict[str, list[tuple[int, float]]]:
    import tensorflow as tf

    out: dict[str, list[tuple[int, float]]] = {}
    for event in events:
        for value in event.summary.value:
            if value.tensor.dtype == tf.float32.as_datatype_enum:
                out.setdefault(value.tag, []).append((event.step, value.tensor.float_val[0]))
    return out


def test_tensorboard_events_hold_the_run_files_values(fake_run, tmp_path, capsys):
    run, values, artifact = fake_run
    logdir = tmp_path / "tb"
    assert main(["export", RUN[:10], "--tensorboard", str(logdir), "--artifact", artifact]) == 0
    assert f"view with: tensorboard --logdir {logdir}" in re.sub(r"\s+", " ", capsys.readouterr().out)
    files, events = read_events(logdir / RUN)
    assert len(files) == 1 and events[0].file_version == "brain.Event:2"
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
    # The first event of each tag says which TensorBoard plugin shows it.
    first = {}
    for event in events:
        for value in event.summary.value:
            first.setdefault(value.tag, value.metadata.plugin_data.plugin_name)
    assert first["iteration/loss"] == first["epoch/val_accuracy"] == "scalars"
    assert first["hparams"] == first["result"] == "text"
    # Hyperparameters: the config flattened, one markdown row per key.
    hparams = next(v.tensor.string_val[0].decode() for e in events for v in e.summary.value if v.tag == "hparams")
    assert "| OPTIMIZER.learning_rate | 0.1 |" in hparams and '| DATASET.source | synthetic |' in hparams
    assert hparams.count("\n| ") == len(flatten(values)) + 1  # the separator row and one per key

    # Exporting again replaces this run's event file rather than adding a second one.
    assert main(["export", RUN, "--tensorboard", str(logdir), "--artifact", artifact]) == 0
    files, again = read_events(logdir / RUN)
    assert len(files) == 1 and scalars(again) == got


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
