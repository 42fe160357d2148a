"""m8 is ResNet-20 as He et al. (2015) built it for CIFAR-10."""

import os
from pathlib import Path

import keras
import numpy as np
import pytest

from resnet_tui.config import config_from_values
from resnet_tui.models.resnet import dispatch_build_model
from resnet_tui.models.summary import model_summary_text
from resnet_tui.registry import UnknownModelError
from resnet_tui.training.compile import compile_model


@pytest.fixture(scope="module")
def model():
    return dispatch_build_model(8, config_from_values({}, "m8_base"))


def convs(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def test_twenty_weighted_layers_plus_two_projections(model):
    three_by_three = [c for c in convs(model) if c.kernel_size == (3, 3)]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert len(three_by_three) == 19 and len(dense) == 1  # 19 convs + 1 FC = ResNet-20
    assert [c.filters for c in three_by_three] == [16] * 7 + [32] * 6 + [64] * 6


def test_projections_only_where_downsampling(model):
    projections = [c for c in convs(model) if c.kernel_size == (1, 1)]
    assert [(c.name, c.filters, c.strides) for c in projections] == [
        ("stage2_block1_proj_conv", 32, (2, 2)), ("stage3_block1_proj_conv", 64, (2, 2))]
    strided = [c.name for c in convs(model) if c.strides == (2, 2)]
    assert sorted(strided) == sorted(["stage2_block1_1_conv", "stage2_block1_proj_conv",
                                      "stage3_block1_1_conv", "stage3_block1_proj_conv"])
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == 9


def test_he_init_no_bias_before_bn_l2_and_no_dropout(model):
    for conv in convs(model):
        assert isinstance(conv.kernel_initializer, keras.initializers.HeNormal), conv.name
        assert conv.use_bias is False, conv.name
        assert conv.kernel_regularizer.get_config()["l2"] == pytest.approx(1e-4)
    dense = model.get_layer("classifier")
    assert dense.kernel_regularizer.get_config()["l2"] == pytest.approx(1e-4)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
    assert model.output_shape == (None, 10)
    assert len(model.losses) == 22  # one L2 term per conv/dense kernel


def test_parameter_count_under_400k(model):
    assert model.count_params() < 400_000
    assert 260_000 < model.count_params() < 280_000  # ~0.27M as the paper says


def test_the_fast_recipe_builds_the_same_m8():
    from resnet_tui.config import load_config

    fast = load_config(Path(__file__).resolve().parents[1] / "configs" / "m8_fast.json")
    model = dispatch_build_model(8, fast)
    assert model.count_params() == 274_042 and model.losses == []  # decoupled decay: no L2 term in the loss


def test_l2_disabled_means_no_penalty():
    model = dispatch_build_model(8, config_from_values({"L2_MODE": {"enabled": False}}, "m8_x"))
    assert model.losses == []


def test_compile_uses_sgd_with_momentum_and_sparse_crossentropy(model):
    config = config_from_values({"OPTIMIZER": {"momentum": 0.8, "nesterov": True}}, "m8_x")
    compile_model(model, config, 0.1)
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert model.optimizer.momentum == pytest.approx(0.8) and model.optimizer.nesterov
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    out = model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0)
    assert out.shape == (2, 10) and np.allclose(out.sum(axis=1), 1, atol=1e-5)


def test_the_defaults_compile_the_seeds_optimizer_and_loss_unchanged(model):
    """SGD(0.1, momentum 0.9) with no decoupled decay and plain sparse cross-entropy, as the seed wrote them."""
    compile_model(model, config_from_values({}, "m8_base"), 0.1)
    seed = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=False)
    assert {**model.optimizer.get_config(), "name": ""} == {**seed.get_config(), "name": ""}
    assert model.optimizer.weight_decay is None
    assert type(model.loss) is keras.losses.SparseCategoricalCrossentropy
    assert model.loss.get_config() == keras.losses.SparseCategoricalCrossentropy().get_config()


def decay_step(optimizer_values: dict):
    """One update with zero gradients, so only decoupled weight decay moves the weights: (before, after)."""
    config = config_from_values({"L2_MODE": {"enabled": False}, "OPTIMIZER": optimizer_values}, "m8_x")
    model = dispatch_build_model(8, config)
    compile_model(model, config, 0.1)
    before = {w.path: w.numpy().copy() for w in model.trainable_weights}
    model.optimizer.apply_gradients([(keras.ops.zeros_like(w), w) for w in model.trainable_weights])
    return model, before


@pytest.mark.parametrize("optimizer_values, cls", [
    ({"type": "sgd", "weight_decay": 0.5, "nesterov": True}, keras.optimizers.SGD),
    ({"type": "adamw", "weight_decay": 0.5}, keras.optimizers.AdamW),
])
def test_decoupled_weight_decay_shrinks_the_kernels_by_lr_times_decay_and_nothing_else(optimizer_values, cls):
    model, before = decay_step(optimizer_values)
    assert type(model.optimizer) is cls and model.optimizer.weight_decay == 0.5
    kernels = [w for w in model.trainable_weights if w.name == "kernel"]
    assert len(kernels) == 22  # the weights L2_MODE regularizes: 21 convs and the classifier
    for w in model.trainable_weights:
        factor = 1 - 0.1 * 0.5 if w.name == "kernel" else 1.0  # BN gamma/beta and the bias: untouched
        np.testing.assert_allclose(w.numpy(), before[w.path] * factor, rtol=1e-6, err_msg=w.path)


def test_coupled_l2_is_in_the_loss_and_leaves_the_optimizer_without_decay(model):
    compile_model(model, config_from_values({}, "m8_base"), 0.1)
    assert model.optimizer.weight_decay is None
    penalty = sum(float(keras.ops.sum(w ** 2)) for w in model.trainable_weights if w.name == "kernel") * 1e-4
    assert float(keras.ops.sum(model.losses)) == pytest.approx(penalty, rel=1e-5)


def test_label_smoothing_is_categorical_crossentropy_on_smoothed_one_hot_targets(model):
    from resnet_tui.training.losses import SmoothedSparseCrossentropy

    compile_model(model, config_from_values({"LABEL_SMOOTHING": 0.2}, "m8_x"), 0.1)
    assert isinstance(model.loss, SmoothedSparseCrossentropy) and model.loss.label_smoothing == 0.2
    probs = np.random.default_rng(0).dirichlet(np.ones(10), size=6).astype("float32")
    labels = np.array([0, 3, 9, 1, 1, 5])
    targets = 0.8 * np.eye(10)[labels] + 0.2 / 10
    by_hand = -(targets * np.log(probs.astype("float64"))).sum(axis=1).mean()
    assert float(model.loss(labels, probs)) == pytest.approx(by_hand, rel=1e-5)
    assert float(model.loss(labels[:, None], probs)) == pytest.approx(by_hand, rel=1e-5)  # (N, 1) labels too
    keras_categorical = keras.losses.CategoricalCrossentropy(label_smoothing=0.2)
    assert float(model.loss(labels, probs)) == pytest.approx(float(keras_categorical(np.eye(10)[labels], probs)))


def test_summary_text_lists_layers_and_total(model):
    text = model_summary_text(model)
    assert "stage3_block3_out" in text and "Total params: 274,042" in text
    assert "\x1b[" not in text


class WatchedEnviron(dict):
    """os.environ for one test: reads work, any write fails the test (two threads share the real one)."""

    def _refuse(self, *args, **kwargs):
        raise AssertionError(f"wrote the process environment: {args!r}")

    __setitem__ = __delitem__ = pop = update = setdefault = clear = popitem = _refuse


def test_summary_text_leaves_the_environment_alone_and_is_as_wide_as_asked(model, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")  # a narrow terminal must not narrow the table
    before = dict(os.environ)
    for width in (90, 130):
        with monkeypatch.context() as watch:
            watch.setattr(os, "environ", WatchedEnviron(os.environ))
            text = model_summary_text(model, line_length=width)
        table = [line for line in text.splitlines() if line[:1] in "┏┃┡│├└"]
        assert table and {len(line) for line in table} == {width}
        assert "Connected to" in text and "image[0][0]" in text and "Total params: 274,042 (1.05 MB)" in text
    assert dict(os.environ) == before


def test_unknown_model_lists_known_models():
    with pytest.raises(UnknownModelError, match=r"no model m3; known models: m1 \(A tiny CNN.*\), m8 \(ResNet-20"):
        dispatch_build_model(3, config_from_values({}, "m8_x"))
