"""The run store: everything a run leaves on disk, by run id.

Where each file is: store/layout.py. Readers never trust a run to be whole: a run killed mid-write is listed with
what could be read and a status that says so. Every JSON file is read through
json_files.read_json (JSON_FILES below): a damaged one makes the run ``corrupt``
with the file's name and what is wrong in it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import psutil

from resnet_tui import backend
from resnet_tui.events import EpochEnd, IterationEnd, MachineEpoch, RunStatus
from resnet_tui.store.atomic import PARTIAL_PREFIX, write_json_atomic, write_text_atomic
from resnet_tui.store.json_files import LockOwner, RunFileError, RunMeta, RunNotes, RunPlan, RunResult, build, read_json
from resnet_tui.store.layout import (
    CONFIG_FILE,
    LOCK_FILE,
    META_FILE,
    NOTES_FILE,
    PLAN_FILE,
    RESULT_FILE,
    ROOT_KEYS,
    STATE_FILE,
    RunPaths,
)
from resnet_tui.store.notes import tag_problem
from resnet_tui.store.records import Record, columns, header_problem, parse_rows, to_row
from resnet_tui.store.state import TrainingState

FINISHED_STATUSES = tuple(s for s in RunStatus if s.finished)

# Each JSON file of a run: (the RunPaths folder it is in, its name, the dataclass it must match; None: any object).
JSON_FILES = {
    "meta": ("log", META_FILE, RunMeta),
    "lock": ("log", LOCK_FILE, LockOwner),
    "plan": ("log", PLAN_FILE, RunPlan),
    "config": ("config", CONFIG_FILE, None),
    "state": ("checkpoint", STATE_FILE, TrainingState),
    "result": ("result", RESULT_FILE, RunResult),
    "notes": ("log", NOTES_FILE, RunNotes),
}
# The user's files: a damaged one is a problem the listing names, never a corrupt run (the run's
# own files are whole: it shows, resumes and exports as before).
USER_FILES = ("notes",)


class RunNotFoundError(LookupError):
    pass


class RunBusyError(RuntimeError):
    """Another live process owns the run."""


class RunCorruptError(RuntimeError):
    """A run with a damaged file; ``str()`` names each file and what is wrong, for the user."""


class ResumeError(RuntimeError):
    """A run that cannot be resumed; ``str()`` says why, for the user."""


class StorageError(OSError):
    """The artifact folders cannot be written; ``str()`` says which and why."""

    @classmethod
    def writing(cls, folder: Path, key: str, exc: OSError | str) -> StorageError:
        """'cannot write to FOLDER (KEY): why', the one wording of every failed write."""
        why = exc if isinstance(exc, str) else exc.strerror or str(exc)
        return cls(f"cannot write to {folder} ({key}): {why}")


def _process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch); None when there is no such process."""
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:  # alive, but its details are hidden from us
        return -1.0


def _lock_alive(lock: dict[str, Any]) -> bool:
    """Whether this host's lock ``lock`` is held by the process that wrote it."""
    started = _process_started(lock["pid"])
    if started is None:
        return False
    recorded = lock.get("process_started")
    # Within a second: create_time is computed from boot time and clock ticks, not stored.
    return recorded is None or started < 0 or abs(started - recorded) < 1.0


def read_records(path: Path, cls: type[Record]) -> list[Record]:
    """The events a metrics CSV holds (see store/records.py); a torn last line (crash mid-write) is skipped.

    Damaged rows (junk, a number that is not one, a byte that is not UTF-8) are skipped too;
    a damaged header makes the file unreadable: RunFileError names it.
    """
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            header_line = fh.readline()
            if not header_line:
                return []
            header = header_line.rstrip("\r\n").split(",")
            problem = header_problem(cls, header)
            if problem:
                raise RunFileError(path, problem)
            return parse_rows(cls, header, fh)
    except FileNotFoundError:
        return []


@dataclass
class RunInfo:
    """One line of the runs table; built from whatever of the run is readable."""

    run_id: str
    config_name: str = "?"
    status: RunStatus = RunStatus.CORRUPT
    started: float | None = None
    epochs: int = 0
    iterations: int = 0
    best_val_accuracy: float | None = None
    test_accuracy: float | None = None
    duration: float | None = None
    problem: str = ""  # why the run is corrupt or interrupted, in words
    damaged: list[Path] = field(default_factory=list)  # the files that make it corrupt
    writer: dict[str, Any] | None = None  # the lock ({"pid", "host"}) of the process writing a running run
    result: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # notes.json's: the user's words about the run
    tags: list[str] = field(default_factory=list)
    hidden: bool = False  # left out of listings unless asked for

    def add_result(self, result: dict[str, Any]) -> None:
        """Take what a finished run's result.json says over what its files suggested."""
        self.result = result
        self.status = RunStatus(result["status"])
        self.config_name = result.get("config_name", self.config_name)
        self.epochs = result.get("epochs", self.epochs)
        self.iterations = result.get("iterations", self.iterations)
        self.best_val_accuracy = result.get("best_val_accuracy", self.best_val_accuracy)
        self.test_accuracy = result.get("test_accuracy")
        self.duration = result.get("duration")
        self.started = result.get("started", self.started)
        if self.status == RunStatus.FAILED:
            lines = (result.get("error") or "").strip().splitlines()
            self.problem = lines[-1] if lines else ""


class Run:
    """One run's files. Writing methods are used by the trainer's process only."""

    def __init__(self, store: RunStore, run_id: str):
        self.store = store
        self.id = run_id
        self.paths = RunPaths(**{name: Path(root) / run_id for name, root in store.roots.items()})
        self._files: dict[type, TextIO] = {}  # record type -> its CSV, open for appending
        self._last_flush = 0.0

    # -- writing ---------------------------------------------------------
    def write_meta(self, config_name: str, resumed: bool = False, sweep: dict[str, Any] | None = None) -> None:
        meta: dict[str, Any] = {"run_id": self.id, "config_name": config_name, "pid": os.getpid(),
                                "host": socket.gethostname(), "started": time.time(), "backend": backend.current()}
        if sweep:
            meta["sweep"] = sweep
        path = self.file_path("meta")
        if resumed:  # a resumed trial stays its sweep's
            try:
                old = self.read_meta() or {}
                meta["started"] = old.get("started", meta["started"])
                if old.get("sweep"):
                    meta["sweep"] = old["sweep"]
            except RunFileError:
                pass
        write_json_atomic(path, meta)

    def write_config(self, values: dict[str, Any]) -> None:
        write_json_atomic(self.paths.config_file, values)

    def write_summary(self, text: str) -> None:
        self.paths.log.mkdir(parents=True, exist_ok=True)
        self.paths.summary_file.write_text(text, encoding="utf-8")

    def _open_csv(self, cls: type) -> TextIO:
        path = self.paths.csv_file(cls)
        new = not path.exists() or path.stat().st_size == 0
        fh = open(path, "a", encoding="utf-8", newline="")
        if new:
            fh.write(",".join(columns(cls)) + "\n")
        return fh

    def _append(self, event: Record) -> None:
        fh = self._files.get(type(event))
        if fh is None:
            fh = self._files[type(event)] = self._open_csv(type(event))
        fh.write(",".join(to_row(event)) + "\n")

    def append_iteration(self, event: IterationEnd) -> None:
        """Append one row to iterations.csv; flushed at least every second."""
        self._append(event)
        now = time.monotonic()
        if now - self._last_flush > 1.0:
            self._files[IterationEnd].flush()
            self._last_flush = now

    def append_epoch(self, event: EpochEnd) -> None:
        self._append(event)
        self.flush()

    def append_machine(self, event: MachineEpoch) -> None:
        self._append(event)
        self.flush()

    def flush(self) -> None:
        for fh in self._files.values():
            fh.flush()
            os.fsync(fh.fileno())
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()
        for fh in self._files.values():
            fh.close()
        self._files.clear()

    def log(self, text: str) -> None:
        self.paths.log.mkdir(parents=True, exist_ok=True)
        with open(self.paths.train_log, "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")

    def write_result(self, result: dict[str, Any]) -> None:
        write_json_atomic(self.paths.result_file, result)

    def write_error(self, text: str) -> None:
        self.paths.error.mkdir(parents=True, exist_ok=True)
        self.paths.error_log.write_text(text, encoding="utf-8")

    # -- reading ---------------------------------------------------------
    def config_name(self) -> str:
        """The name of the config this run trained (run.json's; the result's when that is unreadable)."""
        try:
            name = (self.read_meta() or {}).get("config_name")
        except RunFileError:
            name = None
        return name or self.info().config_name

    def file_path(self, what: str) -> Path:
        """Where one of JSON_FILES is."""
        folder, name, _ = JSON_FILES[what]
        root: Path = getattr(self.paths, folder)
        return root / name

    def read_file(self, what: str) -> dict[str, Any] | None:
        """One of JSON_FILES, checked: None when absent, RunFileError when damaged."""
        return read_json(self.file_path(what), JSON_FILES[what][2])

    def read_config(self) -> dict[str, Any]:
        config = self.read_file("config")
        if config is None:
            raise RunFileError(self.file_path("config"), "is missing")
        return config

    def read_result(self) -> dict[str, Any] | None:
        return self.read_file("result")

    def read_meta(self) -> dict[str, Any] | None:
        return self.read_file("meta")

    def read_plan(self) -> dict[str, Any] | None:
        return self.read_file("plan")

    def read_summary(self) -> str:
        try:
            return self.paths.summary_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    def read_error(self) -> str:
        try:
            return self.paths.error_log.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    def read_iterations(self) -> list[IterationEnd]:
        return read_records(self.paths.csv_file(IterationEnd), IterationEnd)

    def read_epochs(self) -> list[EpochEnd]:
        return read_records(self.paths.csv_file(EpochEnd), EpochEnd)

    def read_machine(self) -> list[MachineEpoch]:
        """machine.csv's rows; none for a run older than it."""
        return read_records(self.paths.csv_file(MachineEpoch), MachineEpoch)

    # -- ownership: one live process writes a run ---------------------------
    @property
    def _lock_path(self) -> Path:
        return self.file_path("lock")

    def lock_holder(self) -> dict[str, Any] | None:
        """The lock of the live process writing this run ({"pid", "host"}), or None. Another
        host's is taken as live: it cannot be checked from here. RunFileError for a damaged lock."""
        return self._live(self.read_file("lock"))

    def lock_owner(self) -> int | None:
        """The pid of the live process writing this run, or None (also for a damaged lock)."""
        try:
            holder = self.lock_holder()
        except RunFileError:
            return None
        return holder["pid"] if holder else None

    def _live(self, lock: dict[str, Any] | None) -> dict[str, Any] | None:
        """The lock if its process may still be running (another host's cannot be checked)."""
        if lock is None or lock["host"] == socket.gethostname() and not _lock_alive(lock):
            return None
        return lock

    def _writer(self, holder: dict[str, Any]) -> str:
        """The lock's process, and its host when it is not this one."""
        local = holder["host"] == socket.gethostname()
        return f"process {holder['pid']}" + ("" if local else f" on host {holder['host']}")

    def _stale_hint(self) -> str:
        """How to clear another host's lock, which cannot be checked from here, once it is stale."""
        return f"if nothing runs it there any more, remove {self._lock_path}"

    def _busy(self, holder: dict[str, Any]) -> str:
        """Why a run whose lock ``holder`` holds cannot be claimed."""
        if holder["host"] == socket.gethostname():
            return f"run {self.id} is still running ({self._writer(holder)}); it cannot be resumed twice"
        return (f"run {self.id} is being written by {self._writer(holder)} and cannot be resumed twice; "
                f"{self._stale_hint()}")

    def acquire_lock(self) -> None:
        """Claim the run for this process (O_EXCL, so two claimants cannot both win)."""
        self.paths.log.mkdir(parents=True, exist_ok=True)
        owner = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "process_started": _process_started(os.getpid())})
        for _ in range(2):
            try:
                fd = os.open(self._lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    holder = self.lock_holder()
                except RunFileError as exc:  # being written by another claimant, or damaged
                    raise RunBusyError(f"run {self.id}: {exc} ({self._lock_path})") from None
                if holder is not None and holder["pid"] != os.getpid():
                    raise RunBusyError(self._busy(holder)) from None
                try:
                    os.remove(self._lock_path)  # stale: its owner died
                except FileNotFoundError:
                    pass
                except OSError as exc:  # e.g. an immutable folder (chattr +i)
                    raise StorageError.writing(self.paths.log, "LOG_PATH", exc) from None
                continue
            except OSError as exc:  # the run's folder cannot be written though its root could
                raise StorageError.writing(self.paths.log, "LOG_PATH", exc) from None
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(owner)
            self._remove_leftovers()
            return
        raise RunBusyError(f"run {self.id}: could not claim its lock file {self._lock_path}")

    def _remove_leftovers(self) -> None:
        """Half-written files of a writer that was killed (only the lock's holder writes here)."""
        for folder in asdict(self.paths).values():
            for partial in Path(folder).glob(f"{PARTIAL_PREFIX}*") if Path(folder).is_dir() else ():
                partial.unlink(missing_ok=True)

    def release_lock(self) -> None:
        try:
            os.remove(self._lock_path)
        except FileNotFoundError:
            pass

    # -- the user's notes, tags, hiding and deleting ------------------------------
    def read_notes(self) -> RunNotes:
        """notes.json (empty notes when there is none); RunCorruptError, saying what is wrong and
        where, when it is damaged."""
        try:
            return build(RunNotes, self.read_file("notes") or {})
        except RunFileError as exc:
            raise RunCorruptError(f"run {self.id}: {exc}; fix or remove {self.file_path('notes')} "
                                  "(it holds only the note, tags and hidden flag)") from None

    def update_notes(self, *, note: str | None = None, tags: list[str] | None = None,
                     add: tuple[str, ...] = (), remove: tuple[str, ...] = (),
                     hidden: bool | None = None) -> RunNotes:
        """Change notes.json (written whole, atomically) and return it: ``note`` replaces the note,
        ``tags`` the tags; ``add`` and ``remove`` change them; ``hidden`` hides or shows the run.

        A running run's notes change freely (the trainer never writes notes.json); hiding one is
        refused (RunBusyError). A damaged notes.json is left alone: RunCorruptError says where."""
        for name in (*(tags or ()), *add):
            problem = tag_problem(name)
            if problem:
                raise ValueError(problem)
        if hidden:
            self.refuse_if_running("hidden")
        notes = self.read_notes()
        if note is not None:
            notes.note = note.strip()
        if tags is not None:
            notes.tags = []
        for name in (*(tags or ()), *add):
            if name not in notes.tags:
                notes.tags.append(name)
        notes.tags = [t for t in notes.tags if t not in remove]
        if hidden is not None:
            notes.hidden = hidden
        write_json_atomic(self.file_path("notes"), asdict(notes))
        return notes

    def refuse_if_running(self, done: str) -> None:
        """RunBusyError when a live process writes this run: it cannot be ``done`` (hidden, deleted)."""
        info = self.info()
        if info.status == RunStatus.RUNNING and info.writer is not None:
            stale = "" if info.writer["host"] == socket.gethostname() else f" ({self._stale_hint()})"
            raise RunBusyError(f"run {self.id} is running ({self._writer(info.writer)}): it cannot be {done} "
                               f"while it runs; stop it first{stale}")

    def folders(self) -> list[Path]:
        """The run's folders that exist, one per root (CONFIG_PATH, LOG_PATH, ...): what delete removes."""
        folders = {Path(folder).resolve(): Path(folder) for folder in asdict(self.paths).values()}
        return [folder for folder in folders.values() if folder.is_dir()]  # two roots may be one folder

    def delete(self) -> list[Path]:
        """Remove every folder of this run and nothing else; return them. Refused (RunBusyError)
        while a live process writes it. The run's lock is held meanwhile, so nothing resumes it
        halfway, and its log folder, which holds the lock, goes last."""
        self.refuse_if_running("deleted")
        self.acquire_lock()  # a resume that started since: RunBusyError
        folders = self.folders()
        for folder in sorted(folders, key=lambda f: f == self.paths.log):
            shutil.rmtree(folder)
        return folders

    def require_readable(self) -> RunInfo:
        """The run's info; RunCorruptError, naming each damaged file and what is wrong, for a corrupt run."""
        info = self.info()
        if info.status == RunStatus.CORRUPT:
            where = f" ({', '.join(map(str, info.damaged))})" if info.damaged else ""
            raise RunCorruptError(f"run {self.id} is corrupt: {info.problem}{where}")
        return info

    def resume_problem(self) -> str | None:
        """Why this run cannot be resumed, or None when it can."""
        try:
            info = self.require_readable()
        except RunCorruptError as exc:
            return str(exc)
        if info.status == RunStatus.RUNNING:
            assert info.writer is not None  # info() sets a running run's writer
            return self._busy(info.writer)
        if info.status == RunStatus.COMPLETED:
            return f"run {self.id} already completed ({info.result.get('stop_reason', '')})"
        try:
            state = TrainingState.read(self.paths.checkpoint)
        except RunFileError as exc:
            return f"run {self.id} is corrupt: {exc}"
        if state is None and info.status == RunStatus.FAILED:
            return f"run {self.id} failed before its first epoch ended: nothing to resume; start its config again"
        if state is not None and not (self.paths.checkpoint / state.weights).is_file():
            return f"run {self.id}: its saved weights file {self.paths.checkpoint / state.weights} is missing"
        if self.read_file("config") is None:
            return f"run {self.id}: its config.json is missing ({self.file_path('config')})"
        trained_on = (self.read_meta() or {}).get("backend", "tensorflow")
        if trained_on != backend.current():
            # Its optimizer state would load, but the input order and augmentation of the epochs
            # still to come are drawn by each backend's own pipeline: the run would not be the same run.
            return (f"run {self.id} was trained on the {trained_on} backend and this process runs on "
                    f"{backend.current()}: resume it with --backend {trained_on}")
        return None

    def begin_resume(self, epoch: int, iteration: int) -> None:
        """Cut the metrics back to the saved state, so that the resumed run
        appends after its last complete epoch with no duplicate and no gap,
        and set the previous result aside."""
        self.close()
        _keep_up_to(self.paths.csv_file(IterationEnd), IterationEnd, iteration)
        _keep_up_to(self.paths.csv_file(EpochEnd), EpochEnd, epoch)  # both start with the epoch
        _keep_up_to(self.paths.csv_file(MachineEpoch), MachineEpoch, epoch)
        result = self.paths.result_file
        if result.exists():
            os.replace(result, result.with_name("result.previous.json"))

    def info(self) -> RunInfo:
        """What the runs table shows; never raises for a damaged run."""
        info = RunInfo(self.id)
        files, damaged = self._read_json_files()
        meta, result = files.get("meta"), files.get("result")
        holder = self._live(files.get("lock"))
        if meta:
            info.config_name, info.started = meta.get("config_name", "?"), meta.get("started")
        self._add_epochs(info)
        if holder is not None:  # a resumed run's old result no longer says where it is
            info.status, info.writer = RunStatus.RUNNING, holder
            if holder["host"] != socket.gethostname():
                info.problem = f"written by {self._writer(holder)}; {self._stale_hint()}"
        elif result is not None:
            info.add_result(result)
        elif meta is not None:
            info.status, info.problem = RunStatus.INTERRUPTED, "its process ended without writing a result"
        else:
            info.status, info.problem = RunStatus.CORRUPT, "no run.json"
        if damaged:
            info.status, info.problem = RunStatus.CORRUPT, "; ".join(map(str, damaged))
            info.damaged = [error.path for error in damaged]
        if not info.iterations and info.status == RunStatus.RUNNING:
            rows = self.read_iterations()
            info.iterations = rows[-1].iteration if rows else 0
        try:
            notes = build(RunNotes, self.read_file("notes") or {})
            info.note, info.tags, info.hidden = notes.note, notes.tags, notes.hidden
        except RunFileError as exc:  # said beside the status, which it does not change
            info.problem = "; ".join(p for p in (info.problem, str(exc)) if p)
        return info

    def _read_json_files(self) -> tuple[dict[str, dict[str, Any] | None], list[RunFileError]]:
        """Every one of JSON_FILES that is readable, and what is wrong with the others."""
        files: dict[str, dict[str, Any] | None] = {}
        damaged: list[RunFileError] = []
        for what in JSON_FILES:
            if what in USER_FILES:
                continue
            try:
                files[what] = self.read_file(what)
            except RunFileError as exc:
                damaged.append(exc)
        return files, damaged

    def _add_epochs(self, info: RunInfo) -> None:
        epochs = self.read_epochs()
        if epochs:
            info.epochs, info.iterations = epochs[-1].epoch, epochs[-1].iteration
            vals = [e.val_accuracy for e in epochs if e.val_accuracy is not None]
            info.best_val_accuracy = max(vals) if vals else None

def _keep_up_to(path: Path, cls: type[Record], last: int) -> None:
    """Rewrite a metrics CSV to hold exactly its records 1..``last`` (by their first column), in
    order, once each: rows after the saved state, duplicates and damaged rows go. Atomic."""
    if not path.exists():
        return
    kept: list[Record] = []
    for record in read_records(path, cls):
        number = getattr(record, columns(cls)[0])
        if (kept[-1:] and number <= getattr(kept[-1], columns(cls)[0])) or number > last:
            continue
        kept.append(record)
    lines = [columns(cls), *(to_row(record) for record in kept)]
    write_text_atomic(path, "".join(",".join(row) + "\n" for row in lines))


class RunStore:
    """The runs under a set of path keys (a config's, or the defaults)."""

    ROOT_KEYS = ROOT_KEYS

    def __init__(self, roots: dict[str, str | os.PathLike[str]]):
        self.roots = {name: Path(path) for name, path in roots.items()}

    def path_values(self) -> dict[str, str]:
        """The config keys (LOG_PATH, ...) that put a run's folders in this store: a run records
        where its files really are, whatever its config file said."""
        return {key: str(self.roots[name]) for name, key in self.ROOT_KEYS.items()}

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> RunStore:
        return cls({name: values[key] for name, key in cls.ROOT_KEYS.items()})

    @classmethod
    def under(cls, artifact: str | os.PathLike[str]) -> RunStore:
        """The default layout below one folder (``artifact/log``, ...)."""
        artifact = Path(artifact)
        return cls({name: artifact / name for name in cls.ROOT_KEYS})

    def probe_writable(self) -> None:
        """Fail before training, with a clear message, if any run folder root
        cannot be written (read-only mount, no space, permissions)."""
        for name, root in self.roots.items():
            try:
                root.mkdir(parents=True, exist_ok=True)
                for old in root.glob(".write-probe-*"):  # left by a process killed while probing
                    pid = old.name.removeprefix(".write-probe-")
                    if pid.isdigit() and _process_started(int(pid)) is None:
                        old.unlink(missing_ok=True)
                probe = root / f".write-probe-{os.getpid()}"
                with open(probe, "wb") as fh:
                    fh.write(b"x" * 4096)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.remove(probe)
            except OSError as exc:
                error = StorageError.writing(root, self.ROOT_KEYS[name], exc)
                raise StorageError(f"{error}; nothing was started") from None

    def create_run(self, config_name: str) -> Run:
        """Claim a new unique run id (timestamp + config name), its lock held by this process.

        The folder is made under a hidden name, its lock written, and only then
        renamed into view: a reader (the runs table, a follower) never meets a run
        without its writer, which it would list as corrupt. The hidden name is
        made with mkdir, which fails if it exists, so two processes starting in
        the same second still get distinct ids.
        """
        root = self.roots["log"]
        root.mkdir(parents=True, exist_ok=True)
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{config_name}"
        for n in range(1, 1000):
            run_id = stem if n == 1 else f"{stem}-{n}"
            staging = root / f"{PARTIAL_PREFIX}{run_id}"
            try:
                staging.mkdir()
            except FileExistsError:
                continue
            if run_id in self.run_ids():
                staging.rmdir()
                continue
            Run(self, staging.name).acquire_lock()
            os.rename(staging, root / run_id)
            return Run(self, run_id)
        raise RuntimeError(f"could not find a free run id for {stem}")

    def run_ids(self) -> list[str]:
        ids: set[str] = set()
        for name in ("log", "result", "config"):
            root = self.roots[name]
            if root.is_dir():
                ids.update(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        return sorted(ids)

    def open_run(self, run_id: str) -> Run:
        run_id = run_id.strip().rstrip("/")
        if not run_id or "/" in run_id:  # '' or '/' would be a prefix of every id
            raise RunNotFoundError(f"{run_id or 'an empty run id'!r} is not a run id (see `resnet-tui runs`)")
        if run_id in self.run_ids():
            return Run(self, run_id)
        # Accept a unique prefix, as git does for commits.
        matches = [rid for rid in self.run_ids() if rid.startswith(run_id)]
        if len(matches) == 1:
            return Run(self, matches[0])
        if matches:
            more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
            raise RunNotFoundError(f"run id '{run_id}' is ambiguous: {len(matches)} runs start with it: "
                                   f"{', '.join(matches[:5])}{more}; give more of the id")
        raise RunNotFoundError(f"no run '{run_id}' under {self.roots['log']} (see `resnet-tui runs`)")

    def list_runs(self) -> list[RunInfo]:
        """Every run, newest first; damaged ones are listed, never raised."""
        infos = []
        for run_id in self.run_ids():
            try:
                infos.append(Run(self, run_id).info())
            except Exception as exc:  # a listing must survive any one bad run
                infos.append(RunInfo(run_id, problem=f"unreadable: {exc}"))
        return sorted(infos, key=lambda i: (i.started or 0, i.run_id), reverse=True)
