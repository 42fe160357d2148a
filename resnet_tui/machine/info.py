"""What machine this is: the CPU model and the instruction-set flags that change TensorFlow's kernels.

Machines of one kind differ in CPU (AVX2-only EPYCs, others with AVX-512 and
AVX-512 BF16), and the same code can pass on one and fail on the other, so
CI, benchmarks and run records name the CPU with these.
"""

from __future__ import annotations

import os
import platform

# Flags that decide which oneDNN kernels TensorFlow uses (and whether bfloat16 is native).
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def _cpuinfo_field(name: str) -> str | None:
    """The first ``name : value`` line of /proc/cpuinfo, or None (not Linux, unreadable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str] | None:
    """The CPU's flags, or None when they cannot be read."""
    flags = _cpuinfo_field("flags")
    return None if flags is None else set(flags.split())


def cpu_line() -> str:
    """'AMD EPYC; avx2 avx512f avx512_bf16; 2 cores': the CPU as benchmarks and CI quote it."""
    flags = cpu_flags()
    known = "flags unknown" if flags is None else " ".join(f for f in KERNEL_FLAGS if f in flags) or "no avx2"
    return f"{cpu_model()}; {known}; {os.cpu_count()} cores"


def machine_line() -> str:
    """The CPU line plus the Keras backend and versions (imports Keras and its backend)."""
    import keras

    from resnet_tui import backend

    name = backend.current()
    return (f"{cpu_line()}; {backend.LABELS.get(name, name)} {__import__(name).__version__}, Keras {keras.__version__}, "
            f"Python {platform.python_version()}")


if __name__ == "__main__":  # python -m resnet_tui.machine.info: the line CI prints before the tests
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(f"machine: {machine_line()}")
