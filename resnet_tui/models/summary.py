"""A model's summary as text (Keras' own table, at a width we choose) and its parameter count."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import keras
    from rich.console import JustifyMethod


SUMMARY_COLUMNS: tuple[tuple[str, float, JustifyMethod], ...] = (
    ("Layer (type)", 0.3, "left"), ("Output Shape", 0.56, "left"), ("Param #", 0.74, "right"), ("Connected to", 1.0, "left"))
"""Keras' model.summary() layout for a functional model: header, right edge (fraction of the line), justify."""
KERAS_LINE_LENGTH = 110  # Keras' own default width; narrower, the columns are sized by their words
_TABLE_EDGES = 3 * len(SUMMARY_COLUMNS) + 1  # a border and a space each side of every cell


def model_summary_text(model: keras.Model, line_length: int = KERAS_LINE_LENGTH) -> str:
    """Keras' model.summary() table as plain text, ``line_length`` columns wide.

    Drawn here on a private rich Console of that width: Keras sizes its own
    console from the process-wide COLUMNS, which the training thread and the
    dashboard's summary worker would set at the same time. Reads no environment.
    Narrower than Keras' 110 columns, the columns are sized so that no name is
    cut inside a word (they wrap at spaces); narrower than that allows, the
    table is as narrow as it can be without cutting a word, wider than asked.
    """
    import io

    import rich.console
    import rich.table

    connections = _connections(model)
    rows = [(f"{layer.name} ({layer.__class__.__name__})", _shape_text(layer), _params_text(layer),
             connections.get(layer.name, "-")) for layer in model.layers]
    if line_length >= KERAS_LINE_LENGTH:
        columns, width = _summary_columns(line_length), line_length
    else:
        widths = _narrow_widths(rows, line_length)
        columns = [rich.table.Column(header, justify=justify, width=w)
                   for (header, _, justify), w in zip(SUMMARY_COLUMNS, widths, strict=True)]
        width = sum(widths) + _TABLE_EDGES
    table = rich.table.Table(*columns, width=width, show_lines=True)
    for row in rows:
        table.add_row(*row)
    out = io.StringIO()
    console = rich.console.Console(file=out, width=width + 4, color_system=None, force_terminal=False,
                                   highlight=False, markup=False, emoji=False)
    console.print(f'Model: "{model.name}"')
    console.print(table)
    for line in _param_totals(model):
        console.print(line)
    return out.getvalue().rstrip() + "\n"


def _narrow_widths(rows: list[tuple[str, str, str, str]], line_length: int) -> list[int]:
    """Content widths of the four columns for a table ``line_length`` wide: each column its
    longest word (header included), so no word is cut; the room left goes to the columns that
    need least to show every cell on one line, fewest first; what is still left, to the widest.
    The sum exceeds ``line_length`` only where the longest words alone do."""
    cells = [(header, *(row[k] for row in rows)) for k, (header, _, _) in enumerate(SUMMARY_COLUMNS)]
    widths = [max(len(word) for text in column for word in text.split()) for column in cells]
    longest = [max(len(text) for text in column) for column in cells]
    room = line_length - _TABLE_EDGES - sum(widths)
    for k in sorted(range(len(widths)), key=lambda j: longest[j] - widths[j]):
        more = max(0, min(room, longest[k] - widths[k]))
        widths[k] += more
        room -= more
    if room > 0:
        widths[max(range(len(widths)), key=lambda j: longest[j])] += room
    return widths


def _summary_columns(line_length: int) -> list:
    import rich.table

    columns, left = [], 0
    for header, right, justify in SUMMARY_COLUMNS:
        width = int(right * line_length) - left
        columns.append(rich.table.Column(header, justify=justify, width=width))
        left += width
    return columns


def _connections(model: keras.Model) -> dict[str, str]:
    """Layer name -> the tensors it reads, as Keras prints them (``name[node][tensor]``), from get_config."""
    try:
        layers = model.get_config().get("layers", [])
    except NotImplementedError:  # a subclassed model has no graph to show
        return {}
    return {layer["name"]: ", ".join(_tensor_names(layer.get("inbound_nodes", []))) or "-" for layer in layers}


def _tensor_names(item) -> list[str]:
    if isinstance(item, dict) and item.get("class_name") == "__keras_tensor__":
        name, node, tensor = item["config"]["keras_history"]
        return [f"{name}[{node}][{tensor}]"]
    children = item.values() if isinstance(item, dict) else item if isinstance(item, (list, tuple)) else ()
    return [name for child in children for name in _tensor_names(child)]


def _shape_text(layer) -> str:
    try:
        outputs = layer.output
    except (AttributeError, ValueError):  # not called, or called more than once
        return "?"
    shapes = [f"({', '.join(map(str, tensor.shape))})" for tensor in _flat(outputs)]
    return shapes[0] if len(shapes) == 1 else f"[{', '.join(shapes)}]"


def _flat(outputs) -> list:
    return [t for item in outputs for t in _flat(item)] if isinstance(outputs, (list, tuple)) else [outputs]


def _params_text(layer) -> str:
    return f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"


def _param_totals(model: keras.Model) -> list[str]:
    groups = [("Total", model.weights), ("Trainable", model.trainable_weights),
              ("Non-trainable", model.non_trainable_weights)]
    optimizer = getattr(model, "optimizer", None)
    if getattr(model, "compiled", False) and optimizer is not None and optimizer.built:
        groups[0] = ("Total", model.weights + optimizer.variables)
        groups.append(("Optimizer", optimizer.variables))
    return [f" {label} params: {_count(weights):,} ({_readable_bytes(_bytes(weights))})" for label, weights in groups]


def _unique(weights) -> list:
    return list({id(w): w for w in weights}.values())


def _count(weights) -> int:
    return sum(math.prod(w.shape) for w in _unique(weights))


def _bytes(weights) -> float:
    """Bytes the weights take: elements times their dtype's bits (the number in its name) over 8."""
    return sum(math.prod(w.shape) * _dtype_bits(w.dtype) / 8 for w in _unique(weights))


def _dtype_bits(dtype) -> int:
    bits = re.search(r"\d+", str(dtype))
    return int(bits.group()) if bits else 8


def _readable_bytes(size: float) -> str:
    units = ["B", "KB", "MB", "GB", "TB"]
    while size >= 1024 and len(units) > 1:
        size /= 1024
        units.pop(0)
    return f"{size:.2f} {units[0]}"


def count_params(model: keras.Model) -> int:
    return int(model.count_params())
