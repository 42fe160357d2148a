"""One line on the Training screen: what the training process and its machine use right now.

``JAX · CPU 187% · RSS 1.21 GB · RAM 9.1/23.5 GB · GPU0 97% 10.2/80.0 GB 64°C``: the
process's CPU (100% is one core) and resident memory, the system's memory in
use, and per NVIDIA GPU its utilization, memory and temperature (machine/sampler.py).
A narrower line shortens the units, then drops RAM and RSS, then each GPU's
temperature and memory: the GPUs' utilization against the CPU is the line's point.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from resnet_tui import backend
from resnet_tui.events import GpuSample, MachineEpoch, MachineSample
from resnet_tui.report import format as fmt
from resnet_tui.tui.session import TrainingSession

SEPARATOR = " · "
WAITING = "CPU, memory and GPUs: sampled about once a second while a run trains"
ENDED = "CPU — · the run has ended"


def _gpu(gpu: GpuSample, compact: bool) -> str:
    if compact:
        memory = f"{fmt.gigabytes(gpu.memory_used)}/{fmt.gigabytes(gpu.memory_total, 0)}G"
    else:
        memory = f"{fmt.gigabytes(gpu.memory_used)}/{fmt.gigabytes(gpu.memory_total)} GB"
    return f"GPU{gpu.index} {gpu.utilization:.0f}% {memory} {gpu.temperature:.0f}°C"


def _variants(sample: MachineSample):
    """The line at each level of detail, most first."""
    cpu = f"CPU {sample.cpu_percent:.0f}%"
    for compact in (False, True):
        unit = "G" if compact else " GB"
        rss = f"RSS {fmt.gigabytes(sample.rss, 1 if compact else 2)}{unit}"
        ram = f"RAM {fmt.gigabytes(sample.ram_used)}/{fmt.gigabytes(sample.ram_total)}{unit}"
        gpus = [_gpu(gpu, compact) for gpu in sample.gpus]
        yield SEPARATOR.join([cpu, rss, ram, *gpus])
    yield SEPARATOR.join([cpu, rss, *gpus])
    yield SEPARATOR.join([cpu, *gpus])
    if sample.gpus:  # several GPUs: their utilization and memory used, then their utilization alone
        yield SEPARATOR.join([cpu, *(f"GPU{g.index} {g.utilization:.0f}% {fmt.gigabytes(g.memory_used)}G"
                                     for g in sample.gpus)])
        yield SEPARATOR.join([cpu, "GPU " + " ".join(f"{g.utilization:.0f}%" for g in sample.gpus)])


def machine_line(sample: MachineSample, width: int) -> str:
    """The most detailed variant that fits ``width`` columns (the last one, cut by the widget, when none does)."""
    line = ""
    for line in _variants(sample):
        if len(line) <= width:
            break
    return line


def means_line(epochs: list[MachineEpoch]) -> str:
    """A run's machine over its epochs (machine.csv's rows): mean CPU, RSS and GPU utilization, peak RSS."""
    n = sum(e.samples for e in epochs) or 1
    mean = lambda values: sum(v * e.samples for v, e in zip(values, epochs, strict=True)) / n
    parts = [f"CPU {mean([e.cpu_percent for e in epochs]):.0f}%",
             f"RSS {fmt.gigabytes(mean([e.rss for e in epochs]), 2)} GB "
             f"(peak {fmt.gigabytes(max(e.rss_peak for e in epochs), 2)})"]
    gpus = [e for e in epochs if e.gpu_utilization is not None]
    if gpus:
        parts.append(f"GPU {sum(e.gpu_utilization or 0.0 for e in gpus) / len(gpus):.0f}%")
    return "run means: " + SEPARATOR.join(parts)


def machine_text(session: TrainingSession | None, width: int) -> Text:
    if session is None:
        return Text("")
    if not session.active:  # no process any more: its last CPU % would be stale, its means are not
        if session.machine_epochs:
            return Text(means_line(session.machine_epochs), style="dim")
        return Text(ENDED if session.machine is not None else "", style="dim")
    # Which backend trains it leads the line: "JAX · CPU 187% · ...". Before its RunStarted (data,
    # model, compile: sampled already) a run trained here is on this process's backend.
    name = session.started.backend if session.started else (None if session.follower else backend.current())
    label = f"{backend.LABELS.get(name, name)}{SEPARATOR}" if name else ""
    if session.machine is None:
        return Text(label + WAITING, style="dim")
    return Text(label + machine_line(session.machine, width - len(label)))


class MachinePanel(Static):
    """``update_from`` redraws the line from a session's latest MachineSample."""

    DEFAULT_CSS = """
    MachinePanel {
        height: 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def update_from(self, session: TrainingSession | None) -> None:
        # A fixed-height line: no layout pass, which would repaint the whole screen.
        self.update(machine_text(session, self.size.width or self.app.size.width), layout=False)  # 0 before layout
