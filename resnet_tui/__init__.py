"""resnet-tui: train ResNet-20 on CIFAR-10 with Keras 3, watched from a Textual dashboard."""

__version__ = "0.1.0"

from resnet_tui import backend as _backend

_backend.settle()  # before any module imports Keras: a JAX-only install needs KERAS_BACKEND named
