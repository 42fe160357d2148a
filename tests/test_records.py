"""The one codec between events and the run's CSV rows (resnet_tui/store/records.py)."""

import dataclasses
import math

import pytest

from resnet_tui.events import EpochEnd, IterationEnd
from resnet_tui.store.layout import CSV_FILES
from resnet_tui.store.records import RECORD_TYPES, columns, from_row, to_row
from resnet_tui.store.runs import RunStore


def same(a, b) -> bool:
    """Equal field by field, NaN equal to NaN."""
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if not (x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))):
            return False
    return type(a) is type(b)


EVENTS = [
    IterationEnd(1, 1, 2.302585, 0.125, 0.1, 812.5, 2.302585, 0.125, 0.16),
    IterationEnd(64000, 182, float("nan"), 0.0, 0.001, 0.0, float("inf"), 0.5, 36000.25),  # diverged
    EpochEnd(1, 352, 1.5, 0.45, 1.25, 0.5234, 0.1, 120.5, 120.5),
    EpochEnd(2, 704, 1.25, 0.55, None, None, 0.1, 118.0, 238.5),  # no validation split
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: f"{type(e).__name__}-{e.iteration}")
def test_every_event_type_round_trips_through_a_row(event):
    cls = type(event)
    row = to_row(event)
    assert len(row) == len(columns(cls))
    assert same(from_row(cls, list(columns(cls)), row), event)


def test_columns_are_the_event_fields_and_rows_are_read_by_name():
    assert columns(IterationEnd) == tuple(f.name for f in dataclasses.fields(IterationEnd))
    assert set(CSV_FILES) == set(RECORD_TYPES)
    event = EVENTS[2]
    header = list(reversed(columns(EpochEnd)))  # a file written with another column order
    assert same(from_row(EpochEnd, header, list(reversed(to_row(event)))), event)


def test_empty_cells_mean_none_for_optional_fields_and_nan_for_required_ones():
    header = list(columns(EpochEnd))
    cells = ["3", "9", "", "0.5", "", "", "0.1", "1", "2"]
    epoch = from_row(EpochEnd, header, cells)
    assert epoch.val_loss is None and epoch.val_accuracy is None and math.isnan(epoch.loss)
    assert (epoch.epoch, epoch.iteration) == (3, 9) and isinstance(epoch.epoch, int)
    assert to_row(epoch)[4:6] == ["", ""] and to_row(epoch)[2] == "nan"


@pytest.mark.parametrize("cells", [["1", "1", "0.5"], ["", "1", "1", "1", "1", "1", "1", "1", "1"],
                                   ["x", "1", "1", "1", "1", "1", "1", "1", "1"]])
def test_damaged_rows_are_refused(cells):
    with pytest.raises(ValueError):
        from_row(IterationEnd, list(columns(IterationEnd)), cells)


def test_the_store_writes_and_reads_events(tmp_path):
    run = RunStore.under(tmp_path).create_run("m8_codec")
    for event in EVENTS:
        (run.append_iteration if isinstance(event, IterationEnd) else run.append_epoch)(event)
    run.close()
    with open(run.paths.log / "iterations.csv", "a", encoding="utf-8") as fh:
        fh.write("3,1,0.5")  # a torn last line, as a kill mid-write leaves it
    assert all(map(same, run.read_iterations() + run.read_epochs(), EVENTS))
    assert len(run.read_iterations()) == 2
