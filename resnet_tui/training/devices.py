"""What the chosen Keras backend trains on: its devices, GPUs and library versions.

The one place that asks TensorFlow or JAX about devices, so the rest of the
package stays backend-neutral (and never imports TensorFlow on JAX).
"""

from __future__ import annotations

import platform

from resnet_tui import backend
from resnet_tui.machine.info import cpu_line


def gpu_names() -> list[str]:
    """The GPUs the backend sees, by model name ([] on a CPU-only machine)."""
    if backend.on_tensorflow():
        import tensorflow as tf

        return [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
                for gpu in tf.config.list_physical_devices("GPU")]
    import jax

    return [device.device_kind for device in jax.devices() if device.platform == "gpu"]


def local_devices() -> list[str]:
    """The devices a run may place its model on: the GPUs, else the CPU(s), short names."""
    if backend.on_tensorflow():
        import tensorflow as tf

        found = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return [short_name(device.name) for device in found]
    import jax

    return [f"{device.platform}:{device.id}" for device in jax.local_devices()]


def short_name(device: str) -> str:
    """'/job:localhost/replica:0/task:0/device:GPU:0' -> '/device:GPU:0'."""
    cut = device.find("/device:")
    return device[cut:] if cut >= 0 else device


def describe_device() -> str:
    """The run's hardware in one line: its GPUs, else the CPU with the flags that change the kernels."""
    return ", ".join(gpu_names()) or f"CPU: {cpu_line()}"


def library_versions() -> dict[str, str]:
    """What a run records it was trained with; ``backend`` names Keras' backend."""
    import keras
    import numpy

    name = backend.current()
    engine = __import__(name)
    return {"python": platform.python_version(), "backend": name, name: engine.__version__,
            "keras": keras.__version__, "numpy": numpy.__version__}
