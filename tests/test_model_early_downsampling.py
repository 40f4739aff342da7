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
#: The strides each early_downsampling leaves (paper Table 1's, with the stem's and block 2's dropped).
STRIDES = {4: PAPER_STRIDES, 2: [1] + PAPER_STRIDES[1:], 1: [1, 1, 1] + PAPER_STRIDES[3:]}
#: docs/cifar10.md's table: mult-adds in millions at 32x32 with 10 classes, by (alpha, early_downsampling).
DOCS_TABLE = {(1.0, 4): 11.6, (1.0, 2): 46.4, (1.0, 1): 175.6, (0.5, 4): 3.0, (0.5, 2): 12.2, (0.5, 1): 45.3}


def test_the_cost_by_hand_is_paper_table_8s():
    from mobilenet import profile

    # 1.0 MobileNet-224: 569 M mult-adds as printed, 568,740,352 by the paper's formulas.
    mult_adds = profile(MobileNetV1(1.0)).mult_adds
    assert mult_adds == _paper_mult_adds(1.0, 224, PAPER_STRIDES, 1000) == 568_740_352
    assert round(mult_adds / 1e6) == 569


def test_early_downsampling_cost_by_hand():
    from mobilenet import profile

    costs = {}
    for (alpha, early_downsampling), millions in DOCS_TABLE.items():
        model = MobileNetV1(alpha, num_classes=10, input_shape=(32, 32, 3), early_downsampling=early_downsampling)
        costs[alpha, early_downsampling] = profile(model).mult_adds
        assert costs[alpha, early_downsampling] == _paper_mult_adds(alpha, 32, STRIDES[early_downsampling], 10)
        assert round(costs[alpha, early_downsampling] / 1e6, 1) == millions  # the docs' table holds
    # Dropping the stem's stride at side s costs exactly the standard net at side 2s.
    assert costs[0.5, 2] == profile(MobileNetV1(0.5, num_classes=10, input_shape=(64, 64, 3))).mult_adds


def test_early_downsampling_works_with_output_stride():
    model = MobileNetV1(0.25, input_shape=(64, 64, 3), include_top=False, early_downsampling=2,
                        output_stride=8)
    assert model.output.shape == (None, 8, 8, 256)


@pytest.mark.parametrize("bad", [3, 0, 8, True, "2", 2.0])
def test_early_downsampling_rejects_bad_values(bad):
    with pytest.raises(ValueError, match=r"Invalid value for argument `early_downsampling`.*Received: early_downsampling="):
        MobileNetV1(0.25, input_shape=(32, 32, 3), early_downsampling=bad)
