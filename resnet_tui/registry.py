"""The models this project knows, one spec each: number, description, builder and data loader.

``MODELS`` is read by the config schema (which numbers exist), by
``models.dispatch_build_model`` and by ``data.dispatch_load_dataset`` (the
seed's entry points). Builders and loaders are named as ``module:function``
and imported only when used, so that reading a config (and painting the
dashboard) loads neither Keras nor the data code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    number: int
    description: str
    builder: str  # "module:function" taking a Config, returning an uncompiled keras.Model
    loader: str  # "module:function" taking (Config, progress), returning a data.Dataset

    def build_function(self) -> Callable:
        return _resolve(self.builder)

    def load_function(self) -> Callable:
        return _resolve(self.loader)


MODELS: dict[int, ModelSpec] = {spec.number: spec for spec in (
    ModelSpec(1, "A tiny CNN (two convs, ~1.6k parameters) that trains in seconds: a quick check of a machine "
                 "or the dashboard, and the tests' model",
              "resnet_tui.models.tiny:build_model_m1", "resnet_tui.data.load:load_dataset_m8"),
    ModelSpec(8, "ResNet-20 for CIFAR-10 (He et al. 2015), option B projections, ~0.27M parameters",
              "resnet_tui.models.resnet:build_model_m8", "resnet_tui.data.load:load_dataset_m8"),
)}


class UnknownModelError(ValueError):
    pass


def model_spec(number: int) -> ModelSpec:
    """The spec of model ``number``; an unknown number's error lists the known ones."""
    try:
        return MODELS[number]
    except KeyError:
        known = ", ".join(f"m{n} ({spec.description})" for n, spec in MODELS.items())
        raise UnknownModelError(f"no model m{number}; known models: {known}") from None


def _resolve(target: str) -> Callable:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
