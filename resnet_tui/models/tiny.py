"""m1: a tiny CNN that builds and trains in seconds on any CPU.

For checking a machine or the dashboard end to end before a real run, and for
the tests of everything that is not about ResNet-20 itself (stop, pause, resume,
watchers, exports). The same data, recipe and run files as m8.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from resnet_tui.config import Config


def build_model_m1(config: Config) -> keras.Model:
    """Conv 8 + BN + ReLU, a stride-2 conv 16 + BN + ReLU, global average pooling, softmax."""
    import keras
    from keras import layers

    l2 = config.L2_MODE
    reg = keras.regularizers.L2(l2["lambda"]) if l2["enabled"] else None
    conv_args = dict(padding="same", use_bias=False, kernel_initializer="he_normal", kernel_regularizer=reg)
    inputs = keras.Input(shape=(32, 32, 3), name="image")
    x = inputs
    for filters, stride, name in ((8, 1, "conv1"), (16, 2, "conv2")):
        x = layers.Conv2D(filters, 3, strides=stride, name=name, **conv_args)(x)
        x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
        x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(10, activation="softmax", kernel_initializer="he_normal",
                           kernel_regularizer=reg, dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name="m1_tiny_cnn")
