"""One run trained by several processes, on one machine or several: DISTRIBUTE=data_parallel on JAX.

Every process runs the same trainer on the same config and data; together they
are one ``keras.distribution.DataParallel`` over all their devices, and each
step is one XLA program whose gradient all-reduce crosses the processes.

- :func:`join` comes first, before anything else touches JAX: CPU collectives
  over gloo (JAX's CPU backend has none across processes otherwise), then
  ``keras.distribution.initialize`` (``jax.distributed.initialize``). What the
  command line leaves out comes from Keras' ``KERAS_DISTRIBUTION_*`` variables,
  else from JAX's own cluster detection: under SLURM the process count
  (``SLURM_NTASKS``), the id (``SLURM_PROCID``) and the coordinator (the first
  node of ``SLURM_STEP_NODELIST``, its port derived from ``SLURM_JOB_ID``);
  Open MPI's and Kubernetes' variables likewise.
- Each process feeds only its shard of every global batch (host_pipeline's
  ``shard``; the distribution's ``auto_shard_dataset`` is off, which Keras
  demands of anything but a tf.data pipeline), drawn as one process would draw
  the whole batch: the processes train on exactly the one-process batches.
- Process 0 writes the run; every other one trains into a private temporary
  run store (:func:`private_store`) that is deleted when it ends. They all save,
  checkpoint and evaluate alike, so every process runs the same collectives in
  the same order; only the files differ.
- :class:`SharedControl`: a stop (Ctrl-C, a signal) or pause of any process
  reaches all of them at the same step.
- A process that dies: the others' next collective fails at once (gloo: the
  connection closes), and :func:`failure_words` names the processes that no
  longer answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from resnet_tui import backend
from resnet_tui.config import Config
from resnet_tui.store.runs import RunStore
from resnet_tui.training.callbacks import TrainingControl

KERAS_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                   "KERAS_DISTRIBUTION_PROCESS_ID")
ANSWER_WAIT = 10.0  # seconds a failed process waits for the others to say they are alive
PAUSE_POLL = 0.2  # seconds between the processes' exchanges while a run is paused
_WORDS = 512  # bytes for a stop's cause and reason, as JSON


class ProcessesError(ValueError):
    """Several processes asked for where they cannot work; ``str()`` is one message for a user."""


@dataclass(frozen=True)
class Cluster:
    """This process's place: ``index`` of ``count`` processes (0 writes the run)."""

    index: int = 0
    count: int = 1

    def __str__(self) -> str:
        return f"process {self.index} of {self.count}"


def wanted(coordinator: str | None, count: int | None, index: int | None) -> bool:
    """Whether this process is one of several: given on the command line or in Keras' variables."""
    return (coordinator is not None or count is not None or index is not None
            or any(name in os.environ for name in KERAS_VARIABLES))


def join(config: Config, coordinator: str | None = None, count: int | None = None,
         index: int | None = None) -> Cluster:
    """Join the run's other processes (blocks until all have joined, at most 5 minutes); call it
    before anything else touches JAX. ProcessesError if ``config`` cannot train on several."""
    if backend.current() != "jax":
        raise ProcessesError(f"several processes train on the JAX backend only (this process runs on "
                             f"{backend.current()}): use --backend jax")
    if (config.get("DISTRIBUTE") or "none") != "data_parallel":
        raise ProcessesError("several processes train one run with DISTRIBUTE=data_parallel only: "
                             "add --set DISTRIBUTE=data_parallel")
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        keras.distribution.initialize(coordinator, count, index)
    except (ValueError, TypeError) as exc:
        raise ProcessesError(f"cannot join the other processes: {exc} (give --coordinator HOST:PORT, "
                             f"--processes N and --process-id I, or start the processes with srun)") from exc
    return current()


def current() -> Cluster:
    """This process's place (one of one unless :func:`join` ran)."""
    if backend.current() != "jax":
        return Cluster()
    import jax

    if not jax.distributed.is_initialized():
        return Cluster()
    return Cluster(jax.process_index(), jax.process_count())


@contextlib.contextmanager
def private_store(cluster: Cluster) -> Iterator[RunStore]:
    """Where a process other than 0 writes its copy of the run: a temporary folder, deleted after."""
    folder = tempfile.mkdtemp(prefix=f"resnet-tui-process{cluster.index}-")
    try:
        yield RunStore.under(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def leave(code: int, failed: bool) -> int:
    """End a process of several. After a failure it leaves at once, once it has joined the others:
    JAX's exit waits for every process at a shutdown barrier, and with one dead or elsewhere it
    waits for the heartbeat timeout (100 s) and then aborts (exit 134)."""
    if failed and current().count > 1:
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


# -- stop and pause ------------------------------------------------------------------------------

class SharedControl(keras.callbacks.Callback):
    """Makes every process stop, or pause, at the same step as any one of them; just before
    UserControl, which reads ``shared`` instead of the trainer's control (``local``).

    At each step's end, and at each epoch's start and end, every process offers its own
    control's state (stop asked, paused, the stop's cause and reason) and an all-gather gives
    them all the same view: a stop asked by any (the first in process order) becomes ``shared``'s
    stop on all, so UserControl ends every process at the same step. A stop asked in between
    waits for the next exchange, so a process's decision never runs ahead of the others'. While
    any process is paused they all wait, exchanging again every PAUSE_POLL seconds (collectives
    then never wait long), until it resumes or a stop comes.
    """

    def __init__(self, local: TrainingControl):
        super().__init__()
        self.local = local
        self.shared = TrainingControl()

    def on_train_begin(self, logs=None):
        # Where the trainer's stop() says the run ends: where UserControl (on shared) will.
        self.local.next_stop = lambda: self.shared.next_stop() if self.shared.next_stop else None

    def on_epoch_begin(self, epoch, logs=None):
        self._agree()

    def on_train_batch_end(self, batch, logs=None):
        self._agree()

    def on_epoch_end(self, epoch, logs=None):
        self._agree()

    def _agree(self) -> None:
        from jax.experimental import multihost_utils

        while True:
            everyone = multihost_utils.process_allgather(_offer(self.local))
            stopping = np.flatnonzero(everyone[:, 0])
            if len(stopping) and not self.shared.stop_requested:
                self.shared.stop(*_words(everyone[stopping[0], 2:]))
            if self.shared.stop_requested or not everyone[:, 1].any():
                return
            if self.local.paused:
                self.local.wait_while_paused(PAUSE_POLL)
            else:
                time.sleep(PAUSE_POLL)


def _offer(control: TrainingControl) -> np.ndarray:
    """[stop asked, paused, the stop's cause and reason as JSON bytes] as int32."""
    cause, reason = ((control.cause, control.reason) if control.stop_requested else (None, None))
    words = json.dumps([None if text is None else text[:60] for text in (cause, reason)]).encode()
    row = np.zeros(2 + _WORDS, np.int32)
    row[0], row[1] = control.stop_requested, control.paused
    row[2:2 + len(words)] = np.frombuffer(words, np.uint8)
    return row


def _words(row: np.ndarray) -> tuple[str | None, str | None]:
    cause, reason = json.loads(bytes(row.astype(np.uint8)).rstrip(b"\0").decode())
    return cause, reason


# -- a process that dies -------------------------------------------------------------------------

# How a collective fails when a peer has gone: gloo's "Connection closed by peer" (CPU), NCCL's
# errors (GPU), the coordination service's UNAVAILABLE.
_PEER_TROUBLE = ("gloo", "nccl", "connection closed", "connection reset", "unavailable", "deadline_exceeded")


def failure_words(exc: BaseException) -> str:
    """``exc`` in words, led by which processes stopped answering when it is a failed collective
    of several processes (each survivor says it is alive, then waits up to ANSWER_WAIT seconds
    for the others' word). A process that dies takes the run down on every other; the
    coordinator (process 0) dying ends the others at once, by JAX itself (exit 134)."""
    words = f"{exc.__class__.__name__}: {exc}"
    cluster = current()
    if cluster.count == 1 or not any(mark in words.lower() for mark in _PEER_TROUBLE):
        return words
    silent = _silent_processes(cluster)
    if not silent:
        return words
    names = ", ".join(str(index) for index in silent)
    which = f"process {names} of {cluster.count}" if len(silent) == 1 else f"processes {names} of {cluster.count}"
    return (f"{which} stopped answering (ended, killed or cut off) and the run cannot go on without it; "
            f"{cluster} saw: {words}")


def _silent_processes(cluster: Cluster) -> list[int] | None:
    """The processes that did not say they are alive within ANSWER_WAIT seconds (None: unknown)."""
    from jax._src import distributed  # the coordination service's client: no public handle in JAX 0.10

    client = getattr(distributed.global_state, "client", None)
    if client is None:
        return None
    prefix = "resnet_tui/alive/"
    try:
        client.key_value_set(f"{prefix}{cluster.index}", "1")
        deadline = time.monotonic() + ANSWER_WAIT
        while True:
            alive = {int(key.rsplit("/", 1)[1]) for key, _ in client.key_value_dir_get(prefix)}
            if len(alive) == cluster.count or time.monotonic() > deadline:
                return [index for index in range(cluster.count) if index not in alive]
            time.sleep(0.1)
    except Exception:  # the coordination service itself is gone (process 0 ended)
        return None


# -- predictions -----------------------------------------------------------------------------------

def predict(model: keras.Model, dataset: Any) -> np.ndarray:
    """``model.predict(dataset)``, every process getting every prediction. With several processes
    the step's output is a batch split across them, which no process can read whole (Keras' own
    predict fails converting it): the outputs are made replicated inside the step."""
    if current().count == 1:
        return model.predict(dataset, verbose=0)
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = keras.distribution.distribution().device_mesh.backend_mesh
    everywhere = NamedSharding(mesh, PartitionSpec())
    own_step = model.predict_step

    def replicated_step(state, data):
        outputs, state = own_step(state, data)
        return jax.lax.with_sharding_constraint(outputs, everywhere), state

    model.predict_step, model.predict_function = replicated_step, None
    try:
        return model.predict(dataset, verbose=0)
    finally:
        model.predict_step, model.predict_function = own_step, None
