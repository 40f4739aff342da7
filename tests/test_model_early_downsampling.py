"""Tests of `MobileNetV1(early_downsampling=...)`, the small-image option CIFAR-10 training uses."""

from __future__ import annotations

import pytest

from mobilenet import MobileNetV1

@pytest.mark.parametrize("early_downsampling, side", [(4, 1), (2, 2), (1, 4)])
def test_early_downsampling_keeps_larger_maps_and_the_same_weights(early_downsampling, side):
    model = MobileNetV1(1.0, input_shape=(32, 32, 3), early_downsampling=early_downsampling)
    assert model.get_layer("block_13").output.shape == (None, side, side, 1024)
    # Same weights as the standard network: keras.applications' count from paper.md.
    assert model.count_params() == 4_253_864
    stem = model.get_layer("conv1").strides
    block_2 = model.get_layer("block_2").depthwise.strides
    assert (stem, block_2) == {4: ((2, 2), (2, 2)), 2: ((1, 1), (2, 2)), 1: ((1, 1), (1, 1))}[early_downsampling]


def test_early_downsampling_at_224_matches_a_larger_input():
    # Dropping the stem's stride at side s gives the maps the standard net has at 2s.
    small = MobileNetV1(0.25, input_shape=(64, 64, 3), include_top=False, early_downsampling=2)
    large = MobileNetV1(0.25, input_shape=(128, 128, 3), include_top=False)
    for name in ("block_1", "block_6", "block_13"):
        assert small.get_layer(name).output.shape == large.get_layer(name).output.shape


def _paper_mult_adds(alpha: float, side: int, strides: list[int], classes: int) -> int:
    """Paper section 3 by hand: stem conv, then depthwise + pointwise per block, then the FC."""
    widths = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    side = -(-side // strides[0])
    channels = int(32 * alpha)
    total = 3 * 3 * 3 * channels * side * side
    for width, stride in zip(widths, strides[1:]):
        side = -(-side // stride)
        out = int(width * alpha)
        total += 3 * 3 * channels * side * side + channels * out * side * side
        channels = out
    return total + channels * classes


PAPER_STRIDES = [2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]


def test_early_downsampling_cost_by_hand():
    from mobilenet import profile

    standard_224 = _paper_mult_adds(1.0, 224, PAPER_STRIDES, 1000)
    assert standard_224 == 568_740_352  # paper.md's exact recount of Table 8
    no_stem_stride = [1] + PAPER_STRIDES[1:]
    no_early_strides = [1, 1, 1] + PAPER_STRIDES[3:]
    for alpha, early_downsampling, strides in [(1.0, 2, no_stem_stride), (1.0, 1, no_early_strides),
                                               (0.5, 2, no_stem_stride), (0.5, 1, no_early_strides)]:
        model = MobileNetV1(alpha, num_classes=10, input_shape=(32, 32, 3), early_downsampling=early_downsampling)
        assert profile(model).mult_adds == _paper_mult_adds(alpha, 32, strides, 10)
    # Dropping the stem's stride at side s costs exactly the standard net at side 2s.
    assert _paper_mult_adds(0.5, 32, no_stem_stride, 10) == _paper_mult_adds(0.5, 64, PAPER_STRIDES, 10)
    # The docs' table, in millions.
    assert round(_paper_mult_adds(0.5, 32, no_stem_stride, 10) / 1e5) == 122
    assert round(_paper_mult_adds(1.0, 32, no_early_strides, 10) / 1e5) == 1756


def test_early_downsampling_works_with_output_stride():
    model = MobileNetV1(0.25, input_shape=(64, 64, 3), include_top=False, early_downsampling=2,
                        output_stride=8)
    assert model.output.shape == (None, 8, 8, 256)


@pytest.mark.parametrize("bad", [3, 0, 8, True, "2", 2.0])
def test_early_downsampling_rejects_bad_values(bad):
    with pytest.raises(ValueError, match=r"Invalid value for argument `early_downsampling`.*Received: early_downsampling="):
        MobileNetV1(0.25, input_shape=(32, 32, 3), early_downsampling=bad)
