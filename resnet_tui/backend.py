"""Which Keras backend this process trains on: TensorFlow (the default) or JAX.

Keras reads ``KERAS_BACKEND`` once, when it is first imported, so the choice is
made per process and before that import: ``--backend`` sets the variable,
otherwise the environment's (or ``~/.keras/keras.json``'s) choice stands. An
environment with JAX and without TensorFlow (``pip install -e '.[jax]'``)
would fail at ``import keras`` with Keras' own default, so there the backend
falls to JAX. Nothing here imports Keras; on JAX nothing in the package
imports TensorFlow.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
from pathlib import Path

BACKENDS = ("tensorflow", "jax")
DEFAULT = "tensorflow"
LABELS = {"tensorflow": "TensorFlow", "jax": "JAX"}  # as a person writes them
INSTALL = {"tensorflow": "pip install -e '.[tensorflow]' (make install)",
           "jax": "pip install -e '.[jax]' (or '.[jax-cuda]' on an NVIDIA GPU box)"}


class BackendError(RuntimeError):
    """The backend asked for cannot be used; ``str()`` says why and what to install."""


def installed(name: str) -> bool:
    """Whether the top-level package ``name`` can be found on sys.path (without importing it,
    and whatever import hooks say: TensorFlow kept out of a JAX process is still installed)."""
    return importlib.machinery.PathFinder.find_spec(name) is not None


def _keras_json() -> str | None:
    """The backend named in Keras' own config file, if any."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        return json.loads((home / "keras.json").read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        return None


def current() -> str:
    """The backend Keras uses in this process (or will, once imported)."""
    return os.environ.get("KERAS_BACKEND") or _keras_json() or (
        DEFAULT if installed(DEFAULT) or not installed("jax") else "jax")


def choose(name: str | None = None) -> str:
    """Fix the backend for this process before Keras is imported; BackendError if it cannot be used."""
    import sys

    name = name or current()
    if name not in BACKENDS:
        raise BackendError(f"backend {name!r} is not supported: use one of {', '.join(BACKENDS)} "
                           f"(--backend or KERAS_BACKEND)")
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != name:
        raise BackendError(f"Keras was already imported on {keras.backend.backend()}; "
                           f"the backend is chosen before (--backend or KERAS_BACKEND)")
    if not installed(name):
        raise BackendError(f"the {name} backend is not installed: {INSTALL[name]}")
    os.environ["KERAS_BACKEND"] = name
    if name == "jax":
        keep_tensorflow_out()
    return name


class _NoTensorFlow:
    """An import hook that makes TensorFlow look absent (the ImportError Keras expects of it)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError(f"{name} is kept out of this process: it trains on {current()}")


def keep_tensorflow_out() -> None:
    """Where TensorFlow is installed but not the backend, Keras would still import it
    (``keras.utils.set_random_seed`` seeds it "since many workflows use tf.data"): 3 s and
    ~1 GB for nothing. Keras treats it as missing instead."""
    import sys

    if "tensorflow" not in sys.modules and not any(isinstance(f, _NoTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoTensorFlow())


def on_tensorflow() -> bool:
    return current() == "tensorflow"


def settle() -> None:
    """On import of the package: where TensorFlow is missing and nothing was chosen, Keras
    would fail on its own default, so JAX is named for it (a real choice is left alone);
    on JAX, TensorFlow is kept out."""
    if not os.environ.get("KERAS_BACKEND") and not _keras_json() and not installed(DEFAULT) and installed("jax"):
        os.environ["KERAS_BACKEND"] = "jax"
    if current() == "jax":
        keep_tensorflow_out()
