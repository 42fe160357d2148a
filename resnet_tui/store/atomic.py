"""The one way this project writes a file that others read: whole or not at all.

A reader (the dashboard, another process, a resumed run) sees the old file or the
new one, never half of it; a write that fails (a full disk, a crash, an exception
in ``save``) leaves the old file and no partial one behind.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

PARTIAL_PREFIX = ".partial-"


def partial_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place.

    Hidden (so folder listings skip it), unique per process and thread (two writers
    never share one), and ending in ``path``'s own name (Keras checks the suffix).
    """
    return path.with_name(f"{PARTIAL_PREFIX}{os.getpid()}-{threading.get_ident()}-{path.name}")


def write_atomic(path: Path, save: Callable[[Path], object]) -> None:
    """``save(partial)`` writes the file somewhere else; it is synced, then renamed onto ``path``.
    What ``save`` returns is not used."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    try:
        save(partial)
        with open(partial, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda partial: partial.write_text(text, encoding="utf-8", newline=""))


def write_json_atomic(path: Path, data: Any) -> None:
    """``data`` as indented JSON, one trailing newline."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
