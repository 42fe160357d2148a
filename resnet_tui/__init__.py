"""resnet-tui: train ResNet-20 on CIFAR-10 with Keras 3, watched from a Textual dashboard."""

__version__ = "0.1.0"
