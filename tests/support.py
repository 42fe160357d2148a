"""What many test modules share: the repository root, an event collector, waiting for a condition,
the CLI as a separate process (as a shell runs it), and a small disk. (The dashboard's own
helpers are in tui_support.py; fixtures are in conftest.py.)"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


class Collect(list):
    """A sink that keeps every event; ``of(cls)`` picks one kind."""

    def __call__(self, event: Any) -> None:
        self.append(event)

    def of(self, cls: type[T]) -> list[T]:
        return [e for e in self if isinstance(e, cls)]


def wait_until(predicate: Callable[[], T], timeout: float = 180.0, proc: subprocess.Popen | None = None,
               what: str = "condition") -> T:
    """``predicate()``'s first true value, polled every 50 ms; fails if ``proc`` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended early with code {proc.returncode} (waiting for {what})")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def write_config(folder: Path, name: str, values: dict[str, Any]) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


CLI_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def cli_train_process(config: Path, stdout: Any = subprocess.DEVNULL, stderr: Any = subprocess.DEVNULL,
                      **popen: Any) -> subprocess.Popen:
    """``resnet-tui train CONFIG`` in its own process, as a shell or nohup starts it."""
    return subprocess.Popen([sys.executable, "-m", "resnet_tui.cli", "train", str(config)], cwd=REPO, env=CLI_ENV,
                            stdout=stdout, stderr=stderr, text=True, **popen)


def cli_train(config: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``resnet-tui train CONFIG`` to its end, output captured."""
    return subprocess.run([sys.executable, "-m", "resnet_tui.cli", "train", str(config)], cwd=REPO, env=CLI_ENV,
                          capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def small_disk(folder: Path, size_kb: int, leave_kb: int | None = None) -> Iterator[Path]:
    """A tmpfs of ``size_kb`` at ``folder`` (filled to ``leave_kb`` free); skips where mounting is not allowed."""
    folder.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip() or mounted.returncode})")
    try:
        if leave_kb is not None:
            (folder / "filler").write_bytes(b"x" * (shutil.disk_usage(folder).free - leave_kb * 1024))
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _postgres_bin(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, or where Debian's packages put it."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server of its own (initdb, pg_ctl) on a Unix socket; its SQLAlchemy URL.
    Skips with the reason where there is no server to start. As root it runs as nobody (PostgreSQL
    refuses root). The socket folder is short, under /tmp: a socket path is limited to ~107 bytes."""
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server programs (initdb, pg_ctl): .ci/run installs Debian's postgresql")
    pytest.importorskip("psycopg2", reason="psycopg2 (the postgres extra) is not installed")
    as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    top = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))
    data, sock = top / "data", top / "s"
    data.mkdir()
    sock.mkdir()
    top.chmod(0o755)
    if as_user:
        shutil.chown(data, "nobody")
        shutil.chown(sock, "nobody")
    port = "55432"
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "sweeps"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(sock / "log"), "-w", "start", "-o",
                        f"-k {sock} -c listen_addresses='' -p {port}"], check=True, capture_output=True, timeout=120)
        yield f"postgresql+psycopg2://sweeps@/postgres?host={sock}&port={port}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(top, ignore_errors=True)
