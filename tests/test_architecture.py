"""Tests of `mobilenet.architecture`: the table against paper Tables 1, 4 and 6, with no Keras loaded.

That it imports nothing above it is `tests/test_layout.py`'s check.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import pytest

from mobilenet.architecture import (
    BLOCKS,
    STEM,
    block_filters,
    check_output_stride,
    layer_strides,
    layer_table,
    network_stride,
)

# Paper Table 1 at 224x224 (the last block's s2 read as s1): side and channels after
# the stem and after each of the 13 blocks.
TABLE_1 = [
    (112, 32), (112, 64), (56, 128), (56, 128), (28, 256), (28, 256),
    *[(14, 512)] * 6, (7, 1024), (7, 1024),
]


def test_table_walks_to_paper_table_1():
    sides = [224 // stride for stride in itertools.accumulate(layer_strides(), lambda a, b: a * b)]
    channels = [STEM.filters, *(spec.filters for spec in BLOCKS)]
    assert list(zip(sides, channels)) == TABLE_1
    assert network_stride() == 32


@pytest.mark.parametrize(
    "early_downsampling, stem, block_2, total", [(4, 2, 2, 32), (2, 1, 2, 16), (1, 1, 1, 8)]
)
def test_early_downsampling_removes_the_first_strides(early_downsampling, stem, block_2, total):
    strides = layer_strides(early_downsampling)
    assert (strides[0], strides[2]) == (stem, block_2)
    assert strides[3:] == layer_strides(4)[3:]  # the rest of the network is untouched
    assert network_stride(early_downsampling) == math.prod(strides) == total


def test_layer_table_of_the_paper_network_is_table_1():
    table = layer_table()
    assert [spec.name for spec in table] == ["conv1", *(f"block_{n}" for n in range(1, 14))]
    assert [spec.kind for spec in table] == ["stem"] + ["separable"] * 13
    sides = [224 // stride for stride in itertools.accumulate((s.strides for s in table), lambda a, b: a * b)]
    assert list(zip(sides, (spec.filters for spec in table))) == TABLE_1
    assert {spec.dilation for spec in table} == {1}


def test_layer_table_of_the_shallow_and_conv_mobilenets():
    # Paper Table 6: "the 5 layers of separable filters with feature size 14x14x512" removed.
    shallow = layer_table(shallow=True)
    assert [spec.number for spec in shallow] == [0, 1, 2, 3, 4, 5, 6, 12, 13]
    assert math.prod(spec.strides for spec in shallow) == 32
    # Paper Table 4: each separable block a full convolution, same channels and strides.
    conv = layer_table(separable=False)
    assert [spec.kind for spec in conv] == ["stem"] + ["conv"] * 13
    assert [(s.filters, s.strides) for s in conv] == [(s.filters, s.strides) for s in layer_table()]
    assert [spec.filters for spec in layer_table(0.25)] == [
        8, 16, 32, 32, 64, 64, *[128] * 6, 256, 256]


@pytest.mark.parametrize("output_stride, strides, dilations", [
    # TF-Slim's dense prediction: once the running stride reaches output_stride, each
    # later stride becomes 1 and multiplies the dilation of the layers after it.
    (16, [2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 1, 1], [1] * 13 + [2]),
    (8, [2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1], [1] * 7 + [2] * 6 + [4]),
])
def test_layer_table_turns_strides_past_output_stride_into_dilation(output_stride, strides, dilations):
    table = layer_table(output_stride=output_stride)
    assert [spec.strides for spec in table] == strides
    assert [spec.dilation for spec in table] == dilations


def test_block_filters_floors_at_min_depth():
    assert block_filters(32, 0.25) == 8
    assert block_filters(1024, 0.75) == 768
    assert block_filters(64, 0.1) == 8  # int(6.4) = 6, floored
    assert block_filters(64, 0.1, min_depth=1) == 6


@pytest.mark.parametrize(
    "output_stride, early_downsampling, allowed",
    [
        (None, 1, True), (32, 4, True), (16, 4, True), (8, 4, True),
        (32, 2, False), (16, 2, True), (8, 2, True),
        (32, 1, False), (16, 1, False), (8, 1, True),
    ],
)
def test_output_stride_must_be_reachable(output_stride, early_downsampling, allowed):
    if allowed:
        assert check_output_stride(output_stride, early_downsampling) == output_stride
    else:
        with pytest.raises(ValueError, match=r"`output_stride`.*expected None or one of \(8"):
            check_output_stride(output_stride, early_downsampling)


def test_bad_choices():
    with pytest.raises(ValueError, match=r"`output_stride`.*\(None, 8, 16, 32\).*output_stride=4"):
        check_output_stride(4)
    with pytest.raises(ValueError, match=r"`early_downsampling`.*early_downsampling=3"):
        layer_strides(3)


def test_architecture_does_not_load_keras():
    code = "import sys, mobilenet.architecture; print('keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
