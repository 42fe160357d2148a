"""m8 is ResNet-20 as He et al. (2015) built it for CIFAR-10."""

import os

import keras
import numpy as np
import pytest

from resnet_tui.config import config_from_values
from resnet_tui.models import compile_model, dispatch_build_model, model_summary_text
from resnet_tui.registry import UnknownModelError


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
    with pytest.raises(UnknownModelError, match=r"no model m3; known models: m8 \(ResNet-20"):
        dispatch_build_model(3, config_from_values({}, "m8_x"))
