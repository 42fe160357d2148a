"""One line on the Training screen: what the training process and its machine use right now.

``CPU 187% · RSS 1.21 GB · RAM 9.1/23.5 GB · GPU0 97% 10.2/80.0 GB 64°C``: the
process's CPU (100% is one core) and resident memory, the system's memory in
use, and per NVIDIA GPU its utilization, memory and temperature (machine/sampler.py).
A narrower line shortens the units, then drops RAM and RSS, then each GPU's
temperature and memory: the GPUs' utilization against the CPU is the line's point.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from resnet_tui.events import GpuSample, MachineSample
from resnet_tui.report import format as fmt
from resnet_tui.tui.session import TrainingSession

SEPARATOR = " · "
WAITING = "CPU, memory and GPUs: sampled about once a second while a run trains"


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


def machine_text(session: TrainingSession | None, width: int) -> Text:
    if session is None:
        return Text("")
    if session.machine is None:
        return Text(WAITING if session.active else "", style="dim")
    # A sample of a run that has ended is its last one: dimmed, as old news.
    return Text(machine_line(session.machine, width), style="" if session.active else "dim")


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
