"""Compiling a model for training: dtype policy, optimizer, loss, weight decay, metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from resnet_tui.machine.info import cpu_flags

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from resnet_tui.config import Config


def mixed_precision_warning(policy: str) -> str | None:
    """Why MIXED_PRECISION ``policy`` will likely be slower than float32 here, or None.

    16-bit compute pays off on GPUs and on CPUs with bfloat16 instructions
    (AVX-512 BF16, AMX); elsewhere it is emulated at a loss.
    """
    if policy == "float32":
        return None
    from resnet_tui.training.devices import gpu_names

    if gpu_names():
        return None
    flags = cpu_flags()
    if flags is None:
        return None  # cannot tell
    if policy == "mixed_bfloat16" and flags & {"avx512_bf16", "amx_bf16"}:
        return None
    need = "AVX-512 BF16 or AMX" if policy == "mixed_bfloat16" else "a GPU"
    return (f"MIXED_PRECISION={policy} without {need}: the 16-bit math is emulated on this CPU, "
            f"which is usually slower than float32 (see benchmarks/RESULTS.md)")


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
    import keras

    """OPTIMIZER's optimizer, sparse categorical cross-entropy (LABEL_SMOOTHING) as the seed.

    JIT_COMPILE and STEPS_PER_EXECUTION go to Keras as they are, except that on JAX the step
    is always compiled: Keras' JAX trainer without ``jit_compile`` runs it op by op (1.2-2x
    slower on CPU, benchmarks/RESULTS.md; far more on a GPU), and XLA is why JAX is here. A model built
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
        jit_compile=bool(config.get("JIT_COMPILE")) or keras.backend.backend() == "jax",
        steps_per_execution=int(config.get("STEPS_PER_EXECUTION") or 1),
    )


