"""File descriptor 2, pointed elsewhere for a while.

TensorFlow's C++ code writes straight to fd 2, past Python's ``sys.stderr`` and
past ``TF_CPP_MIN_LOG_LEVEL`` (its import included): on a dashboard those lines
would scribble over the screen, at the CLI they are start-up noise. The CLI
sends them to /dev/null while importing, the trainer to the run's train.log,
the dashboard to its own log.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def fd2_to(path: str | os.PathLike) -> Iterator[int | None]:
    """Point fd 2 at ``path`` (appended to) while the block runs.

    Yields a duplicate of the previous fd 2 (valid inside the block: e.g. the
    terminal, for a UI that must keep drawing on it), or None when this
    process has no real fd 2 (some test runners), in which case nothing moves.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield None
        return
    try:
        with open(path, "a", encoding="utf-8") as target:
            os.dup2(target.fileno(), 2)
            try:
                yield saved
            finally:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)
