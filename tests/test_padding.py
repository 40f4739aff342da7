"""Tests of `MobileNetV1`'s ``padding`` ("same" or timm's "symmetric") and ``head_filters``.

Truth: hand-computed sums of a ones kernel over a ones image (which pixels
a window sees), the paper's mult-add count, and the two paddings' output
shapes, which must agree at every size.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mobilenet import MobileNetV1, profile
from mobilenet._validation import InvalidArgument

#: MobileNet 1.0-224's mult-adds (paper Table 1's network, as `profile` counts it).
MULT_ADDS_224 = 568_740_352


def _stem_output(padding: str, side: int) -> np.ndarray:
    """conv1's first channel on an image of ones, with a kernel of ones (no BatchNorm)."""
    model = MobileNetV1(0.25, input_shape=(side, side, 3), padding=padding, include_top=False)
    conv = model.get_layer("conv1")
    kernel = np.zeros(conv.kernel.shape, "float32")
    kernel[..., 0] = 1.0
    conv.set_weights([kernel])
    stem = keras.Model(model.input, conv.output)
    return np.asarray(stem(np.ones((1, side, side, 3), "float32")))[0, :, :, 0]


def test_symmetric_pads_every_side_where_same_pads_bottom_and_right():
    # A 3x3x3 window sees 27 ones inside the image; one padded row or column takes 9 away.
    symmetric = _stem_output("symmetric", 32)
    same = _stem_output("same", 32)
    assert symmetric.shape == same.shape == (16, 16)
    assert symmetric[0, 0] == 12 and symmetric[0, 5] == 18 and symmetric[5, 5] == 27
    assert symmetric[-1, -1] == 27  # the last row and column of padding are never read
    assert same[0, 0] == 27 and same[-1, -1] == 12 and same[-1, 5] == 18


def test_at_odd_sides_the_two_paddings_agree():
    """An odd side pads one on each side under "same" too."""
    np.testing.assert_array_equal(_stem_output("symmetric", 33), _stem_output("same", 33))


@pytest.mark.parametrize(
    "kwargs",
    [dict(input_shape=(224, 224, 3)), dict(input_shape=(225, 225, 3)),
     dict(input_shape=(96, 130, 3)), dict(input_shape=(224, 224, 3), output_stride=8),
     dict(input_shape=(64, 64, 3), early_downsampling=1), dict(input_shape=(64, 64, 3), separable=False)],
)
def test_same_shapes_and_mult_adds_under_both_paddings(kwargs):
    same = MobileNetV1(**kwargs)
    symmetric = MobileNetV1(padding="symmetric", **kwargs)
    assert same.output.shape == symmetric.output.shape
    rows = {row.name: (row.output_shape, row.mult_adds) for row in profile(same).rows}
    assert {row.name: (row.output_shape, row.mult_adds) for row in profile(symmetric).rows} == rows


def test_profile_stays_the_papers_count():
    assert profile(MobileNetV1(padding="symmetric")).mult_adds == MULT_ADDS_224


def test_pad_layers_only_before_stride_two():
    names = [layer.name for layer in MobileNetV1(padding="symmetric").layers]
    assert [name for name in names if name.endswith("_pad")] == [
        "conv1_pad", "block_2_pad", "block_4_pad", "block_6_pad", "block_12_pad"]
    names = [layer.name for layer in MobileNetV1(padding="symmetric", early_downsampling=2).layers]
    assert "conv1_pad" not in names
    assert not any(layer.name.endswith("_pad") for layer in MobileNetV1().layers)


def test_head_filters_add_a_pointwise_conv_before_pooling():
    costs = profile(MobileNetV1(head_filters=1024))
    head = next(row for row in costs.rows if row.name == "head_conv")
    assert (head.kind, head.output_shape) == ("pointwise", (7, 7, 1024))
    assert costs.mult_adds - MULT_ADDS_224 == head.mult_adds == 1024 * 1024 * 7 * 7


@pytest.mark.parametrize("kwargs, argument", [(dict(padding="valid"), "padding"),
                                              (dict(head_filters=0), "head_filters")])
def test_invalid_values(kwargs, argument):
    with pytest.raises(InvalidArgument) as caught:
        MobileNetV1(**kwargs)
    assert caught.value.argument == argument


def test_a_symmetric_model_with_a_head_saves_and_loads(tmp_path):
    model = MobileNetV1(0.25, input_shape=(64, 64, 3), padding="symmetric", head_filters=64,
                        batch_norm_epsilon=1e-5, num_classes=5)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-6, atol=1e-6)
    assert loaded.get_layer("block_2_pad").padding == ((1, 1), (1, 1))
    assert loaded.get_layer("head_bn").epsilon == 1e-5
