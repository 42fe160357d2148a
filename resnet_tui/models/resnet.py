"""ResNet-20 for CIFAR-10 (m8), and building any registered model by number.

Keras is imported inside the builders so that reading configs (and painting the
dashboard) does not wait for TensorFlow to load.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from resnet_tui.registry import model_spec

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from resnet_tui.config import Config


def build_model_m8(config: Config) -> keras.Model:
    """ResNet-20 as He et al. (2015) trained it on CIFAR-10.

    3x3 conv 16 + BN + ReLU, then three stages of three basic blocks (16, 32,
    64 filters). The first block of stages 2 and 3 has stride 2 and a 1x1
    stride-2 projection shortcut (option B) followed by BN; all other shortcuts
    are identities. Global average pooling and a 10-way softmax. He normal
    initialization as in the paper; convs followed by BN carry no bias (BN's
    beta plays that role). No dropout.
    """
    import keras
    from keras import layers

    l2 = config.L2_MODE
    reg = keras.regularizers.L2(l2["lambda"]) if l2["enabled"] else None
    conv_args = dict(padding="same", use_bias=False, kernel_initializer="he_normal", kernel_regularizer=reg)
    # Under MirroredStrategy: batch statistics over the global batch, all-reduced across replicas.
    sync_bn = bool(config.get("SYNC_BATCH_NORM")) and config.get("DISTRIBUTE") not in (None, "none")

    def conv_bn(x, filters, kernel, stride, name):
        x = layers.Conv2D(filters, kernel, strides=stride, name=f"{name}_conv", **conv_args)(x)
        # momentum 0.9 (Torch's 0.1) rather than Keras' 0.99: the moving statistics
        # catch up within an epoch, so short runs validate sensibly too.
        return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=sync_bn, name=f"{name}_bn")(x)

    def basic_block(x, filters, stride, name):
        y = conv_bn(x, filters, 3, stride, f"{name}_1")
        y = layers.Activation("relu", name=f"{name}_1_relu")(y)
        y = conv_bn(y, filters, 3, 1, f"{name}_2")
        shortcut = conv_bn(x, filters, 1, stride, f"{name}_proj") if stride != 1 else x
        out = layers.Add(name=f"{name}_add")([y, shortcut])
        return layers.Activation("relu", name=f"{name}_out")(out)

    inputs = keras.Input(shape=(32, 32, 3), name="image")
    x = conv_bn(inputs, 16, 3, 1, "stem")
    x = layers.Activation("relu", name="stem_relu")(x)
    for stage, filters in enumerate((16, 32, 64), start=1):
        for block in range(1, 4):
            stride = 2 if stage > 1 and block == 1 else 1
            x = basic_block(x, filters, stride, f"stage{stage}_block{block}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    # float32 whatever MIXED_PRECISION says: logits and softmax of a 16-bit policy
    # would lose the small probabilities the cross-entropy needs (a 64x10 matmul).
    outputs = layers.Dense(10, activation="softmax", kernel_initializer="he_normal",
                           kernel_regularizer=reg, dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name="m8_resnet20")


def dispatch_build_model(model_number: int, config: Config) -> keras.Model:
    """Build (uncompiled) model ``model_number`` (registry.MODELS); unknown numbers list the known ones."""
    build = model_spec(model_number).build_function()
    with dtype_policy(config.get("MIXED_PRECISION") or "float32"):
        return build(config)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Build under Keras dtype policy ``name`` (MIXED_PRECISION), then restore the previous one.

    Keras keeps its global policy per thread; restoring it keeps a mixed run from
    leaking its policy into models built later in the same thread.
    """
    import keras

    saved = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(saved)
