"""The machine line CI prints and run records keep."""

import os
import sys

import pytest

from resnet_tui.machine import info as machine


def test_cpu_line_names_the_model_the_kernel_flags_and_the_cores(monkeypatch):
    monkeypatch.setattr(machine, "_cpuinfo_field", lambda name: {
        "model name": "AMD EPYC 9B14", "flags": "fpu sse avx2 avx512f avx512_bf16 vaes"}.get(name))
    assert machine.cpu_line() == f"AMD EPYC 9B14; avx2 avx512f avx512_bf16; {os.cpu_count()} cores"
    monkeypatch.setattr(machine, "_cpuinfo_field", lambda name: {"model name": "Old", "flags": "sse"}.get(name))
    assert machine.cpu_line().startswith("Old; no avx2;")
    monkeypatch.setattr(machine, "_cpuinfo_field", lambda name: None)
    assert "flags unknown" in machine.cpu_line() and machine.cpu_flags() is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/cpuinfo")
def test_this_machine_has_a_model_and_flags():
    assert machine.cpu_flags() and machine.cpu_model()
    assert machine.machine_line().count("; ") >= 3 and "TensorFlow 2." in machine.machine_line()
