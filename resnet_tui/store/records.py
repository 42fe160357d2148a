"""One definition of a run's metric records: events to CSV rows and back.

The columns of ``iterations.csv``, ``epochs.csv`` and ``machine.csv`` are the
fields of :class:`IterationEnd`, :class:`EpochEnd` and :class:`MachineEpoch`,
in order (``dataclasses.fields``).
The recorder writes rows with :func:`to_row`; everything that reads them (the
run store, the follower of another process's run, the dashboard's history and
resume's replay) gets events back from :func:`from_row`, matched by column
name, so a reordered or added field cannot shift values silently.

Cells: ``None`` is an empty cell; a float is written with 7 significant
digits, NaN and infinities as ``nan``/``inf`` (a diverged loss is a value, not
a gap). Reading, an empty cell is ``None`` for an optional field (``val_loss``
of an epoch without validation) and NaN for a required float.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import fields
from typing import Any, TypeVar

from resnet_tui.events import EpochEnd, IterationEnd, MachineEpoch

Record = TypeVar("Record", IterationEnd, EpochEnd, MachineEpoch)
RECORD_TYPES = (IterationEnd, EpochEnd, MachineEpoch)


def columns(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _kinds(cls: type) -> dict[str, str]:
    """Field name -> "int", "float" or "optional" (a float that may be None)."""
    kinds = {}
    for f in fields(cls):
        annotation = str(f.type)  # strings under `from __future__ import annotations`
        kinds[f.name] = "optional" if "None" in annotation else ("int" if annotation == "int" else "float")
    return kinds


_KINDS = {cls: _kinds(cls) for cls in RECORD_TYPES}


def format_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.7g}"
    return str(value)


def parse_cell(text: str, kind: str) -> int | float | None:
    """One cell's value; raises ValueError for a cell that is not a number."""
    text = text.strip()
    if not text:
        if kind == "int":
            raise ValueError("an empty count")
        return None if kind == "optional" else math.nan
    value = float(text)  # 1e400 is inf, a valid loss but no count
    if kind == "int":
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"{text[:20]!r} is not a count")
        return int(value)
    return value


def to_row(event: Record) -> list[str]:
    return [format_cell(getattr(event, name)) for name in columns(type(event))]


def header_problem(cls: type, header: list[str]) -> str | None:
    """Why ``header`` cannot head a CSV of ``cls`` records (None when it can): an older file may
    lack later columns, but every column must be known and the first must be the count."""
    known = columns(cls)
    unknown = [name for name in header if name not in known]
    if unknown or not header or header[0] != known[0]:
        return f"its header is damaged ({','.join(header)[:80]!r}; expected {','.join(known)[:80]!r}...)"
    return None


def parse_rows(cls: type[Record], header: list[str], lines: Iterable[str]) -> list[Record]:
    """The records of ``lines`` under ``header``; damaged rows are skipped (a torn last line, junk)."""
    records = []
    for line in lines:
        try:
            records.append(from_row(cls, header, line.rstrip("\r\n").split(",")))
        except ValueError:
            continue
    return records


def from_row(cls: type[Record], header: list[str], cells: list[str]) -> Record:
    """The event a CSV row holds; ValueError for a torn or damaged row."""
    if len(cells) != len(header):
        raise ValueError(f"{len(cells)} cells under {len(header)} columns")
    by_name = dict(zip(header, cells))
    kinds = _KINDS[cls]
    # Each value has its field's type: _KINDS read it from the field's annotation.
    values: dict[str, Any] = {name: parse_cell(by_name.get(name, ""), kind) for name, kind in kinds.items()}
    return cls(**values)
