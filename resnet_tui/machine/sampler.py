"""The machine in view: what a training process and its machine use, about once a second.

The question it answers on a GPU box: is the GPU busy, or is the input pipeline
starving it? Each :class:`MachineSample` holds the process's CPU % (all its
threads) and resident memory, the system's memory, and per GPU its utilization,
memory and temperature. CPU and memory come from psutil; GPUs from NVIDIA's
NVML (the ``pynvml`` module of nvidia-ml-py) when an NVIDIA driver is present.
Without one there are simply no GPUs: no error, no log line. NVML lists every
GPU of the machine, those of other processes too (CUDA_VISIBLE_DEVICES is not
applied: CUDA and NVML may number the GPUs differently).

A sample reads a few /proc files and, per GPU, three NVML queries: well under
a millisecond, taken in the sampler's own thread (``benchmarks/bench_dashboard.py
--only monitor`` measures what it costs training). Nothing here imports
TensorFlow or Textual.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import psutil

from resnet_tui.events import EpochEnd, Event, GpuSample, MachineEpoch, MachineSample, RunStarted, Sink

INTERVAL = 1.0  # seconds between samples

_nvml_lock = threading.Lock()
_nvml_handles: list | None = None  # NVML's device handles; None until NVML has been tried


def _gpu_handles() -> list:
    """The GPUs' NVML handles, NVML initialised on first use; [] without an NVIDIA driver."""
    global _nvml_handles
    with _nvml_lock:
        if _nvml_handles is None:
            _nvml_handles = _init_nvml()
        return _nvml_handles


def _init_nvml() -> list:
    try:
        import pynvml

        pynvml.nvmlInit()
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # no nvidia-ml-py, no libnvidia-ml (no driver), or NVML's NVMLError: no GPUs
        return []


def sample_gpus() -> tuple[GpuSample, ...]:
    """Every NVIDIA GPU's utilization, memory and temperature now; () when NVML cannot say."""
    handles = _gpu_handles()
    if not handles:
        return ()
    import pynvml

    try:
        return tuple(_gpu(pynvml, index, handle) for index, handle in enumerate(handles))
    except pynvml.NVMLError:  # a GPU fell off the bus, the driver was reloaded: no figures this time
        return ()


def _gpu(pynvml, index: int, handle) -> GpuSample:
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    return GpuSample(index, float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu), int(memory.used),
                     int(memory.total), float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)))


class Sampler:
    """Samples one process (this one when ``pid`` is None) and the machine it runs on.

    psutil.NoSuchProcess when ``pid`` does not exist. CPU % is measured between
    two samples, so the first one comes a sampling period after this is made.
    """

    def __init__(self, pid: int | None = None):
        self.process = psutil.Process(pid)
        self._lock = threading.Lock()  # cpu_percent measures from the previous call: one caller at a time
        self.process.cpu_percent(None)

    @classmethod
    def of(cls, pid: int) -> Sampler | None:
        """A sampler of process ``pid``; None when it has ended or cannot be read."""
        try:
            return cls(pid)
        except psutil.Error:
            return None

    @property
    def pid(self) -> int:
        return self.process.pid

    def sample(self) -> MachineSample | None:
        """The process's and the machine's figures now; None once the process has ended or is unreadable."""
        with self._lock:
            try:
                with self.process.oneshot():
                    cpu, rss = self.process.cpu_percent(None), self.process.memory_info().rss
            except psutil.Error:
                return None
        memory = psutil.virtual_memory()
        return MachineSample(time.time(), cpu, rss, memory.total - memory.available, memory.total, sample_gpus())


def epoch_record(epoch: int, samples: Sequence[MachineSample]) -> MachineEpoch:
    """One epoch's samples as machine.csv's row: means; RSS also at its peak; GPUs aggregated
    per sample (mean utilization, summed memory), the temperature at its highest."""
    n = max(len(samples), 1)
    mean = lambda values: sum(values) / n
    with_gpus = [s.gpus for s in samples if s.gpus]
    gpu_means: dict[str, Any] = dict(gpus=0, gpu_utilization=None, gpu_memory_used=None, gpu_memory_total=None,
                                     gpu_temperature=None)
    if with_gpus:
        k = len(with_gpus)
        gpu_means = dict(
            gpus=max(map(len, with_gpus)),
            gpu_utilization=sum(sum(g.utilization for g in gpus) / len(gpus) for gpus in with_gpus) / k,
            gpu_memory_used=sum(sum(g.memory_used for g in gpus) for gpus in with_gpus) / k,
            gpu_memory_total=float(max(sum(g.memory_total for g in gpus) for gpus in with_gpus)),
            gpu_temperature=max(g.temperature for gpus in with_gpus for g in gpus))
    return MachineEpoch(
        epoch=epoch, samples=len(samples), cpu_percent=mean([s.cpu_percent for s in samples]),
        rss=round(mean([s.rss for s in samples])), rss_peak=max((s.rss for s in samples), default=0),
        ram_used=round(mean([s.ram_used for s in samples])), ram_total=max((s.ram_total for s in samples), default=0),
        **gpu_means)


class MachineMonitor:
    """A run's sink with the machine added: samples this process every ``interval`` seconds in a
    daemon thread and sends each MachineSample to ``sink`` (from that thread); passes every event
    on to ``sink`` and, after each EpochEnd, the epoch's MachineEpoch (the samples since the last
    epoch ended, or since RunStarted; one taken then if the epoch was shorter than a period).

    ``stop()`` ends the thread (and is safe to call twice); no sample is sent after it returns.
    """

    def __init__(self, sink: Sink, interval: float = INTERVAL):
        self.sink = sink
        self.interval = interval
        self.sampler = Sampler()
        self._samples: list[MachineSample] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="machine-sampler", daemon=True)

    def start(self) -> MachineMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval):
            sample = self.sampler.sample()
            if sample is not None:
                with self._lock:
                    self._samples.append(sample)
                try:
                    self.sink(sample)
                except Exception:  # a watcher's trouble (already reported by the fanout) must not end the sampling
                    pass

    def __call__(self, event: Event) -> None:
        self.sink(event)
        if type(event) is EpochEnd:  # `type is`: this runs for every iteration's event too
            self.sink(self.end_epoch(event.epoch))
        elif type(event) is RunStarted:  # the data loading and the model build are no epoch's
            with self._lock:
                self._samples.clear()

    def end_epoch(self, epoch: int) -> MachineEpoch:
        with self._lock:
            samples, self._samples = self._samples, []
        if not samples:
            sample = self.sampler.sample()
            samples = [sample] if sample else []
        return epoch_record(epoch, samples)
