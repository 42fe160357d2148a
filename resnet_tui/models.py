"""Model builders (registered in registry.py), compiling, summaries.

Keras is imported inside the builders so that reading configs (and painting the
dashboard) does not wait for TensorFlow to load.
"""

from __future__ import annotations

import contextlib
import math
import re
from typing import TYPE_CHECKING

from resnet_tui.machine import cpu_flags
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


def mixed_precision_warning(policy: str) -> str | None:
    """Why MIXED_PRECISION ``policy`` will likely be slower than float32 here, or None.

    16-bit compute pays off on GPUs and on CPUs with bfloat16 instructions
    (AVX-512 BF16, AMX); elsewhere TensorFlow emulates it at a loss.
    """
    if policy == "float32":
        return None
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        return None
    flags = cpu_flags()
    if flags is None:
        return None  # cannot tell
    if policy == "mixed_bfloat16" and flags & {"avx512_bf16", "amx_bf16"}:
        return None
    need = "AVX-512 BF16 or AMX" if policy == "mixed_bfloat16" else "a GPU"
    return (f"MIXED_PRECISION={policy} without {need}: TensorFlow emulates the 16-bit math on this CPU, "
            f"which is usually slower than float32 (see README, Performance)")


def make_optimizer(config: Config, learning_rate):
    """OPTIMIZER's optimizer; a decoupled weight_decay (SGDW, AdamW) is Keras' ``weight_decay``."""
    import keras

    opt = config.OPTIMIZER
    decay = opt["weight_decay"] or None  # None, not 0: Keras then skips the decay step altogether
    if opt["type"] == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=opt["momentum"], nesterov=opt["nesterov"],
                                    weight_decay=decay)
    if opt["type"] == "adamw":
        return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=decay)
    return keras.optimizers.Adam(learning_rate=learning_rate)


def make_loss(config: Config):
    """Cross-entropy on the integer labels, smoothed when LABEL_SMOOTHING > 0."""
    import keras

    smoothing = config.get("LABEL_SMOOTHING") or 0.0
    if not smoothing:
        return keras.losses.SparseCategoricalCrossentropy()  # the seed's, exactly
    from resnet_tui.training.losses import SmoothedSparseCrossentropy

    return SmoothedSparseCrossentropy(label_smoothing=smoothing)


def decayed_weights(model: keras.Model) -> list:
    """The weights a weight penalty applies to: conv and dense kernels (L2_MODE's regularizer, and
    decoupled weight decay alike), not batch norm's scale and shift nor the classifier's bias."""
    return [w for w in model.trainable_weights if w.name == "kernel"]


def compile_model(model: keras.Model, config: Config, learning_rate) -> None:
    """OPTIMIZER's optimizer, sparse categorical cross-entropy (LABEL_SMOOTHING) as the seed.

    JIT_COMPILE and STEPS_PER_EXECUTION go to Keras as they are. A model built
    under the mixed_float16 policy gets its optimizer wrapped in Keras'
    LossScaleOptimizer (dynamic loss scaling) by ``compile`` itself.
    """
    optimizer = make_optimizer(config, learning_rate)
    if optimizer.weight_decay is not None:
        kernels = {id(w) for w in decayed_weights(model)}
        optimizer.exclude_from_weight_decay(var_list=[w for w in model.trainable_weights if id(w) not in kernels])
    model.compile(
        optimizer=optimizer,
        loss=make_loss(config),
        # Weighted: evaluation batches padded for several replicas carry sample
        # weights (data.make_eval_dataset); training batches carry none.
        weighted_metrics=["accuracy"],
        jit_compile=bool(config.get("JIT_COMPILE")),
        steps_per_execution=int(config.get("STEPS_PER_EXECUTION") or 1),
    )


SUMMARY_COLUMNS = (("Layer (type)", 0.3, "left"), ("Output Shape", 0.56, "left"),
                   ("Param #", 0.74, "right"), ("Connected to", 1.0, "left"))
"""Keras' model.summary() layout for a functional model: header, right edge (fraction of the line), justify."""


def model_summary_text(model: keras.Model, line_length: int = 110) -> str:
    """Keras' model.summary() table as plain text, ``line_length`` columns wide.

    Drawn here on a private rich Console of that width: Keras sizes its own
    console from the process-wide COLUMNS, which the training thread and the
    dashboard's summary worker would set at the same time. Reads no environment.
    """
    import io

    import rich.console
    import rich.table

    table = rich.table.Table(*_summary_columns(line_length), width=line_length, show_lines=True)
    connections = _connections(model)
    for layer in model.layers:
        table.add_row(f"{layer.name} ({layer.__class__.__name__})", _shape_text(layer),
                      _params_text(layer), connections.get(layer.name, "-"))
    out = io.StringIO()
    console = rich.console.Console(file=out, width=line_length + 4, color_system=None, force_terminal=False,
                                   highlight=False, markup=False, emoji=False)
    console.print(f'Model: "{model.name}"')
    console.print(table)
    for line in _param_totals(model):
        console.print(line)
    return out.getvalue().rstrip() + "\n"


def _summary_columns(line_length: int) -> list:
    import rich.table

    columns, left = [], 0
    for header, right, justify in SUMMARY_COLUMNS:
        width = int(right * line_length) - left
        columns.append(rich.table.Column(header, justify=justify, width=width))
        left += width
    return columns


def _connections(model: keras.Model) -> dict[str, str]:
    """Layer name -> the tensors it reads, as Keras prints them (``name[node][tensor]``), from get_config."""
    try:
        layers = model.get_config().get("layers", [])
    except NotImplementedError:  # a subclassed model has no graph to show
        return {}
    return {layer["name"]: ", ".join(_tensor_names(layer.get("inbound_nodes", []))) or "-" for layer in layers}


def _tensor_names(item) -> list[str]:
    if isinstance(item, dict) and item.get("class_name") == "__keras_tensor__":
        name, node, tensor = item["config"]["keras_history"]
        return [f"{name}[{node}][{tensor}]"]
    children = item.values() if isinstance(item, dict) else item if isinstance(item, (list, tuple)) else ()
    return [name for child in children for name in _tensor_names(child)]


def _shape_text(layer) -> str:
    try:
        outputs = layer.output
    except (AttributeError, ValueError):  # not called, or called more than once
        return "?"
    shapes = [f"({', '.join(map(str, tensor.shape))})" for tensor in _flat(outputs)]
    return shapes[0] if len(shapes) == 1 else f"[{', '.join(shapes)}]"


def _flat(outputs) -> list:
    return [t for item in outputs for t in _flat(item)] if isinstance(outputs, (list, tuple)) else [outputs]


def _params_text(layer) -> str:
    return f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"


def _param_totals(model: keras.Model) -> list[str]:
    groups = [("Total", model.weights), ("Trainable", model.trainable_weights),
              ("Non-trainable", model.non_trainable_weights)]
    optimizer = getattr(model, "optimizer", None)
    if getattr(model, "compiled", False) and optimizer is not None and optimizer.built:
        groups[0] = ("Total", model.weights + optimizer.variables)
        groups.append(("Optimizer", optimizer.variables))
    return [f" {label} params: {_count(weights):,} ({_readable_bytes(_bytes(weights))})" for label, weights in groups]


def _unique(weights) -> list:
    return list({id(w): w for w in weights}.values())


def _count(weights) -> int:
    return sum(math.prod(w.shape) for w in _unique(weights))


def _bytes(weights) -> float:
    """Bytes the weights take: elements times their dtype's bits (the number in its name) over 8."""
    return sum(math.prod(w.shape) * _dtype_bits(w.dtype) / 8 for w in _unique(weights))


def _dtype_bits(dtype) -> int:
    bits = re.search(r"\d+", str(dtype))
    return int(bits.group()) if bits else 8


def _readable_bytes(size: float) -> str:
    units = ["B", "KB", "MB", "GB", "TB"]
    while size >= 1024 and len(units) > 1:
        size /= 1024
        units.pop(0)
    return f"{size:.2f} {units[0]}"


def count_params(model: keras.Model) -> int:
    return int(model.count_params())
